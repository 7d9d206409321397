/**
 * The `flowLayer` primitive (engine/flowlayer.ts, kernels/mlp/heads.ts): a flow layer's conditioner
 * and bijection in one dispatch. Value and the gradient of every input (state, context, each weight
 * and bias, the folded ActNorm's log-scale and shift) against the float64 reference
 * (engine/reference.ts R.flowLayer; gradients by central differences, tests/helpers.ts checkOp) on
 * awkward shapes — batch 1, 7, 257 (not a multiple of the 8 samples a reverse thread owns), D 2, 3,
 * 5, context columns, every activation, MADE masks, the ActNorm fold, a state without the log-det
 * column, the standard-normal tail — and the dispatch counts (1 forward, 2 for every cotangent).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine';
import type { Tensor } from '../engine';
import { ACTIVATIONS, type Activation } from '../kernels/activations';
import type { FlowHead } from '../kernels/mlp/heads';
import { Rng } from '../engine/philox';
import * as R from '../engine/reference';
import { Ref } from '../engine/reference';
import { checkOp, gpu, rand, up } from './helpers';

const data = new Rng(4242);
const U = (shape: number[], lo = -1, hi = 1): Ref => rand(shape, data, lo, hi);

interface Case {
  name: string;
  head: FlowHead;
  batch: number;
  D: number;
  hidden: number[];
  act: Activation;
  /** Coupling mask (1 = conditioning); absent for maf. */
  keep?: number[];
  ctx?: number;
  /** The input has the log-det column (default true). */
  stateIn?: boolean;
  tail?: 'state' | 'normal';
  pre?: boolean;
  /** maf: per layer, an all-ones mask the kernel is told to skip. */
  ones?: boolean[];
}

const outMult = (h: FlowHead) => (h === 'additive' ? 1 : 2);
const dimsOf = (c: Case) => [c.D + (c.ctx ?? 0), ...c.hidden, outMult(c.head) * c.D];
const L = (c: Case) => c.hidden.length + 1;

/** Inputs [h, ctx?, W0, b0, …, masks (maf)…, σ, β (pre)]; the last layer large enough that the scales matter. */
function inputsOf(c: Case): Ref[] {
  const dims = dimsOf(c);
  const w = c.stateIn === false ? c.D : c.D + 1;
  const out: Ref[] = [U([c.batch, w], -2, 2)];
  if (c.ctx) out.push(U([c.batch, c.ctx], -2, 2));
  for (let k = 0; k + 1 < dims.length; k++) {
    const s = 1.5 / Math.sqrt(dims[k]!);
    out.push(U([dims[k]!, dims[k + 1]!], -s, s), U([dims[k + 1]!], -0.5, 0.5));
  }
  if (c.head === 'maf') for (let k = 0; k + 1 < dims.length; k++) out.push(R.map(U([dims[k]!, dims[k + 1]!], 0, 1), (v) => (v < 0.7 || c.ones?.[k] ? 1 : 0)));
  if (c.pre) out.push(U([c.D], -0.7, 0.7), U([c.D], -0.5, 0.5));
  return out;
}

function split<T>(c: Case, xs: T[]): { h: T; ctx: T | null; layers: { w: T; b: T; mask?: T }[]; pre: { s: T; b: T } | undefined } {
  const n = L(c);
  let i = 0;
  const h = xs[i++]!;
  const ctx = c.ctx ? xs[i++]! : null;
  const masked = c.head === 'maf';
  const layers = [...Array(n).keys()].map((k) => ({ w: xs[i + 2 * k]!, b: xs[i + 2 * k + 1]!, mask: masked ? xs[i + 2 * n + k]! : undefined }));
  i += 2 * n + (masked ? n : 0);
  return { h, ctx, layers, pre: c.pre ? { s: xs[i]!, b: xs[i + 1]! } : undefined };
}

const opts = (c: Case) => ({ head: c.head, dim: c.D, keep: c.keep ?? null, scaleBound: 2.5, tail: c.tail ?? 'state' });
const gpuFn = (c: Case) => (...ts: Tensor[]) => {
  const { h, ctx, layers, pre } = split(c, ts);
  return E.flowLayer(h, layers, { ...opts(c), activation: c.act, context: ctx ?? undefined, pre, onesMasks: c.ones });
};
const refFn = (c: Case) => (...rs: Ref[]) => {
  const { h, ctx, layers, pre } = split(c, rs);
  return R.flowLayer(h, ctx, layers, c.act, { ...opts(c), pre });
};
/** Every input but the masks. */
const gradIdx = (c: Case) => {
  const n = inputsOf(c).length;
  const masks = c.head === 'maf' ? L(c) : 0;
  const first = 1 + (c.ctx ? 1 : 0) + 2 * L(c);
  return [...Array(n).keys()].filter((i) => i < first || i >= first + masks);
};

const CASES: Case[] = [
  { name: 'affine, batch 1, D 2, 2→64→4 relu', head: 'affine', batch: 1, D: 2, hidden: [64], act: 'relu', keep: [1, 0] },
  ...ACTIVATIONS.map((act): Case => ({ name: `affine, batch 7, D 3, 3→5→3→6 ${act}`, head: 'affine', batch: 7, D: 3, hidden: [5, 3], act, keep: [0, 1, 0] })),
  { name: 'affine, batch 257, D 5, context 3, ActNorm folded, normal tail, silu', head: 'affine', batch: 257, D: 5, hidden: [16], act: 'silu', keep: [1, 1, 0, 0, 1], ctx: 3, pre: true, tail: 'normal' },
  { name: 'affine, batch 257, D 2, 2→64→64→4 relu, ActNorm folded, no log-det column', head: 'affine', batch: 257, D: 2, hidden: [64, 64], act: 'relu', keep: [0, 1], pre: true, stateIn: false },
  { name: 'additive, batch 7, D 5, context 2, tanh', head: 'additive', batch: 7, D: 5, hidden: [7], act: 'tanh', keep: [0, 1, 0, 1, 1], ctx: 2 },
  { name: 'additive, batch 257, D 2, no log-det column, normal tail, sigmoid', head: 'additive', batch: 257, D: 2, hidden: [9, 4], act: 'sigmoid', keep: [1, 0], stateIn: false, tail: 'normal' },
  { name: 'maf, batch 7, D 3, masked 3→8→8→6 selu', head: 'maf', batch: 7, D: 3, hidden: [8, 8], act: 'selu' },
  { name: 'maf, batch 257, D 2, masked 2→64→64→4 relu, ActNorm folded, the hidden mask all ones (skipped)', head: 'maf', batch: 257, D: 2, hidden: [64, 64], act: 'relu', pre: true, ones: [false, true, false] },
  { name: 'maf, batch 1, D 5, context 2, ActNorm folded, normal tail, tanh', head: 'maf', batch: 1, D: 5, hidden: [11], act: 'tanh', ctx: 2, pre: true, tail: 'normal' },
];

beforeAll(async () => {
  await gpu();
});
afterAll(() => E.setFusion('step'));

describe('flowLayer against float64 (value; gradients by central differences)', () => {
  for (const c of CASES) {
    it(c.name, () => checkOp({ name: c.name, inputs: inputsOf(c), gpu: gpuFn(c), ref: refFn(c), grad: gradIdx(c), fdCoords: 10, tol: { atol: 3e-5, rtol: 3e-4 }, gradTol: { atol: 5e-4, rtol: 3e-3 } }, new Rng(c.batch * 100 + c.D)));
  }
});

describe('dispatches and checks', () => {
  it('one dispatch forward, two for the state, context and every parameter gradient', () => {
    const c = CASES.find((k) => k.head === 'maf' && k.batch === 257)!;
    const ins = inputsOf(c);
    // The parameters as views into one flat buffer (as a flow's ParamStore has them): one binding.
    const idx = gradIdx(c).filter((i) => i > 0);
    const set = new E.ParamSet(idx.map((i) => ({ name: `p${i}`, shape: ins[i]!.shape, init: Float32Array.from(ins[i]!.data) })));
    const ts = ins.map((r, i) => (idx.includes(i) ? set.params[idx.indexOf(i)]! : up(r)));
    const b = E.getBackend();
    const params = [ts[0]!, ...set.params];
    const d0 = b.counters.dispatches;
    const { value, grads } = E.valueAndGrad(() => {
      const d1 = b.counters.dispatches;
      const y = gpuFn(c)(...ts);
      expect(b.counters.dispatches - d1).toBe(1);
      return E.sum(y);
    }, params);
    // forward 1 + sum 1; backward: the seed, sum's VJP, the layer's 2.
    expect(b.counters.dispatches - d0).toBe(6);
    for (const t of [value, ...grads, ...ts.filter((_, i) => !idx.includes(i))]) t.dispose();
    set.dispose();
  });

  it('bad input names the value and what is accepted', () => {
    const c = CASES[0]!;
    const ts = inputsOf(c).map(up);
    const { h, layers } = split(c, ts);
    expect(() => E.flowLayer(h, layers, { head: 'spline' as FlowHead, dim: 2, keep: [1, 0] })).toThrow(/unknown head "spline"; accepted: affine, additive, maf/);
    expect(() => E.flowLayer(h, layers, { head: 'affine', dim: 4, keep: [1, 0, 1, 0] })).toThrow(/state must be \[B, 4\] or \[B, 5\].*got \[1, 3\]/);
    expect(() => E.flowLayer(h, layers, { head: 'affine', dim: 2 })).toThrow(/needs a 0\/1 coupling mask of 2 entries/);
    expect(() => E.flowLayer(h, layers, { head: 'additive', dim: 2, keep: [1, 0] })).toThrow(/conditioner must give 2 outputs, gives 4/);
    expect(() => E.flowLayer(h, layers, { head: 'affine', dim: 2, keep: [1, 0], scaleBound: -1 })).toThrow(/scaleBound must be a positive number, got -1/);
    for (const t of ts) t.dispose();
  });
});
