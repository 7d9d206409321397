/**
 * The `mlp` primitive (engine/mlp.ts, kernels/mlp/): value and gradients of every input against the
 * float64 reference (engine/reference.ts R.mlp; gradients by central differences, tests/helpers.ts
 * checkOp) on awkward shapes — batch 1, 7, 257 (not a multiple of the 8 samples a thread owns);
 * widths 1, 3, 64, 130; every activation; MADE masks; context columns — plus the forward-mode kernel
 * against the float64 JVP, the dispatch counts the issue sets (1 forward, 2 for every cotangent) and
 * the fusion ladder (ops, layer, mlp give the same value and gradients).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine';
import type { Tensor } from '../engine';
import { ACTIVATIONS, type Activation } from '../kernels/activations';
import { Rng } from '../engine/philox';
import * as R from '../engine/reference';
import { Ref } from '../engine/reference';
import { mlpVjp } from '../engine/mlp';
import { checkOp, expectClose, gpu, rand, up } from './helpers';

const data = new Rng(31337);
const U = (shape: number[], lo = -1, hi = 1): Ref => rand(shape, data, lo, hi);
/** A 0/1 mask with about 70 % ones, as a MADE mask's density. */
const mask = (shape: number[]): Ref => R.map(U(shape, 0, 1), (v) => (v < 0.7 ? 1 : 0));

interface Case {
  name: string;
  batch: number;
  dims: number[];
  act: Activation;
  ctx?: number;
  masked?: boolean;
}

/** Inputs [x, ctx?, W0, b0, …, masks…] with weights scaled 1/√fan_in (activations stay O(1)). */
function inputsOf(c: Case): Ref[] {
  const nx = c.dims[0]! - (c.ctx ?? 0);
  const out: Ref[] = [U([c.batch, nx], -2, 2)];
  if (c.ctx) out.push(U([c.batch, c.ctx], -2, 2));
  for (let k = 0; k + 1 < c.dims.length; k++) {
    const s = 1.5 / Math.sqrt(c.dims[k]!);
    out.push(U([c.dims[k]!, c.dims[k + 1]!], -s, s), U([c.dims[k + 1]!], -0.5, 0.5));
  }
  if (c.masked) for (let k = 0; k + 1 < c.dims.length; k++) out.push(mask([c.dims[k]!, c.dims[k + 1]!]));
  return out;
}

function split<T>(c: Case, xs: T[]): { x: T; ctx: T | null; layers: { w: T; b: T; mask?: T }[] } {
  const L = c.dims.length - 1;
  let i = 0;
  const x = xs[i++]!;
  const ctx = c.ctx ? xs[i++]! : null;
  const layers = [...Array(L).keys()].map((k) => ({ w: xs[i + 2 * k]!, b: xs[i + 2 * k + 1]!, mask: c.masked ? xs[i + 2 * L + k]! : undefined }));
  return { x, ctx, layers };
}

const gpuFn = (c: Case) => (...ts: Tensor[]) => {
  const { x, ctx, layers } = split(c, ts);
  return E.mlp(x, layers, { activation: c.act, context: ctx ?? undefined });
};
const refFn = (c: Case) => (...rs: Ref[]) => {
  const { x, ctx, layers } = split(c, rs);
  return R.mlp(x, ctx, layers, c.act).y;
};
/** Gradients for every input but the masks. */
const gradIdx = (c: Case) => [...Array(1 + (c.ctx ? 1 : 0) + 2 * (c.dims.length - 1)).keys()];

const CASES: Case[] = [
  { name: 'batch 1, 3→64→2 relu', batch: 1, dims: [3, 64, 2], act: 'relu' },
  ...ACTIVATIONS.map((act): Case => ({ name: `batch 7, 3→3→3→1 ${act}`, batch: 7, dims: [3, 3, 3, 1], act })),
  { name: 'batch 7, widths 1: 1→1→1 sigmoid', batch: 7, dims: [1, 1, 1], act: 'sigmoid' },
  { name: 'batch 7, 5→130→3 tanh (width 130)', batch: 7, dims: [5, 130, 3], act: 'tanh' },
  { name: 'batch 257, 2→64→64→4 selu', batch: 257, dims: [2, 64, 64, 4], act: 'selu' },
  { name: 'batch 7, context 3, 2+3→64→64→4 silu', batch: 7, dims: [5, 64, 64, 4], act: 'silu', ctx: 3 },
  { name: 'batch 7, masked 3→64→64→6 relu', batch: 7, dims: [3, 64, 64, 6], act: 'relu', masked: true },
  { name: 'batch 257, masked + context 2, 2+2→64→64→4 tanh', batch: 257, dims: [4, 64, 64, 4], act: 'tanh', ctx: 2, masked: true },
];

beforeAll(async () => {
  await gpu();
  E.setFusion('mlp');
});
afterAll(() => E.setFusion('step'));

describe('mlp primitive against float64 (value; gradients by central differences)', () => {
  for (const c of CASES) {
    it(c.name, () => checkOp({ name: c.name, inputs: inputsOf(c), gpu: gpuFn(c), ref: refFn(c), grad: gradIdx(c), fdCoords: 12, tol: { atol: 2e-5, rtol: 2e-4 } }, new Rng(c.batch * 1000 + c.dims.length)));
  }
});

/** Parameters as views into one flat buffer (a ParamSet): the network binds one buffer for them. */
function paramSetOf(c: Case, ins: Ref[]): { set: E.ParamSet; x: Tensor; ctx: Tensor | null; layers: E.MlpLayer[]; masks: Tensor[] } {
  const L = c.dims.length - 1;
  const off = 1 + (c.ctx ? 1 : 0);
  const set = new E.ParamSet(ins.slice(off, off + 2 * L).map((r, i) => ({ name: `p${i}`, shape: r.shape, init: Float32Array.from(r.data) })));
  const masks = c.masked ? ins.slice(off + 2 * L).map(up) : [];
  const layers = [...Array(L).keys()].map((k) => ({ w: set.params[2 * k]!, b: set.params[2 * k + 1]!, mask: masks[k] }));
  return { set, x: up(ins[0]!), ctx: c.ctx ? up(ins[1]!) : null, layers, masks };
}

describe('dispatches and kernels', () => {
  it('one dispatch forward, two for the input cotangent and every parameter gradient', async () => {
    const c = CASES[CASES.length - 1]!;
    const ins = inputsOf(c);
    const { set, x, ctx, layers, masks } = paramSetOf(c, ins);
    const b = E.getBackend();
    const d0 = b.counters.dispatches;
    const y = E.mlp(x, layers, { activation: c.act, context: ctx! });
    expect(b.counters.dispatches - d0).toBe(1);
    const g = up(U([c.batch, 4]));
    const inputs = [x, ctx!, ...layers.flatMap((l) => [l.w, l.b]), ...masks];
    const d1 = b.counters.dispatches;
    const gs = E.noGrad(() => mlpVjp(inputs, { activation: c.act, layers: 3, contextCols: 2, masked: true }, g, inputs.map((_, i) => i < 8)));
    expect(b.counters.dispatches - d1).toBe(2);
    // The cotangents against the float64 VJP (central differences would be slow at this size: the
    // reference's own reverse pass is the products below).
    const gd = await g.data();
    const loss = (xs: Ref[]) => refFn(c)(...xs).data.reduce((a, v, i) => a + v * gd[i]!, 0);
    const fdOf = (i: number, coord: number) => {
      const h = 1e-6;
      const plus = ins.map((r, q) => (q === i ? R.map(r, (v) => v) : r));
      plus[i]!.data[coord]! += h;
      const minus = ins.map((r, q) => (q === i ? R.map(r, (v) => v) : r));
      minus[i]!.data[coord]! -= h;
      return (loss(plus) - loss(minus)) / (2 * h);
    };
    for (const i of [0, 1, 2, 3, 6, 7]) {
      const got = await gs[i]!.data();
      const coords = [...new Set([0, 5, ins[i]!.data.length - 1])].filter((q) => q < ins[i]!.data.length);
      expectClose(coords.map((q) => got[q]!), coords.map((q) => fdOf(i, q)), { atol: 5e-4, rtol: 5e-3 }, `input ${i}`);
    }
    // A masked weight's gradient is exactly zero.
    const gw0 = await gs[2]!.data();
    const m0 = ins[8]!.data;
    for (let q = 0; q < m0.length; q++) if (m0[q] === 0) expect(gw0[q]).toBe(0);
    for (const t of [y, g, x, ctx!, ...masks, ...gs.filter((t): t is Tensor => t !== null)]) t.dispose();
    set.dispose();
  });

  it('forward mode: J·t against the float64 tangent', async () => {
    for (const c of [CASES[3]!, CASES[CASES.length - 1]!]) {
      const ins = inputsOf(c);
      const { set, x, ctx, layers, masks } = paramSetOf(c, ins);
      const t = rand([c.batch, c.dims[0]!], data);
      const tt = up(t);
      const inputs = [x, ...(ctx ? [ctx] : []), ...layers.flatMap((l) => [l.w, l.b]), ...masks];
      const { y, ty } = E.mlpJvp(inputs, { activation: c.act, layers: c.dims.length - 1, contextCols: c.ctx ?? 0, masked: !!c.masked }, tt);
      const { x: xr, ctx: cr, layers: lr } = split(c, ins);
      const ref = R.mlp(xr, cr, lr, c.act, t);
      expectClose(await y.data(), ref.y.data, { atol: 2e-5, rtol: 2e-4 }, `${c.name} y`);
      expectClose(await ty.data(), ref.ty!.data, { atol: 5e-5, rtol: 5e-4 }, `${c.name} J·t`);
      for (const z of [y, ty, tt, x, ...(ctx ? [ctx] : []), ...masks]) z.dispose();
      set.dispose();
    }
  });
});

describe('fusion ladder', () => {
  it('ops, layer and mlp give the same value and gradients (masked, with context)', async () => {
    const c = CASES[CASES.length - 1]!;
    const ins = inputsOf(c);
    const { set, x, ctx, layers, masks } = paramSetOf(c, ins);
    const w = up(U([c.batch, 4]));
    const results: Record<string, Float32Array[]> = {};
    for (const level of ['ops', 'layer', 'mlp'] as const) {
      E.setFusion(level);
      const { value, grads } = E.valueAndGrad(() => E.sum(E.mul(E.mlp(x, layers, { activation: c.act, context: ctx! }), w)), set.params);
      results[level] = [await value.data(), ...(await Promise.all(grads.map((g) => g.data())))];
      value.dispose();
      grads.forEach((g) => g.dispose());
    }
    E.setFusion('mlp');
    for (const level of ['ops', 'layer']) results[level]!.forEach((r, i) => expectClose(r, results.mlp![i]!, { atol: 1e-4, rtol: 1e-4 }, `${level} vs mlp, output ${i}`));
    for (const z of [w, x, ctx!, ...masks]) z.dispose();
    set.dispose();
  });
});
