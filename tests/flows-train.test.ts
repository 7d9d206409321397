/**
 * flows/train.ts: maximum-likelihood training through the TrainJob contract (toy sets and user
 * files of any dimension), held-out NLL in nats in the data's own units, a trained 2-D density
 * that integrates to 1, exact resume, the CLI helpers (sampleFlow/evalFlow), and clear errors for
 * bad input (wrong dimension, non-finite data, empty files, bad options).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrainConfig, TrainOutcome, TrainState } from '../train/contract';
import { encodeCsv, encodeNpy, loadDataFile } from '../datasets/files';
import { Rng } from '../engine/philox';
import { resolveArch } from '../flows/build';
import { densityGrid, evalFlow, flowFromCheckpoint, meanNll, sampleFlow } from '../flows/checkpoint';
import { flowJob } from '../train/registry';
import { expectClose, gpu } from './helpers';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-flows-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  await gpu();
});

function cfg(over: Partial<TrainConfig>): TrainConfig {
  return { method: 'realnvp', source: null, target: 'ffjord-8gaussians', steps: 10, batch: 64, lr: 1e-3, seed: 0, options: {}, ...over };
}

/** n rows of a correlated 3-D Gaussian x = μ + L·ε, scaled by 100 (so units matter). */
function gaussian3(n: number, seed: number): { data: Float32Array; n: number; dim: number; entropy: number } {
  const L = [[1, 0, 0], [0.8, 0.6, 0], [-0.5, 0.3, 0.4]].map((r) => r.map((v) => v * 100));
  const mu = [300, -50, 10];
  const rng = new Rng(seed);
  const data = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const e = [rng.normal(), rng.normal(), rng.normal()];
    for (let a = 0; a < 3; a++) data[i * 3 + a] = mu[a]! + L[a]!.reduce((s, v, b) => s + v * e[b]!, 0);
  }
  const logDetL = Math.log(L[0]![0]! * L[1]![1]! * L[2]![2]!);
  return { data, n, dim: 3, entropy: 1.5 * (1 + Math.log(2 * Math.PI)) + logDetL };
}

describe('training on a toy set', () => {
  let out: TrainOutcome;
  beforeAll(async () => {
    out = await flowJob.run(cfg({ steps: 200, batch: 128, lr: 3e-3, options: { layers: 4, hidden: [32, 32], testSize: 2000, grid: 24 } }));
  });

  test('outcome: held-out NLL below the Gaussian fit, samples, density grid, full state', () => {
    expect(out.metrics.nll).toBeGreaterThan(2.834 - 0.05); // the entropy is a floor (up to test-set noise)
    expect(out.metrics.nll).toBeLessThan(4.1); // a Gaussian fit of this data gives ≈ 4.26
    expect(out.metrics.w2).toBeGreaterThan(0);
    expect(out.metrics.npe).toBeNull();
    expect(out.metrics.ms_per_step).toBeGreaterThan(0);
    expect(out.metrics.dispatches_per_step).toBeGreaterThan(0);
    expect(out.samples.n).toBe(2048);
    expect(out.samples.dim).toBe(2);
    expect(out.samples.data.every(Number.isFinite)).toBe(true);
    expect(out.target.n).toBe(2048);
    expect(out.density!.gw).toBe(24);
    expect(out.density!.values.length).toBe(24 * 24);
    expect(out.density!.values.every(Number.isFinite)).toBe(true);
    expect(out.state.step).toBe(200);
    expect(out.state.adam.t).toBe(200);
    expect(Object.keys(out.state.params).length).toBeGreaterThan(0);
    expect(out.state.losses.at(-1)!.step).toBe(200);
    expect(out.config.method).toBe('realnvp');
  });

  test('the trained density integrates to 1 ± 0.02 on a grid', async () => {
    const flow = flowFromCheckpoint(out.config, out.state.params);
    const g = 256, lo = -7, hi = 7;
    const lp = await densityGrid(flow, [lo, hi, lo, hi], g, g);
    const cell = ((hi - lo) / g) ** 2;
    const mass = lp.reduce((a, v) => a + Math.exp(v), 0) * cell;
    expect(Math.abs(mass - 1), `∫ p = ${mass}`).toBeLessThan(0.02);
    flow.dispose();
  });

  test('evaluation in chunks (the last one padded to the chunk shape) equals one pass', async () => {
    const flow = flowFromCheckpoint(out.config, out.state.params);
    const m = { data: out.target.data.subarray(0, 2 * 30), n: 30, dim: 2 };
    const whole = await meanNll(flow, m);
    for (const batch of [7, 29]) expect(Math.abs((await meanNll(flow, m, batch)) - whole), `batch ${batch}`).toBeLessThan(1e-5);
    flow.dispose();
  });

  test('sampleFlow and evalFlow work from the saved config and parameters', async () => {
    const ckpt = { config: out.config, params: out.state.params, step: out.state.step };
    const s = await sampleFlow(ckpt, { n: 500, seed: 3 });
    expect(s.samples.n).toBe(500);
    expect(s.samples.dim).toBe(2);
    const e = await evalFlow(ckpt, { target: null, n: 1000, seed: 1 });
    expect(Math.abs(e.nll! - out.metrics.nll!)).toBeLessThan(0.15);
    expect(e.w2).toBeGreaterThan(0);
    await expect(evalFlow(ckpt, { target: null, n: 10, seed: 1, data: { data: new Float32Array(30), n: 10, dim: 3 } })).rejects.toThrow(/dimension 3.*dimension 2/);
  });
});

describe('training on a user file (any dimension)', () => {
  test('3-D .csv: NLL in the data units near the true entropy, samples in data units', async () => {
    const g = gaussian3(3000, 5);
    const file = join(dir, 'g3.csv');
    writeFileSync(file, encodeCsv(g.data, g.n, g.dim));
    const data = loadDataFile(file);
    expect(data.dim).toBe(3);
    const out = await flowJob.run(cfg({ method: 'maf', target: null, data, steps: 60, batch: 128, lr: 3e-3, options: { layers: 2, hidden: [16] } }));
    // Exact model class (a linear-Gaussian MAF contains it): after a short run the NLL is near the entropy.
    expect(out.metrics.nll!).toBeGreaterThan(g.entropy - 0.25);
    expect(out.metrics.nll!).toBeLessThan(g.entropy + 0.6);
    expect(out.density).toBeUndefined();
    expect(out.samples.dim).toBe(3);
    const meanOf = (a: Float32Array, j: number) => a.filter((_, i) => i % 3 === j).reduce((s, v) => s + v, 0) / (a.length / 3);
    expect(Math.abs(meanOf(out.samples.data, 0) - 300)).toBeLessThan(15);
    const cfgOut = out.config as { standardize: { mean: number[]; std: number[] } };
    expect(cfgOut.standardize.std[0]).toBeGreaterThan(50);
    const e = await evalFlow({ config: out.config, params: out.state.params, step: 60 }, { target: null, n: 256, seed: 0, data: { data: g.data.slice(0, 600), n: 200, dim: 3 } });
    expect(Math.abs(e.nll! - out.metrics.nll!)).toBeLessThan(0.5);
  });
});

describe('resume', () => {
  test('3 steps + resume 3 steps gives the parameters of 6 uninterrupted steps', async () => {
    const c = cfg({ method: 'maf', target: 'ffjord-moons', steps: 6, batch: 32, lr: 1e-2, options: { layers: 2, hidden: [8], testSize: 64, grid: 4, w2: false } });
    const full = await flowJob.run(c);
    let mid: TrainState | null = null;
    await flowJob.run(c, { checkpointEvery: 3, onCheckpoint: (s) => { if (s.step === 3) mid = s; } });
    expect(mid).not.toBeNull();
    expect(mid!.step).toBe(3);
    const resumed = await flowJob.run(c, {}, mid!);
    expect(resumed.state.step).toBe(6);
    expect(resumed.state.adam.t).toBe(6);
    for (const [name, p] of Object.entries(full.state.params)) expectClose(resumed.state.params[name]!.data, p.data, { atol: 1e-6, rtol: 1e-6 }, name);
    expect(resumed.metrics.nll).toBeCloseTo(full.metrics.nll!, 5);
  });

  test('chunked gradients (option chunk) train the same parameters as whole batches', async () => {
    const base = { method: 'realnvp' as const, target: 'ffjord-moons', steps: 3, batch: 48, lr: 1e-2 };
    const opts = { layers: 2, hidden: [8], testSize: 64, grid: 4, w2: false };
    const whole = await flowJob.run(cfg({ ...base, options: opts }));
    const chunked = await flowJob.run(cfg({ ...base, options: { ...opts, chunk: 20 } }));
    for (const [name, p] of Object.entries(whole.state.params)) expectClose(chunked.state.params[name]!.data, p.data, { atol: 2e-5, rtol: 1e-4 }, name);
  });

  test('a state from another architecture is refused clearly', async () => {
    const a = await flowJob.run(cfg({ method: 'maf', steps: 1, batch: 8, options: { layers: 1, hidden: [8], testSize: 16, grid: 4, w2: false } }));
    await expect(flowJob.run(cfg({ method: 'realnvp', steps: 2, batch: 8, options: { layers: 1, hidden: [8], testSize: 16, grid: 4, w2: false } }), {}, a.state)).rejects.toThrow(/missing from the checkpoint/);
  });
});

test('default depth: MAF has 10 layers in 2-D (a 2-D MAF layer is one coupling), 5 above; an explicit depth wins', () => {
  expect([2, 3, 8].map((d) => resolveArch('maf', d).layers)).toEqual([10, 5, 5]);
  expect(resolveArch('maf', 2, { layers: 4 }).layers).toBe(4);
  expect(resolveArch('realnvp', 2).layers).toBe(8);
  expect(() => resolveArch('realnvp', 1)).toThrow(/use planar or radial for 1-D data/);
});

describe('bad input is a clear error', () => {
  test('non-finite data (in memory, and in .npy / .csv files)', async () => {
    const d = new Float32Array([0, 1, NaN, 2, 3, 4]);
    await expect(flowJob.run(cfg({ target: null, data: { data: d, n: 3, dim: 2 } }))).rejects.toThrow(/row 2, column 1 is NaN/);
    const file = join(dir, 'inf.npy');
    writeFileSync(file, encodeNpy(new Float32Array([1, 2, Infinity, 4, 5, 6]), [3, 2]));
    expect(() => loadDataFile(file)).toThrow(/Infinity at row 1, column 0 .*not a finite/);
    await expect(flowJob.run(cfg({ target: null, data: { data: new Float32Array([1, 2, Infinity, 4]), n: 2, dim: 2 } }))).rejects.toThrow(/row 2, column 1 is Infinity \(non-finite values are not accepted\)/);
    writeFileSync(join(dir, 'nan.csv'), 'a,b\n1,2\nnan,3\n');
    expect(() => loadDataFile(join(dir, 'nan.csv'))).toThrow(/not a finite/);
  });

  test('empty files and empty data', async () => {
    for (const name of ['empty.csv', 'empty.npy']) {
      writeFileSync(join(dir, name), '');
      expect(() => loadDataFile(join(dir, name))).toThrow(/is empty/);
    }
    writeFileSync(join(dir, 'header-only.csv'), 'x,y\n');
    expect(() => loadDataFile(join(dir, 'header-only.csv'))).toThrow(/no data rows/);
    await expect(flowJob.run(cfg({ target: null, data: { data: new Float32Array(0), n: 0, dim: 2 } }))).rejects.toThrow(/empty \(0 rows\)/);
    await expect(flowJob.run(cfg({ target: null, data: { data: new Float32Array(2), n: 1, dim: 2 } }))).rejects.toThrow(/at least 2 are needed/);
  });

  test('wrong dimension, unknown names, bad options', async () => {
    await expect(flowJob.run(cfg({ method: 'realnvp', target: null, data: { data: new Float32Array(10), n: 10, dim: 1 } }))).rejects.toThrow(/dimension ≥ 2, got 1/);
    await expect(flowJob.run(cfg({ target: 'nope' }))).rejects.toThrow(/unknown dataset "nope"; accepted: .*checkerboard/);
    await expect(flowJob.run(cfg({ method: 'otcfm' }))).rejects.toThrow(/not a flow method/);
    await expect(flowJob.run(cfg({ options: { hidden: 'wide' } }))).rejects.toThrow(/flow option hidden/);
    await expect(flowJob.run(cfg({ options: { linear: 'qr' } }))).rejects.toThrow(/flow option linear: "qr" .*accepted: lu, dense/);
    await expect(flowJob.run(cfg({ target: null }))).rejects.toThrow(/needs a target dataset/);
    await expect(flowJob.run(cfg({ data: { data: new Float32Array(4), n: 2, dim: 2 } }))).rejects.toThrow(/either a target dataset or data/);
    await expect(flowJob.run(cfg({ batch: 0 }))).rejects.toThrow(/batch = 0/);
    await expect(flowJob.run(cfg({ lr: -1 }))).rejects.toThrow(/lr = -1/);
  });
});
