/**
 * Issue 11 item 6 for flows: every flow family exports to the documented torch layout
 * (flows/torch.ts, docs/torch-flows.md), and the file, read back from its bytes, gives the same
 * log-density as wgflow's flow — the file's side computed by a float64 evaluator of the layout
 * (tests/fixtures/torch-flow-ref.ts), not by wgflow's loader.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { noGrad, scope, tensor } from '../engine';
import { Rng } from '../engine/philox';
import { buildFlow, flowFromCheckpoint, flowTrainer, readRunConfig, type HostParams } from '../flows';
import { flowToTorch, FLOW_TORCH_FORMAT } from '../flows/torch';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors';
import { writeCheckpoint } from '../train/checkpoint';
import type { Method, TrainConfig } from '../train/contract';
import { refLogProb, type RefTensor } from './fixtures/torch-flow-ref';
import { gpu, runWgflow } from './helpers';

beforeAll(async () => {
  await gpu();
});

/** A data matrix of `dim` columns with unequal scales and offsets (so standardisation matters). */
function dataOf(dim: number, n = 40): TrainConfig['data'] {
  const rng = new Rng(7, 1);
  const data = Float32Array.from({ length: n * dim }, (_, i) => rng.normal() * (1 + (i % dim)) + 2 * (i % dim) - 1);
  return { data, n, dim };
}

/** A resolved flow config and parameters: the fresh flow's, perturbed so no layer is near the identity. */
async function model(method: Method, options: Record<string, unknown>, dim: number): Promise<{ config: Record<string, unknown>; params: HostParams }> {
  const cfg: TrainConfig = { method, source: null, target: dim === 2 ? 'moons' : null, ...(dim === 2 ? {} : { data: dataOf(dim) }), steps: 10, batch: 16, lr: 1e-3, seed: 3, options };
  const config = flowTrainer.resolveConfig(cfg);
  const flow = buildFlow(readRunConfig(config).arch);
  const params = await flow.store.read();
  flow.dispose();
  const rng = new Rng(11, 2);
  for (const p of Object.values(params)) for (let k = 0; k < p.data.length; k++) p.data[k] = p.data[k]! + 0.3 * rng.normal();
  return { config, params };
}

/**
 * A resolved flow config and the parameters after `steps` Adam steps from the seeded init (spline
 * layers start as the identity, so training is what moves them off it); checks the run stayed finite
 * and that the conditioners' last layers moved.
 */
async function trained(method: Method, options: Record<string, unknown>, dim: number, steps = 6, lr = 2e-2): Promise<{ config: Record<string, unknown>; params: HostParams }> {
  const cfg: TrainConfig = { method, source: null, target: dim === 2 ? 'moons' : null, ...(dim === 2 ? {} : { data: dataOf(dim) }), steps, batch: 16, lr, seed: 3, options };
  const config = flowTrainer.resolveConfig(cfg);
  const fresh = buildFlow(readRunConfig(config).arch);
  const init = await fresh.store.read();
  fresh.dispose();
  const run = await flowTrainer.prepare(cfg, config);
  try {
    for (let s = 0; s < steps; s++) run.step(s);
    expect((await run.readLosses(0, steps)).firstBad).toBeNull();
    const { params } = await run.snapshot();
    const lastW = Object.keys(params).filter((n) => /\.(net|made)\.\d+\.w$/.test(n) && !params[n.replace(/\d+\.w$/, (m) => `${Number(m.split('.')[0]) + 1}.w`)]);
    expect(lastW.length).toBeGreaterThan(0);
    const moved = (n: string) => Math.max(...params[n]!.data.map((v, k) => Math.abs(v - init[n]!.data[k]!)));
    // weight or bias (a 1-D MADE's hidden units see no input, so only its last bias carries the spline)
    for (const n of lastW) expect(Math.max(moved(n), moved(n.slice(0, -1) + 'b')), n).toBeGreaterThan(0.05);
    return { config, params };
  } finally {
    run.dispose();
  }
}

/** Points in the data's units (a prime count, spread over the data's range). */
function points(dim: number, n = 7): Float32Array {
  const rng = new Rng(5, 3);
  return Float32Array.from({ length: n * dim }, (_, i) => (dim === 2 ? 1.5 : 2) * rng.normal() + (dim === 2 ? 0 : 2 * (i % dim) - 1));
}

/** wgflow's log p in the data's units: the flow rebuilt from the checkpoint, as `wgflow eval` does. */
async function wgflowLogProb(config: Record<string, unknown>, params: HostParams, x: Float32Array): Promise<Float32Array> {
  const c = readRunConfig(config);
  const D = c.dim, n = x.length / D;
  const xs = x.slice();
  let offset = 0;
  if (c.standardize) {
    for (let i = 0; i < xs.length; i++) xs[i] = (xs[i]! - c.standardize.mean[i % D]!) / c.standardize.std[i % D]!;
    offset = c.standardize.std.reduce((a, s) => a + Math.log(s), 0);
  }
  const flow = flowFromCheckpoint(config, params);
  const lp = noGrad(() => scope(() => flow.logProb(tensor(xs, [n, D]))));
  const v = await lp.data();
  lp.dispose();
  flow.dispose();
  return Float32Array.from(v, (a) => a - offset);
}

/** Exported, encoded, decoded: the state dict as a reader of the file sees it. */
async function exported(config: Record<string, unknown>, params: HostParams) {
  const sd = await flowToTorch(config, params);
  const back = decodeSafetensors(encodeSafetensors(sd.tensors, sd.metadata));
  return { tensors: back.tensors as Record<string, RefTensor>, metadata: back.metadata };
}

const refAll = (sd: Record<string, RefTensor>, meta: Record<string, string>, x: Float32Array, D: number) =>
  Array.from({ length: x.length / D }, (_, r) => refLogProb(sd, meta, x.subarray(r * D, (r + 1) * D)));

function expectNear(got: ArrayLike<number>, want: ArrayLike<number>, label: string): void {
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `${label} row ${i}: ${got[i]} vs ${want[i]}`).toBeLessThan(1e-4 * (1 + Math.abs(want[i]!)));
}

const CASES: { name: string; method: Method; options: Record<string, unknown>; dim: number; kinds: string[] }[] = [
  { name: 'realnvp 2-D', method: 'realnvp', options: { layers: 3, hidden: [8, 8] }, dim: 2, kinds: ['actnorm', 'affine-coupling'] },
  { name: 'realnvp 3-D, data file, diag base, selu', method: 'realnvp', options: { layers: 3, hidden: [7], base: 'diag', activation: 'selu' }, dim: 3, kinds: ['permutation'] },
  { name: 'nice 5-D, tanh', method: 'nice', options: { layers: 2, hidden: [5, 3], activation: 'tanh' }, dim: 5, kinds: ['additive-coupling', 'actnorm'] },
  { name: 'glow 3-D, LU', method: 'glow', options: { layers: 2, hidden: [6] }, dim: 3, kinds: ['lu-linear'] },
  { name: 'glow 3-D, dense, silu', method: 'glow', options: { layers: 2, hidden: [6], linear: 'dense', activation: 'silu' }, dim: 3, kinds: ['dense-linear'] },
  { name: 'planar 2-D', method: 'planar', options: { layers: 5 }, dim: 2, kinds: ['planar'] },
  { name: 'radial 3-D', method: 'radial', options: { layers: 5 }, dim: 3, kinds: ['radial'] },
  { name: 'maf 3-D, sigmoid', method: 'maf', options: { layers: 2, hidden: [7, 5], activation: 'sigmoid' }, dim: 3, kinds: ['maf'] },
];

/** Neural spline flows, trained a few steps (both variants; awkward dims and bins: 1-D, 5-D, K = 2, 3, 7). */
const NSF_CASES: { name: string; options: Record<string, unknown>; dim: number; kinds: string[] }[] = [
  { name: 'nsf coupling 2-D, 8 bins', options: { layers: 2, hidden: [8, 8] }, dim: 2, kinds: ['actnorm', 'spline-coupling'] },
  { name: 'nsf coupling 5-D, 3 bins, bound 2, tanh, diag base', options: { layers: 3, hidden: [7], bins: 3, bound: 2, activation: 'tanh', base: 'diag' }, dim: 5, kinds: ['permutation', 'spline-coupling'] },
  { name: 'nsf autoregressive 3-D, 7 bins, bound 2.5, sigmoid', options: { variant: 'autoregressive', layers: 2, hidden: [7, 5], bins: 7, bound: 2.5, activation: 'sigmoid' }, dim: 3, kinds: ['spline-autoregressive'] },
  { name: 'nsf autoregressive 1-D, 2 bins', options: { variant: 'autoregressive', layers: 2, hidden: [5], bins: 2, bound: 1.5 }, dim: 1, kinds: ['spline-autoregressive'] },
];

/** The spline hyper-parameters in the metadata: the run's bins and bound, nflows' floors, the identity's derivative shift. */
function expectSplineMetadata(metadata: Record<string, string>, opts: Record<string, unknown>): void {
  expect(metadata).toMatchObject({ spline_bins: String(opts.bins ?? 8), spline_bound: String(opts.bound ?? 3), spline_min_bin_width: '0.001', spline_min_bin_height: '0.001', spline_min_derivative: '0.001' });
  // softplus(0 + shift) + min_derivative = 1: a zero output is the identity's derivative.
  const shift = Number(metadata.spline_derivative_shift);
  expect(Math.abs(Math.log1p(Math.exp(shift)) + 0.001 - 1)).toBeLessThan(1e-12);
}

/** The state dict with the rows `order` of the last conditioner layer (weight, bias, mask) of layer i taken in a new order. */
function reorderOutputs(sd: Record<string, RefTensor>, i: number, order: (r: number) => number): Record<string, RefTensor> {
  let l = 0;
  while (sd[`layers.${i}.net.${2 * l + 2}.weight`]) l++;
  const out = { ...sd };
  for (const s of ['weight', 'bias', 'mask']) {
    const t = sd[`layers.${i}.net.${2 * l}.${s}`];
    if (!t) continue;
    const cols = t.shape.length === 2 ? t.shape[1]! : 1;
    out[`layers.${i}.net.${2 * l}.${s}`] = { shape: t.shape, data: Array.from({ length: t.data.length }, (_, k) => t.data[order(Math.floor(k / cols)) * cols + (k % cols)]!) };
  }
  return out;
}

describe('flow checkpoints in the torch layout', () => {
  for (const c of CASES) {
    test(`${c.name}: the exported file's float64 log-density = wgflow's`, async () => {
      const { config, params } = await model(c.method, c.options, c.dim);
      const { tensors, metadata } = await exported(config, params);
      expect(metadata).toMatchObject({ format: FLOW_TORCH_FORMAT, method: c.method, dim: String(c.dim) });
      const kinds = JSON.parse(metadata.layers!) as string[];
      for (const k of c.kinds) expect(kinds).toContain(k);
      // nn.Linear's [out, in] and a bias per weight.
      for (const [k, t] of Object.entries(tensors)) if (/\.net\.\d+\.weight$/.test(k)) expect(tensors[k.replace(/weight$/, 'bias')]!.shape).toEqual([t.shape[0]]);
      const x = points(c.dim);
      const ref = refAll(tensors, metadata, x, c.dim);
      expect(ref.every(Number.isFinite)).toBe(true);
      expectNear(await wgflowLogProb(config, params, x), ref, c.name);
    }, 60_000);
  }

  for (const c of NSF_CASES) {
    test(`${c.name}, trained: the exported file's float64 log-density = wgflow's`, async () => {
      const { config, params } = await trained('nsf', c.options, c.dim);
      const { tensors, metadata } = await exported(config, params);
      expect(metadata).toMatchObject({ format: FLOW_TORCH_FORMAT, method: 'nsf', dim: String(c.dim) });
      const kinds = JSON.parse(metadata.layers!) as string[];
      for (const k of c.kinds) expect(kinds).toContain(k);
      expectSplineMetadata(metadata, c.options);
      const x = points(c.dim, 11);
      const ref = refAll(tensors, metadata, x, c.dim);
      expect(ref.every(Number.isFinite)).toBe(true);
      expectNear(await wgflowLogProb(config, params, x), ref, c.name);
    }, 120_000);
  }

  test('a flow family without a layout is refused by name, not written half-way', async () => {
    const { config, params } = await model('realnvp', { layers: 2, hidden: [4] }, 2);
    const c = readRunConfig(config);
    const other = { ...config, method: 'ffjord', arch: { ...c.arch, method: 'ffjord' } };
    await expect(flowToTorch(other, params)).rejects.toThrow(/a ffjord flow has no torch layout yet; exported flows: realnvp, nice, glow, planar, radial, maf, nsf/);
  });

  test('the comparison can fail: a flipped coupling mask or a missing permutation changes the density', async () => {
    const { config, params } = await model('realnvp', { layers: 3, hidden: [7] }, 3);
    const { tensors, metadata } = await exported(config, params);
    const x = points(3);
    const ref = refAll(tensors, metadata, x, 3);
    const mask = tensors['layers.1.mask']!;
    const flipped = { ...tensors, 'layers.1.mask': { data: Array.from(mask.data, (v) => 1 - v), shape: mask.shape } };
    const permIdx = (JSON.parse(metadata.layers!) as string[]).indexOf('permutation');
    const noPerm = { ...tensors, [`layers.${permIdx}.perm`]: { data: [0, 1, 2], shape: [3] } };
    for (const bad of [flipped, noPerm]) {
      const worst = Math.max(...refAll(bad, metadata, x, 3).map((v, i) => Math.abs(v - ref[i]!)));
      expect(worst).toBeGreaterThan(1e-2);
    }
  }, 60_000);
});

describe('the spline comparison can fail', () => {
  /** Largest |Δ log p| of a mutated file against the exported one, over the points. */
  const worst = (bad: Record<string, RefTensor>, badMeta: Record<string, string>, ref: number[], x: Float32Array, D: number) =>
    Math.max(...refAll(bad, badMeta, x, D).map((v, i) => Math.abs(v - ref[i]!)));

  test('coupling: widths and heights swapped, the derivatives unshifted, or the other mask change the density', async () => {
    const opts = { layers: 2, hidden: [8, 8], bins: 5 };
    const { config, params } = await trained('nsf', opts, 2);
    const { tensors, metadata } = await exported(config, params);
    const x = points(2, 11);
    const ref = refAll(tensors, metadata, x, 2);
    expectNear(await wgflowLogProb(config, params, x), ref, 'unmutated');
    const i = (JSON.parse(metadata.layers!) as string[]).indexOf('spline-coupling');
    const K = 5, P = 3 * K - 1;
    // a wrong split: the first K outputs of each coordinate read as heights and the next K as widths
    const swapped = reorderOutputs(tensors, i, (r) => { const q = r % P; return r - q + (q < K ? q + K : q < 2 * K ? q - K : q); });
    const mask = tensors[`layers.${i}.mask`]!;
    const flipped = { ...tensors, [`layers.${i}.mask`]: { data: Array.from(mask.data, (v) => 1 - v), shape: mask.shape } };
    expect(worst(swapped, metadata, ref, x, 2)).toBeGreaterThan(1e-2);
    expect(worst(tensors, { ...metadata, spline_derivative_shift: '0' }, ref, x, 2)).toBeGreaterThan(1e-2);
    expect(worst(flipped, metadata, ref, x, 2)).toBeGreaterThan(1e-2);
  }, 120_000);

  test('autoregressive: the outputs read per coordinate ([D, 3K − 1]) instead of per parameter ([3K − 1, D]) change the density', async () => {
    const opts = { variant: 'autoregressive', layers: 2, hidden: [9], bins: 4 };
    const { config, params } = await trained('nsf', opts, 3);
    const { tensors, metadata } = await exported(config, params);
    const x = points(3, 11);
    const ref = refAll(tensors, metadata, x, 3);
    const i = (JSON.parse(metadata.layers!) as string[]).indexOf('spline-autoregressive');
    const D = 3, P = 3 * 4 - 1;
    // row q·D + j (parameter q of coordinate j) taken from row j·P + q
    const transposed = reorderOutputs(tensors, i, (r) => (r % D) * P + Math.floor(r / D));
    expect(worst(transposed, metadata, ref, x, 3)).toBeGreaterThan(1e-2);
    expect(worst(tensors, { ...metadata, spline_min_bin_width: '0.1' }, ref, x, 3)).toBeGreaterThan(1e-3);
  }, 120_000);
});

describe('wgflow export --format torch on a flow checkpoint', () => {
  const run = runWgflow;

  const CLI: [Method, Record<string, unknown>][] = [['glow', { layers: 2, hidden: [6] }], ['nsf', { variant: 'autoregressive', layers: 2, hidden: [6], bins: 4 }]];
  for (const [method, options] of CLI) {
    test(`${method}: writes the layout; the file read back gives the checkpoint's log-density`, async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'wgflow-torch-flow-'));
      try {
        const { config, params } = await model(method, options, 3);
        const count = Object.values(params).reduce((a, p) => a + p.data.length, 0);
        const ckpt = path.join(dir, 'model.safetensors');
        writeCheckpoint(ckpt, {
          config,
          trainConfig: { method, source: null, target: null, data_file: 'data.npy', steps: 10, batch: 16, lr: 1e-3, seed: 3, options },
          state: { step: 10, params, adam: { t: 10, m: new Float32Array(count), v: new Float32Array(count) }, extra: { initialized: true }, losses: [] },
        });
        const out = path.join(dir, 'flow.torch.safetensors');
        const r = await run(['export', '--checkpoint', ckpt, '--format', 'torch', '--out', out]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`${method} flow, 3-D, \\d+ layers.*docs/torch-flows\\.md`));
        const back = decodeSafetensors(readFileSync(out));
        expect(back.metadata.format).toBe(FLOW_TORCH_FORMAT);
        const x = points(3);
        expectNear(await wgflowLogProb(config, params, x), refAll(back.tensors as Record<string, RefTensor>, back.metadata, x, 3), 'cli export');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, 180_000);
  }
});
