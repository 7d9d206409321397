/**
 * Conditional generation (issue 13 item 3): labelled datasets, the label readers' errors, pairs
 * within classes, the context columns in the fused step (= the tape step, = central differences),
 * in the field and ODE kernels (= float64, = the op-by-op solver), classifier-free guidance
 * (scale 0 = the unconditional field), and a conditional OT-CFM model on 8gaussians whose samples
 * land in their label's mode.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { getBackend, tensor, zeros } from '../engine';
import { Rng } from '../engine/philox';
import { DATASETS, labelledDatasets } from '../datasets/toy2d';
import { checkLabels, parseLabelList, splitLabelColumn } from '../datasets/labels';
import { classGroups, conditionalBatch, oneHot, pairWithinClasses, type ClassPairing } from '../cfm/conditional';
import { nearestLabels } from '../cfm/conditional-eval';
import { MATCHERS } from '../cfm/matchers';
import { mlpForwardF64, VectorField } from '../cfm/mlp';
import { odeSolve } from '../cfm/ode';
import { CfmStepper, fusedGradients, type StepperOptions } from '../cfm/step';
import { cfmSample } from '../cfm/train';
import { resolveConfig } from '../cfm/config';
import { fieldKernel, odeUniforms } from '../kernels/ode';
import { resolveCondition } from '../train/options';
import { cfmJob } from '../train/registry';
import { cfmCheckpoint } from './fixtures/checkpoints';
import type { TrainConfig } from '../train/contract';
import { flowJob } from '../train/registry';
import { encodeCheckpoint } from '../train/checkpoint';
import { main } from '../cli/main';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { gpu } from './helpers';

const ROOT = path.resolve(__dirname, '..');
const dir = mkdtempSync(path.join(tmpdir(), 'wgflow-conditional-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function wgflow(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '', stderr = '';
  const code = await main(argv, { root: ROOT, cwd: dir, stdout: { write: (x: string) => ((stdout += x), true) }, stderr: { write: (x: string) => ((stderr += x), true) } });
  return { code, stdout, stderr };
}

/** exit 2, the message matching, no stack trace. */
function expectRefused(r: { code: number; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(async () => {
  await gpu();
});

describe('labelled datasets', () => {
  test('the labelled samplers draw exactly the unlabelled points; labels in range and meaningful', () => {
    expect(labelledDatasets()).toEqual(expect.arrayContaining(['8gaussians', 'moons', 'checkerboard', 'pinwheel', 'rings', 'ffjord-8gaussians', 'paper-8gaussians']));
    for (const name of labelledDatasets()) {
      const ds = DATASETS[name]!;
      const a = ds.sample(257, new Rng(5, 9));
      const b = ds.labels!.sample(257, new Rng(5, 9));
      expect(b.points, name).toEqual(a);
      expect(b.labels.length).toBe(257);
      const seen = new Set(b.labels);
      for (const y of b.labels) expect(y >= 0 && y < ds.labels!.classes, `${name} label ${y}`).toBe(true);
      expect(seen.size, `${name}: every class appears in 257 draws`).toBe(ds.labels!.classes);
    }
    // 8gaussians: the label is the mode whose centre is nearest (radius 5, std 0.56: separable).
    const dirs = [[1, 0], [-1, 0], [0, 1], [0, -1], [Math.SQRT1_2, Math.SQRT1_2], [Math.SQRT1_2, -Math.SQRT1_2], [-Math.SQRT1_2, Math.SQRT1_2], [-Math.SQRT1_2, -Math.SQRT1_2]];
    const g = DATASETS['8gaussians']!.labels!.sample(500, new Rng(1, 2));
    for (let i = 0; i < 500; i++) {
      const d2 = dirs.map(([cx, cy]) => (g.points[2 * i]! - 5 * cx!) ** 2 + (g.points[2 * i + 1]! - 5 * cy!) ** 2);
      expect(d2.indexOf(Math.min(...d2))).toBe(g.labels[i]);
    }
    // checkerboard: label 2·column + upper/lower square.
    const c = DATASETS.checkerboard!.labels!.sample(500, new Rng(1, 3));
    for (let i = 0; i < 500; i++) {
      const col = Math.floor(c.points[2 * i]! / 2) + 2;
      const row = Math.floor(c.points[2 * i + 1]! / 2) + 2;
      expect(c.labels[i]).toBe(2 * col + (row >= 2 ? 1 : 0));
    }
  });
});

describe('label readers: errors name the row and value', () => {
  const m = { data: Float32Array.from([0.5, 1, 2, 0.25, 0, 3, 1.5, 2, 1]), n: 3, dim: 3 };
  test('splitLabelColumn', () => {
    const s = splitLabelColumn(m, 3, 'data file "x.csv"');
    expect(Array.from(s.labels.labels)).toEqual([2, 3, 1]);
    expect(s.labels.numClasses).toBe(4);
    expect(Array.from(s.data.data)).toEqual([0.5, 1, 0.25, 0, 1.5, 2]);
    expect(s.data.dim).toBe(2);
    expect(() => splitLabelColumn(m, 1, 'data file "x.csv"')).toThrow(/data file "x.csv": row 1, label column 1 holds 0.5; accepted: integers 0\.\.1023/);
    expect(() => splitLabelColumn({ data: Float32Array.from([1, -1, 2, 3]), n: 2, dim: 2 }, 2)).toThrow(/row 1, label column 2 holds -1/);
    expect(() => splitLabelColumn(m, 4)).toThrow(/label column 4 is not accepted; accepted: 1\.\.3/);
    expect(() => splitLabelColumn(m, 0)).toThrow(/label column 0 is not accepted/);
    expect(() => splitLabelColumn({ data: Float32Array.from([1, 2]), n: 2, dim: 1 }, 1)).toThrow(/no data columns/);
  });
  test('checkLabels, parseLabelList, resolveCondition', () => {
    expect(() => checkLabels({ labels: Int32Array.from([0, 3]), numClasses: 3 }, 2)).toThrow(/row 2 has label 3; accepted: integers 0\.\.2/);
    expect(() => checkLabels({ labels: Int32Array.from([0]), numClasses: 3 }, 2)).toThrow(/1 labels for 2 rows/);
    expect(() => checkLabels({ labels: Int32Array.from([0, 1]), numClasses: 0 }, 2)).toThrow(/numClasses = 0 is not accepted/);
    expect(parseLabelList('all', 3)).toEqual([0, 1, 2]);
    expect(parseLabelList('2, 0', 3)).toEqual([2, 0]);
    expect(() => parseLabelList('3', 3)).toThrow(/"3" is not a label of this model; accepted: integers 0\.\.2/);
    expect(() => parseLabelList('1,,2', 3)).toThrow(/accepted: a label 0\.\.2/);
    expect(() => parseLabelList('-1', 3)).toThrow(/"-1" is not a label/);
    const base = { options: {}, target: '8gaussians' as string | null };
    expect(resolveCondition(base)).toBeNull();
    expect(resolveCondition({ ...base, options: { condition: 'labels' } })).toEqual({ kind: 'labels', numClasses: 8 });
    expect(() => resolveCondition({ ...base, options: { condition: 'label' } })).toThrow(/option condition = "label" is not accepted; accepted: none, labels, context/);
    expect(() => resolveCondition({ ...base, target: 'swissroll', options: { condition: 'labels' } })).toThrow(/target "swissroll" has no labels; labelled sets: .*8gaussians/);
    const data = { data: new Float32Array(4), n: 2, dim: 2 };
    expect(() => resolveCondition({ ...base, data, options: { condition: 'labels' } })).toThrow(/needs the labels of its rows/);
    expect(() => resolveCondition({ ...base, data, labels: { labels: Int32Array.from([0, 1]), numClasses: 2 } })).toThrow(/labels were given but option condition is "none"/);
    expect(() => resolveCondition({ ...base, data, options: { condition: 'context' }, context: { data: new Float32Array(3), n: 3, dim: 1 } })).toThrow(/context: expected 2 rows/);
    const cfg: TrainConfig = { method: 'icfm', source: 'gaussian', target: '8gaussians', steps: 1, batch: 8, lr: 1e-3, seed: 0, options: { labelDropout: 0.2 } };
    expect(() => resolveConfig(cfg)).toThrow(/option labelDropout: only a conditional model takes it/);
    expect(() => resolveConfig({ ...cfg, options: { condition: 'labels', labelDropout: 1 } })).toThrow(/option labelDropout: 1 is not a probability in \[0, 1\)/);
    expect(resolveConfig({ ...cfg, options: { condition: 'labels' } })).toMatchObject({ condition: { kind: 'labels', numClasses: 8 }, labelDropout: 0.1, guidance: 1 });
    expect(resolveConfig({ ...cfg, options: {} })).not.toHaveProperty('condition');
  });
});

describe('couplings within classes', () => {
  const B = 97, d = 3, K = 5;
  const rng = new Rng(11, 1);
  const x0 = Float32Array.from({ length: B * d }, () => rng.normal());
  const x1 = Float32Array.from({ length: B * d }, () => 3 + rng.normal());
  const y = Int32Array.from({ length: B }, () => rng.int(K));
  const base: ClassPairing = { coupling: 'exact', pairing: 'replacement', reg: 0.5, normalizeCost: false, sinkhornMaxIter: 500, sinkhornTol: 1e-6 };
  for (const coupling of ['independent', 'exact', 'sinkhorn'] as const) {
    for (const pairing of ['replacement', 'permutation'] as const) {
      test(`${coupling}, ${pairing}: no pair crosses classes; each class keeps its count`, () => {
        const p = pairWithinClasses(x0, x1, y, K, d, { ...base, coupling, pairing }, new Rng(2, 3));
        expect(p.i.length).toBe(B);
        for (let b = 0; b < B; b++) expect(y[p.i[b]!], `pair ${b}`).toBe(y[p.j[b]!]);
        const count = new Int32Array(K);
        for (let b = 0; b < B; b++) count[y[p.j[b]!]!]!++;
        expect(Array.from(count)).toEqual(classGroups(y, K).map((g) => g.length));
        if (pairing === 'permutation') for (const g of classGroups(y, K)) expect(new Set(Array.from(p.i).filter((i) => y[i] === y[g[0]!])).size).toBe(g.length);
      });
    }
  }
  test('exact within a class is that block\'s optimal assignment (cost ≤ any class-respecting permutation tried)', () => {
    const p = pairWithinClasses(x0, x1, y, K, d, { ...base, pairing: 'permutation' }, new Rng(2, 3));
    const cost = (i: ArrayLike<number>, j: ArrayLike<number>) => { let s = 0; for (let b = 0; b < i.length; b++) for (let k = 0; k < d; k++) s += (x0[i[b]! * d + k]! - x1[j[b]! * d + k]!) ** 2; return s; };
    const opt = cost(p.i, p.j);
    const r = new Rng(4, 4);
    for (let trial = 0; trial < 20; trial++) {
      const j = Int32Array.from(p.j);
      for (const g of classGroups(y, K)) {
        const perm = r.permutation(g.length);
        const pos = Array.from(p.i.keys()).filter((b) => y[p.i[b]!] === y[g[0]!]);
        const js = pos.map((b) => p.j[b]!);
        pos.forEach((b, q) => (j[b] = js[perm[q]!]!));
      }
      expect(cost(p.i, j)).toBeGreaterThanOrEqual(opt - 1e-3);
    }
  });
  test('the step batch: context = the x1 row\'s one-hot, ∅ = zeros at rate p, source by class when labelled', () => {
    const Bn = 400, K8 = 8;
    // Points that carry their label in their first coordinate, so every check below is exact.
    const labelled = (off: number) => (m: number, r: Rng) => {
      const labels = Int32Array.from({ length: m }, () => r.int(K8));
      return { labels, points: Float32Array.from({ length: 2 * m }, (_, k) => (k % 2 === 0 ? off + labels[k >> 1]! + 0.5 * r.uniform() : r.normal())) };
    };
    const target = { ...labelled(100)(Bn, new Rng(1, 5)), context: null };
    const xy = conditionalBatch({ ...base, cond: { kind: 'labels', numClasses: K8 }, batch: Bn, dim: 2, labelDropout: 0.25, x0: null, byClass: labelled(0), target, rngs: { source: new Rng(1, 6), pairing: new Rng(1, 7), dropout: new Rng(1, 8) } });
    const ctx = xy.subarray(4 * Bn);
    let dropped = 0;
    for (let b = 0; b < Bn; b++) {
      const row = Array.from(ctx.subarray(b * K8, (b + 1) * K8));
      const k1 = Math.floor(xy[2 * (Bn + b)]!) - 100;
      const k0 = Math.floor(xy[2 * b]!);
      expect(k0, `source row ${b} of the target's class`).toBe(k1);
      if (row.every((v) => v === 0)) dropped++;
      else expect(row).toEqual(Array.from(oneHot([k1], K8)));
    }
    expect(dropped / Bn).toBeGreaterThan(0.18);
    expect(dropped / Bn).toBeLessThan(0.32);
  });
});

/** Batch of x0, x1 rows then context rows (one-hot of C classes, some ∅). */
function condBatch(B: number, d: number, C: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const xy = new Float32Array(2 * B * d + B * C);
  for (let k = 0; k < 2 * B * d; k++) xy[k] = Math.fround(k < B * d ? rng.normal() : 2 + 0.5 * rng.normal());
  for (let b = 0; b < B; b++) {
    const y = b === 0 ? 0 : rng.int(C + 1); // C: the null context ∅ (row 0 always labelled)
    if (y < C) xy[2 * B * d + b * C + y] = 1;
  }
  return xy;
}

describe('context columns in the training step', () => {
  const cases = [
    { method: 'otcfm' as const, B: 37, d: 3, C: 4, hidden: [16, 24], S: 4 },
    { method: 'sbcfm' as const, B: 1, d: 2, C: 1, hidden: [8], S: 8 },
    { method: 'fm' as const, B: 61, d: 2, C: 10, hidden: [32, 32], S: 3 },
  ];
  for (const c of cases) {
    test(`fused step = tape step (${c.method}, batch ${c.B}, d ${c.d}, ${c.C} context columns)`, async () => {
      const vf = new VectorField({ dim: c.d, hidden: c.hidden, activation: 'selu', context: c.C }, new Rng(3));
      const opts: StepperOptions = { method: c.method, sigma: MATCHERS[c.method].sigma, batch: c.B, seed: 9, adam: { lr: 1e-3 }, mode: 'tape', samplesPerThread: c.S };
      const xy = condBatch(c.B, c.d, c.C, 12);
      const fused = await fusedGradients(vf, opts, xy, 3);
      const stepper = new CfmStepper(vf, opts);
      getBackend().write(stepper.xy.buffer, xy);
      const { input, target } = stepper.matched(null, 3);
      const ctx = stepper.context();
      const { value, grads } = stepper.lossAndGrads(input, target, ctx);
      expect(fused.loss).toBeCloseTo(await value.item(), 5);
      const flat: number[] = [];
      for (const g of grads) flat.push(...(await g.data()));
      const gmax = Math.max(...flat.map(Math.abs));
      expect(flat.length).toBe(fused.grad.length);
      // The context rows of W0 (inputs d+1 … d+C) get gradient only from rows whose context is set.
      expect(flat.slice((c.d + 1) * c.hidden[0]!, (c.d + 1 + c.C) * c.hidden[0]!).some((v) => v !== 0)).toBe(true);
      for (let k = 0; k < flat.length; k++) expect(Math.abs(fused.grad[k]! - flat[k]!), `gradient ${k}`).toBeLessThan(1e-5 * gmax + 1e-4 * Math.abs(flat[k]!));
      for (const t of [value, input, target, ctx!, ...grads]) t.dispose();
      stepper.dispose();
      vf.dispose();
    });
  }

  test('the fused gradient of a context weight = central differences of the fused loss', async () => {
    const d = 2, C = 3, B = 29;
    const rng = new Rng(7);
    const opts: StepperOptions = { method: 'icfm', sigma: 0, batch: B, seed: 4, adam: { lr: 1e-3 }, samplesPerThread: 4 };
    const xy = condBatch(B, d, C, 5);
    const vf0 = new VectorField({ dim: d, hidden: [12], activation: 'tanh', context: C }, rng);
    const flat = await vf0.params.flat.data();
    const g = (await fusedGradients(vf0, opts, xy, 1)).grad;
    vf0.dispose();
    const lossAt = async (p: Float32Array) => {
      const vf = new VectorField({ dim: d, hidden: [12], activation: 'tanh', context: C }, p);
      const l = (await fusedGradients(vf, opts, xy, 1)).loss;
      vf.dispose();
      return l;
    };
    // W0 rows d+1 … d+C are the context inputs; W0 is [d+1+C, 12] row-major.
    for (const idx of [(d + 1) * 12 + 5, (d + 2) * 12 + 0, (d + C) * 12 + 11]) {
      const h = 1e-2;
      const up = Float32Array.from(flat);
      const dn = Float32Array.from(flat);
      up[idx]! += h;
      dn[idx]! -= h;
      const fd = ((await lossAt(up)) - (await lossAt(dn))) / (2 * h);
      expect(Math.abs(fd - g[idx]!), `param ${idx}: fd ${fd} vs ${g[idx]}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(fd)));
    }
  });
});

describe('context and guidance in the sampling kernels', () => {
  const d = 2, C = 5, n = 23;
  const rng = new Rng(21);
  const x = Float32Array.from({ length: n * d }, () => rng.normal());
  const ctxRows = oneHot(Int32Array.from({ length: n }, (_, b) => (b % 6) - 1), C); // label −1: ∅ rows too

  async function field(vf: VectorField, ctx: Float32Array, w: number, t: number): Promise<Float32Array> {
    const b = getBackend();
    const X = tensor(x, [n, d]);
    const V = zeros([n, d]);
    const Ct = tensor(ctx, [n, C]);
    b.dispatch(b.prepare(fieldKernel(vf.layout, n, 'none', 3, { guidance: w })), [vf.params.flat.buffer, X.buffer, V.buffer, Ct.buffer], odeUniforms(t, 0, 0, n));
    const v = await V.data();
    for (const z of [X, V, Ct]) z.dispose();
    return v;
  }

  test('the field = float64; guidance w: v∅ + w(vc − v∅); w = 0 is the unconditional field exactly', async () => {
    const vf = new VectorField({ dim: d, hidden: [16, 16], activation: 'selu', context: C }, new Rng(8));
    const flat = await vf.params.flat.data();
    const t = 0.37;
    const v1 = await field(vf, ctxRows, 1, t);
    const v0 = await field(vf, ctxRows, 0, t);
    const vNull = await field(vf, new Float32Array(n * C), 1, t);
    const v25 = await field(vf, ctxRows, 2.5, t);
    for (let b = 0; b < n; b++) {
      const xr = x.subarray(b * d, (b + 1) * d);
      const vc = mlpForwardF64(vf.layout, flat, xr, t, ctxRows.subarray(b * C, (b + 1) * C));
      const vn = mlpForwardF64(vf.layout, flat, xr, t, new Float64Array(C));
      for (let k = 0; k < d; k++) {
        expect(Math.abs(v1[b * d + k]! - vc[k]!)).toBeLessThan(1e-5 * (1 + Math.abs(vc[k]!)));
        expect(v0[b * d + k]).toBe(vNull[b * d + k]); // bit for bit: fma(0, Δ, v∅) = v∅
        const g = vn[k]! + 2.5 * (vc[k]! - vn[k]!);
        expect(Math.abs(v25[b * d + k]! - g)).toBeLessThan(1e-5 * (1 + Math.abs(g)));
      }
    }
    vf.dispose();
  });

  test('fused RK4 with context and guidance = the op-by-op solver (layer level)', async () => {
    const vf = new VectorField({ dim: d, hidden: [16, 16], activation: 'selu', context: C }, new Rng(9));
    for (const w of [1, 1.7]) {
      const out: Float32Array[] = [];
      for (const fusion of ['step', 'layer'] as const) {
        const X = tensor(x, [n, d]);
        const Ct = tensor(ctxRows, [n, C]);
        const sol = await odeSolve(vf, X, { solver: 'rk4', steps: 7, fusion, context: Ct, guidance: w });
        out.push(await sol.x.data());
        for (const z of [X, Ct, sol.x]) z.dispose();
      }
      for (let k = 0; k < n * d; k++) expect(Math.abs(out[0]![k]! - out[1]![k]!), `w ${w} coord ${k}`).toBeLessThan(2e-5 * (1 + Math.abs(out[1]![k]!)));
    }
    const X = tensor(x, [n, d]);
    await expect(odeSolve(vf, X, { solver: 'rk4', steps: 2 })).rejects.toThrow(/needs context rows \[23, 5\]/);
    X.dispose();
    vf.dispose();
  });
});

describe('conditional OT-CFM on 8gaussians', () => {
  test('samples per label land in that label\'s mode (≥ 95%); sample --label; guidance 0 spreads over the modes', async () => {
    const t0 = Date.now();
    const out = await cfmJob.run({
      method: 'otcfm', source: 'gaussian', target: '8gaussians', steps: 1000, batch: 256, lr: 3e-3, seed: 0,
      options: { condition: 'labels', evalPoints: 1024, trajectoryPoints: 0, solverSteps: 20 },
    });
    const secs = (Date.now() - t0) / 1000;
    const cm = out.metrics.conditional!;
    console.log(`conditional otcfm 8gaussians, 1000 steps: ${secs.toFixed(1)} s, accuracy ${cm.accuracy.toFixed(4)}, per label ${cm.perLabel.map((p) => p.accuracy.toFixed(3)).join(' ')}, W2 ${out.metrics.w2?.toFixed(3)}`);
    expect(cm.perLabel.length).toBe(8);
    for (const p of cm.perLabel) expect(p.accuracy, `label ${p.label}`).toBeGreaterThanOrEqual(0.95);
    const ckpt = { config: out.config, params: out.state.params, step: 1000 };
    const ref = DATASETS['8gaussians']!.labels!.sample(2048, new Rng(3, 3));
    const s = await cfmSample(ckpt, { n: 200, seed: 1, solverSteps: 20, labels: [3] });
    expect(Array.from(new Set(s.labels))).toEqual([3]);
    const got = nearestLabels(s.samples.data, ref.points, ref.labels, 2);
    expect(got.filter((k) => k === 3).length / 200).toBeGreaterThanOrEqual(0.95);
    const u = await cfmSample(ckpt, { n: 400, seed: 1, solverSteps: 20, labels: [3], guidance: 0 });
    const spread = new Set(nearestLabels(u.samples.data, ref.points, ref.labels, 2));
    expect(spread.size, 'guidance 0 = the unconditional field: samples in many modes').toBeGreaterThanOrEqual(6);
    await expect(cfmSample(ckpt, { n: 4, seed: 1, labels: [8] })).rejects.toThrow(/label 8 is not a label of this model; accepted: integers 0\.\.7/);
    // The command line on the trained checkpoint: --label, its errors, the label column of the output.
    const ck = path.join(dir, 'cond.safetensors');
    writeFileSync(ck, encodeCheckpoint({ config: out.config, trainConfig: { method: 'otcfm', source: 'gaussian', target: '8gaussians', data_file: null, steps: 1000, batch: 256, lr: 3e-3, seed: 0, options: out.config.condition ? { condition: 'labels' } : {} }, state: out.state }));
    expectRefused(await wgflow(['sample', '--checkpoint', ck, '--label', '8']), /--label: "8" is not a label of this model; accepted: integers 0\.\.7/);
    expectRefused(await wgflow(['eval', '--checkpoint', ck, '--data', path.join(dir, 'x.csv')]), /give --label-column N/);
    const csv = path.join(dir, 's.csv');
    const r = await wgflow(['sample', '--checkpoint', ck, '--label', '5', '--n', '64', '--solver-steps', '20', '--out', csv]);
    expect(r.code, r.stderr).toBe(0);
    const rows = readFileSync(csv, 'utf8').trim().split('\n').map((l) => l.split(',').map(Number));
    expect(rows.length).toBe(64);
    expect(rows.every((row) => row.length === 3 && row[2] === 5)).toBe(true);
    const near = nearestLabels(Float32Array.from(rows.flatMap((row) => [row[0]!, row[1]!])), ref.points, ref.labels, 2);
    expect(near.filter((k) => k === 5).length).toBeGreaterThanOrEqual(61);
  }, 900_000);
});

describe('conditional RealNVP on 8gaussians', () => {
  test('per-label accuracy ≥ 95% and NLL near the conditional entropy h(x | mode)', async () => {
    const t0 = Date.now();
    const out = await flowJob.run({ method: 'realnvp', source: null, target: '8gaussians', steps: 200, batch: 256, lr: 3e-3, seed: 0, options: { condition: 'labels', testSize: 2048, grid: 8 } });
    const cm = out.metrics.conditional!;
    // One mode: N(μ_k, s²I) with s = 0.1^(1/4), h = 1 + ln 2π + 2 ln s ≈ 1.686 nats.
    const h = 1 + Math.log(2 * Math.PI) + 2 * Math.log(Math.pow(0.1, 0.25));
    console.log(`conditional realnvp 8gaussians, 200 steps: ${((Date.now() - t0) / 1000).toFixed(1)} s, NLL ${out.metrics.nll?.toFixed(3)} (h ${h.toFixed(3)}), accuracy ${cm.accuracy.toFixed(4)}, lowest ${Math.min(...cm.perLabel.map((p) => p.accuracy)).toFixed(3)}`);
    for (const p of cm.perLabel) expect(p.accuracy, `label ${p.label}`).toBeGreaterThanOrEqual(0.95);
    expect(out.metrics.nll!).toBeLessThan(h + 0.15);
    expect(out.metrics.nll!).toBeGreaterThan(h - 0.1);
    const ckpt = { config: out.config, params: out.state.params, step: 200 };
    const { sampleFlow } = await import('../flows/checkpoint');
    const s = await sampleFlow(ckpt, { n: 100, seed: 2, labels: [6] });
    const ref = DATASETS['8gaussians']!.labels!.sample(2048, new Rng(3, 3));
    expect(nearestLabels(s.samples.data, ref.points, ref.labels, 2).filter((k) => k === 6).length).toBeGreaterThanOrEqual(95);
  }, 900_000);
});

describe('command line: conditioning flags are checked before any work (exit 2)', () => {
  test('train, sample and eval refuse what they cannot do, naming it', async () => {
    const bad = path.join(dir, 'bad.csv');
    writeFileSync(bad, '0.5,1,0\n0.25,2,1.5\n');
    writeFileSync(path.join(dir, 'x.csv'), '0.5,1,0\n0.25,2,1\n');
    expectRefused(await wgflow(['train', '--runtime', 'node', '--label-column', '3', '--steps', '2']), /--label-column: needs --data FILE/);
    expectRefused(await wgflow(['train', '--runtime', 'node', '--data', bad, '--label-column', '3', '--steps', '2']), /--label-column: set --condition labels/);
    expectRefused(await wgflow(['train', '--runtime', 'node', '--data', bad, '--label-column', '3', '--condition', 'labels', '--steps', '2']), /row 2, label column 3 holds 1\.5; accepted: integers 0\.\.1023/);
    expectRefused(await wgflow(['train', '--runtime', 'node', '--data', bad, '--label-column', '4', '--condition', 'labels', '--steps', '2']), /label column 4 is not accepted; accepted: 1\.\.3/);
    expectRefused(await wgflow(['train', '--runtime', 'node', '--data', bad, '--condition', 'labels', '--steps', '2']), /give --label-column N/);
    expectRefused(await wgflow(['train', '--runtime', 'node', '--target', 'swissroll', '--condition', 'labels', '--steps', '2']), /target "swissroll" has no labels; labelled sets: 8gaussians/);
    expectRefused(await wgflow(['train', '--runtime', 'node', '--condition', 'maybe', '--steps', '2']), /--condition/);
    const plain = path.join(dir, 'plain.safetensors');
    writeFileSync(plain, cfmCheckpoint());
    expectRefused(await wgflow(['sample', '--checkpoint', plain, '--label', '1']), /--label: the checkpoint is an unconditional model/);
    expectRefused(await wgflow(['eval', '--checkpoint', plain, '--guidance', '2']), /--guidance: the checkpoint is an unconditional model/);
  });
});
