/**
 * Every primitive, value and gradient, against the float64 reference (engine/reference.ts): values
 * compared directly, gradients of Σ w ⊙ op(inputs) from the tape against central differences of the
 * reference (tests/helpers.ts checkOp). One table row per case, in the manner of tinygrad's
 * helper_test_op. Shapes include 1, primes and non-multiples of every tile; broadcasting goes both
 * ways; inputs that are views at a nonzero offset (ParamSet parameters) and sizes that fold the
 * launch grid into 2-D are covered. Every kernel dispatched here is finally parsed with wgsl_reflect
 * and its bindings checked against what the dispatching code passed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine';
import type { Tensor } from '../engine';
import type { KernelSpec } from '../engine/backend';
import { Rng } from '../engine/philox';
import type { UnaryPrim } from '../engine/prims';
import * as R from '../engine/reference';
import { Ref } from '../engine/reference';
import type { WebGPUBackend } from '../engine/webgpu-backend';
import { checkOp, expectClose, finiteDiff, gpu, rand, up, type OpCase } from './helpers';

// wgsl_reflect's "main" entry is CommonJS inside a "type": "module" package, which Node refuses to
// load; its ES module build works, typed by the package's own declarations.
const { WgslReflect } = (await import('wgsl_reflect/wgsl_reflect.module.js' as string)) as typeof import('wgsl_reflect');

// ------------------------------------------------------------------ data helpers

const data = new Rng(20240611);
/** Uniform data in [lo, hi), float32-exact. */
const U = (shape: number[], lo = -1, hi = 1): Ref => rand(shape, data, lo, hi);
/** Uniform data pushed at least `m` away from 0 (kinks, poles), float32-exact. */
const away = (shape: number[], m: number, span = 1): Ref =>
  R.map(rand(shape, data, -span, span), (v) => Math.fround(v >= 0 ? v + m : v - m));
const ref = (values: number[], shape: number[]): Ref => Ref.of(values, shape);

function seedOf(name: string): number {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h;
}

const run = (c: OpCase) => checkOp(c, new Rng(seedOf(c.name)));
const table = (cases: OpCase[]) => {
  for (const c of cases) it(c.name, () => run(c));
};

// ------------------------------------------------------------------ kernel capture (for the WGSL check at the end)

interface Seen {
  spec: KernelSpec;
  buffers: Set<number>;
  uniforms: Set<boolean>;
}
const seen = new Map<string, Seen>();
let backend: WebGPUBackend;

beforeAll(async () => {
  backend = await gpu();
  const dispatch = backend.dispatch.bind(backend);
  backend.dispatch = (k, bufs, u) => {
    const s = seen.get(k.spec.source) ?? { spec: k.spec, buffers: new Set<number>(), uniforms: new Set<boolean>() };
    s.buffers.add(bufs.length);
    s.uniforms.add(u !== undefined);
    seen.set(k.spec.source, s);
    dispatch(k, bufs, u);
  };
});

// ------------------------------------------------------------------ unary

const UNARY_FN: Record<UnaryPrim, (x: Tensor) => Tensor> = {
  neg: E.neg, exp: E.exp, log: E.log, sqrt: E.sqrt, tanh: E.tanh, sigmoid: E.sigmoid, relu: E.relu, silu: E.silu,
  selu: E.selu, softplus: E.softplus, square: E.square, abs: E.abs, sin: E.sin, cos: E.cos,
};

/** [op, input] pairs: logs and roots on positive inputs, kinks (relu, selu, abs) kept away from 0. */
const UNARY_CASES: [UnaryPrim, Ref][] = [
  ['neg', U([7, 13])], ['exp', U([7, 13], -2, 2)], ['log', U([7, 13], 0.1, 3)], ['sqrt', U([7, 13], 0.1, 3)],
  ['tanh', U([7, 13], -3, 3)], ['sigmoid', U([7, 13], -5, 5)], ['relu', away([7, 13], 0.05, 2)], ['silu', U([7, 13], -5, 5)],
  ['selu', away([7, 13], 0.05, 3)], ['softplus', U([7, 13], -5, 5)], ['square', U([7, 13], -2, 2)],
  ['abs', away([7, 13], 0.05, 2)], ['sin', U([7, 13], -3, 3)], ['cos', U([7, 13], -3, 3)],
];

describe('unary', () => {
  table(UNARY_CASES.map(([op, x]) => ({ name: `${op} [7,13]`, inputs: [x], gpu: UNARY_FN[op], ref: (a) => R.unary(op, a) })));
  // Shape of ones, and magnitudes where naive formulas overflow (tanh via exp, sigmoid, silu, softplus).
  table([
    { name: 'neg [1,1,1]', inputs: [U([1, 1, 1])], gpu: E.neg, ref: (a) => R.unary('neg', a) },
    ...(['tanh', 'sigmoid', 'silu', 'softplus', 'selu'] as const).map((op): OpCase => ({
      name: `${op} large |x| [64]`, inputs: [away([64], 0.5, 40)], gpu: UNARY_FN[op], ref: (a) => R.unary(op, a),
    })),
  ]);
});

// ------------------------------------------------------------------ pow, affine

describe('pow and affine', () => {
  const pos = () => U([7, 13], 0.2, 2);
  const pows: [number, Ref][] = [
    [0, away([7, 13], 0.2)], [1, U([7, 13])], [2, U([7, 13], -1.5, 1.5)], [3, U([7, 13], -1.5, 1.5)],
    [4, away([7, 13], 0.05, 1.5)], [5, away([7, 13], 0.05, 1.5)],
    [-1, away([7, 13], 0.5)], [-2, away([7, 13], 0.5)], [-3, away([7, 13], 0.5)],
    [0.5, pos()], [1.5, pos()], [-0.5, pos()], [2.5, pos()],
  ];
  table(pows.map(([p, x]) => ({ name: `pow ${p}`, inputs: [x], gpu: (a: Tensor) => E.pow(a, p), ref: (a: Ref) => R.powc(a, p) })));
  table([
    { name: 'affine 2.5x-0.75', inputs: [U([7, 13])], gpu: (a) => E.affine(a, 2.5, -0.75), ref: (a) => R.affine(a, 2.5, -0.75) },
    { name: 'affine 0x+3', inputs: [U([5])], gpu: (a) => E.affine(a, 0, 3), ref: (a) => R.affine(a, 0, 3) },
    { name: 'affine default shift', inputs: [U([1])], gpu: (a) => E.affine(a, -4), ref: (a) => R.affine(a, -4, 0) },
  ]);
});

// ------------------------------------------------------------------ binary with broadcasting

type BinName = 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum';
const BIN_FN: Record<BinName, (a: E.TensorLike, b: E.TensorLike) => Tensor> = {
  add: E.add, sub: E.sub, mul: E.mul, div: E.div, maximum: E.maximum, minimum: E.minimum,
};
const SHAPE_PAIRS: [number[], number[]][] = [
  [[7, 13], [7, 13]], // same shape
  [[3, 1], [1, 4]], // both broadcast
  [[5, 4], [4]], // second broadcast (rank-extended)
  [[4], [5, 4]], // first broadcast
  [[5, 4], [1]], // scalar-shaped second
  [[1], [5, 4]], // scalar-shaped first
  [[2, 3, 4], [3, 1]], // 3-D against 2-D with a 1
  [[1, 1, 1], [1, 1, 1]],
];

describe('binary', () => {
  for (const op of Object.keys(BIN_FN) as BinName[]) {
    table(
      SHAPE_PAIRS.map(([sa, sb]) => ({
        name: `${op} [${sa}]x[${sb}]`,
        // division keeps the denominator away from 0
        inputs: [U(sa, -2, 2), op === 'div' ? away(sb, 0.5) : U(sb, -2, 2)],
        gpu: BIN_FN[op],
        ref: (a, b) => R.binary(op, a, b),
      })),
    );
  }
  // A number operand takes the affine path (or a constant tensor) and must mean the same thing.
  const k = (v: number) => ref([v], [1]);
  table([
    { name: 'add(x, 2.5)', inputs: [U([7, 5])], gpu: (a) => E.add(a, 2.5), ref: (a) => R.binary('add', a, k(2.5)) },
    { name: 'add(2.5, x)', inputs: [U([7, 5])], gpu: (a) => E.add(2.5, a), ref: (a) => R.binary('add', k(2.5), a) },
    { name: 'sub(x, 1.5)', inputs: [U([7, 5])], gpu: (a) => E.sub(a, 1.5), ref: (a) => R.binary('sub', a, k(1.5)) },
    { name: 'sub(1.5, x)', inputs: [U([7, 5])], gpu: (a) => E.sub(1.5, a), ref: (a) => R.binary('sub', k(1.5), a) },
    { name: 'mul(x, -3)', inputs: [U([7, 5])], gpu: (a) => E.mul(a, -3), ref: (a) => R.binary('mul', a, k(-3)) },
    { name: 'mul(-3, x)', inputs: [U([7, 5])], gpu: (a) => E.mul(-3, a), ref: (a) => R.binary('mul', k(-3), a) },
    { name: 'div(x, 4)', inputs: [U([7, 5])], gpu: (a) => E.div(a, 4), ref: (a) => R.binary('div', a, k(4)) },
    { name: 'div(2, x)', inputs: [away([7, 5], 0.5)], gpu: (a) => E.div(2, a), ref: (a) => R.binary('div', k(2), a) },
    { name: 'maximum(x, 0.3)', inputs: [U([7, 5])], gpu: (a) => E.maximum(a, 0.3), ref: (a) => R.binary('maximum', a, k(0.3)) },
    { name: 'minimum(0.3, x)', inputs: [U([7, 5])], gpu: (a) => E.minimum(0.3, a), ref: (a) => R.binary('minimum', k(0.3), a) },
  ]);

  it('maximum/minimum ties send the whole cotangent to the first operand', async () => {
    const a = E.tensor([1, 2, 3, 4], [4]);
    const b = E.tensor([1, 0, 3, 9], [4]);
    const w = E.tensor([1, 2, 3, 4], [4]);
    for (const [fn, ga, gb] of [
      // maximum: a ≥ b → a.  a=[1,2,3,4], b=[1,0,3,9]: a wins at 0,1,2 (ties at 0 and 2), b at 3.
      [E.maximum, [1, 2, 3, 0], [0, 0, 0, 4]],
      // minimum: a ≤ b → a: a wins at 0,2,3, b at 1.
      [E.minimum, [1, 0, 3, 4], [0, 2, 0, 0]],
    ] as const) {
      const { value, grads } = E.valueAndGrad(() => E.sum(E.mul(fn(a, b), w)), [a, b]);
      expect(Array.from(await grads[0]!.data())).toEqual(ga);
      expect(Array.from(await grads[1]!.data())).toEqual(gb);
      value.dispose();
      grads.forEach((g) => g.dispose());
    }
    [a, b, w].forEach((t) => t.dispose());
  });
});

// ------------------------------------------------------------------ compare, where

describe('compare and where', () => {
  // b's row appears in a's first row, so eq/le/ge see exact ties through the broadcast.
  const b = U([4], -1, 1);
  const aData = U([5, 4], -1, 1);
  aData.data.set(b.data, 0);
  aData.data[5] = b.data[1]!;
  const CMP = { lt: E.lt, le: E.le, gt: E.gt, ge: E.ge, eq: E.eq, ne: E.ne } as const;
  table(
    (Object.keys(CMP) as (keyof typeof CMP)[]).flatMap((op): OpCase[] => [
      { name: `${op} [5,4]x[4] with ties`, inputs: [aData, b], gpu: CMP[op], ref: (x, y) => R.binary(op, x, y), grad: [] },
      { name: `${op} [4]x[5,4] with ties`, inputs: [b, aData], gpu: CMP[op], ref: (x, y) => R.binary(op, x, y), grad: [] },
    ]),
  );
  it('compare ops produce exactly 0/1 and see ties', async () => {
    const x = up(aData);
    const y = up(b);
    const e = E.eq(x, y);
    const got = await e.data();
    const want = R.binary('eq', aData, b).data;
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(want.filter((v) => v === 1).length).toBeGreaterThanOrEqual(5); // the planted ties
    [x, y, e].forEach((t) => t.dispose());
  });
  it('compare with a number', () => run({ name: 'gt(x, 0.25)', inputs: [U([6, 7])], gpu: (x) => E.gt(x, 0.25), ref: (x) => R.binary('gt', x, ref([0.25], [1])), grad: [] }));

  const cond = (shape: number[]) => R.map(U(shape), (v) => (v < -0.3 ? 0 : v < 0.3 ? 1 : -2)); // nonzero means "a"
  table([
    { name: 'where [5,4] a[5,4] b[4]', inputs: [cond([5, 4]), U([5, 4]), U([4])], gpu: (c, a, bb) => E.where(c, a, bb), ref: R.where, grad: [1, 2] },
    { name: 'where c[4] a[3,1] b[1]', inputs: [cond([4]), U([3, 1]), U([1])], gpu: (c, a, bb) => E.where(c, a, bb), ref: R.where, grad: [1, 2] },
    { name: 'where(c, a, 0.5)', inputs: [cond([6, 3]), U([6, 3])], gpu: (c, a) => E.where(c, a, 0.5), ref: (c, a) => R.where(c, a, ref([0.5], [1])), grad: [1] },
  ]);
});

// ------------------------------------------------------------------ reductions

describe('sum, mean, max', () => {
  const x3 = () => U([7, 13, 5]);
  table([
    { name: 'sum axis 1', inputs: [x3()], gpu: (a) => E.sum(a, 1), ref: (a) => R.sum(a, [1]) },
    { name: 'sum axis -1 keepDims', inputs: [x3()], gpu: (a) => E.sum(a, -1, true), ref: (a) => R.sum(a, [2], true) },
    { name: 'sum axes [0,2]', inputs: [x3()], gpu: (a) => E.sum(a, [0, 2]), ref: (a) => R.sum(a, [0, 2]) },
    { name: 'sum axes [2,0] keepDims', inputs: [x3()], gpu: (a) => E.sum(a, [2, 0], true), ref: (a) => R.sum(a, [0, 2], true) },
    { name: 'sum all', inputs: [x3()], gpu: (a) => E.sum(a), ref: (a) => R.sum(a, [0, 1, 2]) },
    { name: 'sum all keepDims', inputs: [x3()], gpu: (a) => E.sum(a, undefined, true), ref: (a) => R.sum(a, [0, 1, 2], true) },
    { name: 'sum [1,1,1]', inputs: [U([1, 1, 1])], gpu: (a) => E.sum(a, 1), ref: (a) => R.sum(a, [1]) },
    // serial/tree boundary (SERIAL_REDUCE_MAX = 128, tree width 256)
    { name: 'sum [2,128] axis 1 (serial)', inputs: [U([2, 128])], gpu: (a) => E.sum(a, 1), ref: (a) => R.sum(a, [1]) },
    { name: 'sum [2,129] axis 1 (tree)', inputs: [U([2, 129])], gpu: (a) => E.sum(a, 1), ref: (a) => R.sum(a, [1]) },
    { name: 'sum [3,1000] axis 1 (tree)', inputs: [U([3, 1000])], gpu: (a) => E.sum(a, 1), ref: (a) => R.sum(a, [1]) },
    { name: 'sum [300,3] axis 0 (tree, strided)', inputs: [U([300, 3])], gpu: (a) => E.sum(a, 0), ref: (a) => R.sum(a, [0]) },
    { name: 'sum [20,7,13] axes [0,2] (tree)', inputs: [U([20, 7, 13])], gpu: (a) => E.sum(a, [0, 2], true), ref: (a) => R.sum(a, [0, 2], true) },
    { name: 'sum all [257,129] (tree)', inputs: [U([257, 129])], gpu: (a) => E.sum(a), ref: (a) => R.sum(a, [0, 1]), tol: { atol: 1e-3 } },
    { name: 'mean axis 1', inputs: [x3()], gpu: (a) => E.mean(a, 1), ref: (a) => R.sum(a, [1], false, 1 / 13) },
    { name: 'mean axes [0,2] keepDims', inputs: [x3()], gpu: (a) => E.mean(a, [0, 2], true), ref: (a) => R.sum(a, [0, 2], true, 1 / 35) },
    { name: 'mean all', inputs: [x3()], gpu: (a) => E.mean(a), ref: (a) => R.sum(a, [0, 1, 2], false, 1 / 455) },
    { name: 'mean [5,300] axis 1 (tree)', inputs: [U([5, 300])], gpu: (a) => E.mean(a, 1), ref: (a) => R.sum(a, [1], false, 1 / 300) },
    { name: 'max axis 0', inputs: [x3()], gpu: (a) => E.max(a, 0), ref: (a) => R.max(a, 0) },
    { name: 'max axis 1 keepDims', inputs: [x3()], gpu: (a) => E.max(a, 1, true), ref: (a) => R.max(a, 1, true) },
    { name: 'max axis -1', inputs: [x3()], gpu: (a) => E.max(a, -1), ref: (a) => R.max(a, 2) },
    { name: 'max [1,1,1]', inputs: [U([1, 1, 1])], gpu: (a) => E.max(a, 2), ref: (a) => R.max(a, 2) },
    { name: 'max [4,300] axis 1 (tree)', inputs: [U([4, 300])], gpu: (a) => E.max(a, 1), ref: (a) => R.max(a, 1) },
    { name: 'max [300,3] axis 0 (tree)', inputs: [U([300, 3])], gpu: (a) => E.max(a, 0, true), ref: (a) => R.max(a, 0, true) },
    { name: 'max of negatives [3,200]', inputs: [U([3, 200], -9, -1)], gpu: (a) => E.max(a, 1), ref: (a) => R.max(a, 1) },
  ]);

  it('max splits the cotangent evenly between tied maxima (hand computation)', async () => {
    // rows: [1,3,3] max 3 (tied twice), [2,5,0] max 5, [4,4,4] max 4 (tied three times); weights w = [1,2,3].
    const x = E.tensor([1, 3, 3, 2, 5, 0, 4, 4, 4], [3, 3]);
    const w = E.tensor([1, 2, 3], [3]);
    const { value, grads } = E.valueAndGrad(() => E.sum(E.mul(E.max(x, 1), w)), [x]);
    expect(await value.item()).toBe(3 * 1 + 5 * 2 + 4 * 3);
    // d/dx: row 0 → w0/2 at the two 3s; row 1 → w1 at the 5; row 2 → w2/3 at each 4.
    expectClose(await grads[0]!.data(), [0, 0.5, 0.5, 0, 2, 0, 1, 1, 1], { atol: 1e-7, rtol: 1e-6 }, 'tied max grad');
    // along axis 0 with ties through a tree-sized axis: column j of a [200,2] has its max (7) at rows 10 and 150.
    const col = new Float32Array(400).map((_, i) => (i % 2) * 0.001 - 1 + (i >> 1) * 0.0001);
    col[20] = col[300] = 7; // column 0, rows 10 and 150
    col[41] = 7; // column 1, row 20 only
    const y = E.tensor(col, [200, 2]);
    const r = E.valueAndGrad(() => E.sum(E.max(y, 0)), [y]);
    const g = await r.grads[0]!.data();
    const want = new Float64Array(400);
    want[20] = want[300] = 0.5;
    want[41] = 1;
    expectClose(g, want, { atol: 1e-7, rtol: 0 }, 'tied max grad (tree)');
    [value, ...grads, r.value, ...r.grads, x, w, y].forEach((t) => t.dispose());
  });
});

// ------------------------------------------------------------------ movement

describe('reshape, transpose, broadcastTo, slice, concat, gather, scatter', () => {
  table([
    { name: 'reshape [7,13,5]→[-1,5]', inputs: [U([7, 13, 5])], gpu: (a) => E.reshape(a, [-1, 5]), ref: (a) => R.reshape(a, [91, 5]) },
    { name: 'reshape [91,5]→[5,7,13]', inputs: [U([91, 5])], gpu: (a) => E.reshape(a, [5, 7, -1]), ref: (a) => R.reshape(a, [5, 7, 13]) },
    { name: 'reshape [6]→[1,6,1] then exp', inputs: [U([6])], gpu: (a) => E.exp(E.reshape(a, [1, 6, 1])), ref: (a) => R.unary('exp', R.reshape(a, [1, 6, 1])) },
    { name: 'transpose [7,13] default', inputs: [U([7, 13])], gpu: (a) => E.transpose(a), ref: (a) => R.transpose(a, [1, 0]) },
    { name: 'transpose [1,7] default', inputs: [U([1, 7])], gpu: (a) => E.transpose(a), ref: (a) => R.transpose(a, [1, 0]) },
    ...[[1, 0, 2], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 2, 0]].map((p): OpCase => ({
      name: `transpose [2,3,5] perm [${p}]`, inputs: [U([2, 3, 5])], gpu: (a) => E.transpose(a, p), ref: (a) => R.transpose(a, p),
    })),
    { name: 'transpose [1,5,1] perm [2,0,1]', inputs: [U([1, 5, 1])], gpu: (a) => E.transpose(a, [2, 0, 1]), ref: (a) => R.transpose(a, [2, 0, 1]) },
    { name: 'broadcastTo [3,1]→[2,3,4]', inputs: [U([3, 1])], gpu: (a) => E.broadcastTo(a, [2, 3, 4]), ref: (a) => R.broadcastTo(a, [2, 3, 4]) },
    { name: 'broadcastTo [4]→[5,4]', inputs: [U([4])], gpu: (a) => E.broadcastTo(a, [5, 4]), ref: (a) => R.broadcastTo(a, [5, 4]) },
    { name: 'broadcastTo [1]→[3,2]', inputs: [U([1])], gpu: (a) => E.broadcastTo(a, [3, 2]), ref: (a) => R.broadcastTo(a, [3, 2]) },
    { name: 'broadcastTo [2,1,4]→[2,3,4]', inputs: [U([2, 1, 4])], gpu: (a) => E.broadcastTo(a, [2, 3, 4]), ref: (a) => R.broadcastTo(a, [2, 3, 4]) },
    { name: 'broadcastTo same shape', inputs: [U([2, 3])], gpu: (a) => E.broadcastTo(a, [2, 3]), ref: (a) => R.broadcastTo(a, [2, 3]) },
    { name: 'slice [7,13] at [2,3] size [4,-1]', inputs: [U([7, 13])], gpu: (a) => E.slice(a, [2, 3], [4, -1]), ref: (a) => R.slice(a, [2, 3], [4, 10]) },
    { name: 'slice [5,6,7] at [1,0,2] size [3,6,4]', inputs: [U([5, 6, 7])], gpu: (a) => E.slice(a, [1, 0, 2], [3, 6, 4]), ref: (a) => R.slice(a, [1, 0, 2], [3, 6, 4]) },
    { name: 'slice [4] at [3] size [1]', inputs: [U([4])], gpu: (a) => E.slice(a, [3], [1]), ref: (a) => R.slice(a, [3], [1]) },
    { name: 'slice whole', inputs: [U([3, 2])], gpu: (a) => E.slice(a, [0, 0], [-1, -1]), ref: (a) => R.slice(a, [0, 0], [3, 2]) },
    { name: 'concat axis 0', inputs: [U([2, 5]), U([3, 5]), U([1, 5])], gpu: (...t) => E.concat(t, 0), ref: (...r) => R.concat(r, 0) },
    { name: 'concat axis 1', inputs: [U([4, 2]), U([4, 3]), U([4, 1])], gpu: (...t) => E.concat(t, 1), ref: (...r) => R.concat(r, 1) },
    { name: 'concat axis -1 3-D', inputs: [U([2, 3, 1]), U([2, 3, 4])], gpu: (...t) => E.concat(t, -1), ref: (...r) => R.concat(r, 2) },
    { name: 'concat one input', inputs: [U([2, 3])], gpu: (...t) => E.concat(t, 1), ref: (...r) => R.concat(r, 1) },
    // more inputs than the binding limit (maxStorageBuffersPerShaderStage = 12 on SwiftShader): split into rounds
    { name: 'concat 13 inputs axis 0', inputs: [...Array(13).keys()].map((i) => U([1 + (i % 4), 3])), gpu: (...t) => E.concat(t, 0), ref: (...r) => R.concat(r, 0), fdCoords: 4 },
    { name: 'concat 13 inputs axis 1', inputs: [...Array(13).keys()].map((i) => U([2, 1 + (i % 3)])), gpu: (...t) => E.concat(t, 1), ref: (...r) => R.concat(r, 1), fdCoords: 4 },
    { name: 'concat 25 inputs axis 0', inputs: [...Array(25).keys()].map(() => U([1, 2])), gpu: (...t) => E.concat(t, 0), ref: (...r) => R.concat(r, 0), fdCoords: 2 },
    { name: 'gatherRows repeated indices', inputs: [U([6, 5]), ref([0, 3, 3, 5, 0, 1, 3, 3], [8])], gpu: (x, i) => E.gatherRows(x, i), ref: R.gatherRows, grad: [0] },
    { name: 'gatherRows 1-D x', inputs: [U([10]), ref([9, 0, 9, 4], [4])], gpu: (x, i) => E.gatherRows(x, i), ref: R.gatherRows, grad: [0] },
    { name: 'gatherRows 3-D x', inputs: [U([4, 2, 3]), ref([3, 3, 1], [3])], gpu: (x, i) => E.gatherRows(x, i), ref: R.gatherRows, grad: [0] },
    { name: 'scatterAddRows (empty rows, repeats)', inputs: [U([8, 5]), ref([0, 3, 3, 5, 0, 1, 3, 3], [8])], gpu: (g, i) => E.scatterAddRows(g, i, 7), ref: (g, i) => R.scatterAddRows(g, i, 7), grad: [0] },
    { name: 'scatterAddRows 1-D', inputs: [U([5]), ref([2, 2, 0, 2, 1], [5])], gpu: (g, i) => E.scatterAddRows(g, i, 4), ref: (g, i) => R.scatterAddRows(g, i, 4), grad: [0] },
  ]);
});

// ------------------------------------------------------------------ matmul, linear

describe('matmul', () => {
  const SHAPES: [number, number, number][] = [[1, 1, 1], [7, 13, 5], [33, 17, 40], [257, 129, 65]];
  for (const [m, k, n] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const big = m * k * n > 100_000;
        it(`matmul ${m}x${k}x${n} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`, () =>
          run({
            name: `matmul ${m}x${k}x${n} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`,
            inputs: [U(transA ? [k, m] : [m, k]), U(transB ? [n, k] : [k, n])],
            gpu: (a, b) => E.matmul(a, b, { transA, transB }),
            ref: (a, b) => R.matmul(a, b, transA, transB),
            // K·eps·max|a||b| bounds the float32 accumulation error: 129 · 6e-8 ≈ 8e-6
            tol: { atol: 5e-5, rtol: 1e-4 },
            fdCoords: big ? 8 : 24,
          }));
      }
    }
  }
});

const ACTS = ['none', 'relu', 'selu', 'tanh', 'sigmoid'] as const;

describe('linear (fused and unfused)', () => {
  for (const act of ACTS) {
    for (const fusion of [true, false]) {
      it(`linear ${act} fusion ${fusion ? 'on' : 'off'}`, () =>
        run({
          name: `linear ${act} fusion ${fusion}`,
          inputs: [U([33, 17], -2, 2), U([17, 40]), U([40])],
          gpu: (x, w, b) => {
            E.setFusion(fusion);
            try {
              return E.linear(x, w, b, act);
            } finally {
              E.setFusion(true);
            }
          },
          ref: (x, w, b) => R.linear(x, w, b, act),
          tol: { atol: 2e-5, rtol: 1e-4 },
        }));
    }
    it(`linear ${act}: fused and unfused give the same numbers, in 1 vs ${act === 'none' ? 2 : 3} dispatches`, async () => {
      const rng = new Rng(seedOf(act));
      const [x, w, b, wt] = [rand([33, 17], rng, -2, 2), rand([17, 40], rng), rand([40], rng), rand([33, 40], rng)].map(up) as [Tensor, Tensor, Tensor, Tensor];
      const runOnce = async (fusion: boolean) => {
        E.setFusion(fusion);
        try {
          const d0 = backend.counters.dispatches;
          const y = E.linear(x, w, b, act);
          const dispatches = backend.counters.dispatches - d0;
          const { value, grads } = E.valueAndGrad(() => E.sum(E.mul(E.linear(x, w, b, act), wt)), [x, w, b]);
          const out = { dispatches, y: await y.data(), grads: await Promise.all(grads.map((g) => g.data())) };
          [y, value, ...grads].forEach((t) => t.dispose());
          return out;
        } finally {
          E.setFusion(true);
        }
      };
      const fused = await runOnce(true);
      const plain = await runOnce(false);
      expect(fused.dispatches).toBe(1);
      expect(plain.dispatches).toBe(act === 'none' ? 2 : 3);
      // Same accumulation order, so the forward agrees to float32 rounding of the epilogue.
      expectClose(fused.y, plain.y, { atol: 1e-6, rtol: 1e-6 }, `${act} forward`);
      // The fused VJP takes the activation's derivative from y, the unfused one (relu, selu) from x.
      fused.grads.forEach((g, i) => expectClose(g, plain.grads[i]!, { atol: 1e-5, rtol: 1e-5 }, `${act} grad ${i}`));
      [x, w, b, wt].forEach((t) => t.dispose());
    });
  }
});

// ------------------------------------------------------------------ views at nonzero offsets (ParamSet parameters)

/**
 * checkOp for inputs that are views into one ParamSet buffer behind a 3-element pad, so every input
 * has a nonzero (and not 256-byte aligned) element offset.
 */
async function checkViews(name: string, inputs: Ref[], fn: (...t: Tensor[]) => Tensor, refFn: (...r: Ref[]) => Ref, tol = { atol: 2e-5, rtol: 1e-4 }) {
  const rng = new Rng(seedOf(name));
  const ps = new E.ParamSet([
    { name: 'pad', shape: [3], init: [9, 9, 9] },
    ...inputs.map((r, i) => ({ name: `p${i}`, shape: r.shape, init: r.data })),
  ]);
  const views = ps.params.slice(1);
  expect(views.every((v) => v.offset >= 3 && v.sharesStorageWith(ps.flat))).toBe(true);
  const out = fn(...views);
  const expected = refFn(...inputs);
  expect(out.shape).toEqual(expected.shape);
  expectClose(await out.data(), expected.data, tol, `${name} value`);
  const w = rand(expected.shape, rng, 0.5, 1.5);
  const wt = up(w);
  const { value, grads } = E.valueAndGrad(() => E.sum(E.mul(fn(...views), wt)), views);
  const loss = (xs: Ref[]) => refFn(...xs).data.reduce((acc, v, i) => acc + v * w.data[i]!, 0);
  for (let j = 0; j < inputs.length; j++) {
    const x = inputs[j]!;
    const coords = [...Array(Math.min(x.data.length, 24)).keys()];
    const fd = finiteDiff((xd) => loss(inputs.map((r, q) => (q === j ? new Ref(r.shape, xd) : r))), Float64Array.from(x.data), coords);
    const got = await grads[j]!.data();
    expectClose(coords.map((q) => got[q]!), coords.map((q) => fd[q]!), { atol: 2e-4, rtol: 2e-3 }, `${name} grad ${j}`);
  }
  // the pad in front of the views was never written
  expect(Array.from((await ps.flat.data()).slice(0, 3))).toEqual([9, 9, 9]);
  [out, wt, value, ...grads].forEach((t) => t.dispose());
  ps.dispose();
}

describe('views with a nonzero offset', () => {
  const A = () => U([7, 13]);
  it('exp', () => checkViews('view exp', [A()], E.exp, (a) => R.unary('exp', a)));
  it('add with broadcast', () => checkViews('view add', [A(), U([13])], E.add, (a, b) => R.binary('add', a, b)));
  it('mul with broadcast (view second)', () => checkViews('view mul', [U([13]), A()], E.mul, (a, b) => R.binary('mul', a, b)));
  it('sum axis 1', () => checkViews('view sum', [A()], (a) => E.sum(a, 1), (a) => R.sum(a, [1])));
  it('sum tree', () => checkViews('view sum tree', [U([2, 300])], (a) => E.sum(a, 1), (a) => R.sum(a, [1])));
  it('max axis 0', () => checkViews('view max', [A()], (a) => E.max(a, 0), (a) => R.max(a, 0)));
  it('transpose', () => checkViews('view transpose', [A()], (a) => E.transpose(a), (a) => R.transpose(a, [1, 0])));
  it('slice', () => checkViews('view slice', [A()], (a) => E.slice(a, [1, 2], [3, 5]), (a) => R.slice(a, [1, 2], [3, 5])));
  it('reshape then square', () => checkViews('view reshape', [A()], (a) => E.square(E.reshape(a, [-1])), (a) => R.unary('square', R.reshape(a, [91]))));
  it('concat', () => checkViews('view concat', [U([2, 13]), A()], (a, b) => E.concat([a, b], 0), (a, b) => R.concat([a, b], 0)));
  it('gatherRows', () => checkViews('view gather', [A()], (a) => E.gatherRows(a, idx()), (a) => R.gatherRows(a, ref([6, 0, 6, 2], [4]))));
  it('matmul NN', () => checkViews('view matmul', [A(), U([13, 5])], (a, b) => E.matmul(a, b), (a, b) => R.matmul(a, b)));
  it('matmul TT', () => checkViews('view matmul TT', [U([13, 5]), A()], (a, b) => E.matmul(a, b, { transA: true, transB: true }), (a, b) => R.matmul(a, b, true, true)));
  for (const fusion of [true, false]) {
    it(`linear selu fusion ${fusion}`, () =>
      checkViews(`view linear ${fusion}`, [A(), U([13, 5]), U([5])], (x, w, b) => {
        E.setFusion(fusion);
        try {
          return E.linear(x, w, b, 'selu');
        } finally {
          E.setFusion(true);
        }
      }, (x, w, b) => R.linear(x, w, b, 'selu')));
  }
  // indices can live at an offset too (a view into a ParamSet)
  const idxSet = new Map<string, E.ParamSet>();
  function idx(): Tensor {
    let ps = idxSet.get('i');
    if (!ps) idxSet.set('i', (ps = new E.ParamSet([{ name: 'pad', shape: [5], init: [1, 1, 1, 1, 1] }, { name: 'i', shape: [4], init: [6, 0, 6, 2] }])));
    return ps.get('i');
  }
  afterAll(() => idxSet.forEach((p) => p.dispose()));
});

// ------------------------------------------------------------------ sizes that fold the launch grid into 2-D

describe('large sizes', () => {
  it('elementwise over 4097×4097 (> 65535 workgroups of 256: the grid folds into y)', async () => {
    const rows = 4097;
    const n = rows * rows;
    const host = new Float32Array(n);
    for (let i = 0; i < n; i++) host[i] = ((i * 7919) % 1000) / 256; // exact in float32
    const rowHost = Float32Array.from({ length: rows }, (_, j) => j / 64);
    const x = E.tensor(host, [rows, rows]);
    const r = E.tensor(rowHost, [rows]);
    const y = E.add(x, r); // broadcast view in the folded index space
    const got = await y.data();
    // the kernel really was launched on a folded grid
    const spec = [...seen.values()].find((s) => s.spec.name === `add[${rows}x${rows}]`)!.spec;
    expect(spec.workgroups[1]).toBeGreaterThan(1);
    let bad = -1;
    for (let i = 0; i < n; i++) {
      if (got[i] !== host[i]! + rowHost[i % rows]!) { // sums of these dyadic values are exact
        bad = i;
        break;
      }
    }
    expect(bad, `first wrong element ${bad}`).toBe(-1);
    [x, r, y].forEach((t) => t.dispose());
  });

  it('serial reduction with 4,194,400 outputs (> 65535 workgroups of 64: folds)', async () => {
    const cols = 4_194_400;
    const host = new Float32Array(2 * cols);
    for (let i = 0; i < host.length; i++) host[i] = (i % 977) / 8;
    const x = E.tensor(host, [2, cols]);
    const s = E.sum(x, 0);
    const got = await s.data();
    const spec = [...seen.values()].find((v) => v.spec.name.startsWith(`sum[2x${cols}`))!.spec;
    expect(spec.workgroups[1]).toBeGreaterThan(1);
    let bad = -1;
    for (let j = 0; j < cols; j++) {
      if (got[j] !== host[j]! + host[cols + j]!) {
        bad = j;
        break;
      }
    }
    expect(bad, `first wrong output ${bad}`).toBe(-1);
    [x, s].forEach((t) => t.dispose());
  });
});

// ------------------------------------------------------------------ every WGSL source dispatched above

describe('WGSL of every kernel dispatched in this file', () => {
  it('parses with wgsl_reflect; bindings match the spec and what dispatch() was given', () => {
    expect(seen.size).toBeGreaterThan(100);
    for (const { spec, buffers, uniforms } of seen.values()) {
      const r = new WgslReflect(spec.source);
      expect(r.entry.compute.map((f) => f.name), spec.name).toEqual(['main']);
      const used = [...r.entry.compute[0]!.resources].sort((a, b) => a.binding - b.binding);
      // every declared binding is used by main (an unused one would be missing from the 'auto' layout)
      expect(used.map((v) => `${v.group}:${v.binding}:${v.resourceType === 0 ? 'uniform' : v.access}`), spec.name).toEqual(
        spec.bindings.map((k, i) => `0:${i}:${k}`),
      );
      expect([...buffers], spec.name).toEqual([spec.bindings.filter((k) => k !== 'uniform').length]);
      expect([...uniforms], spec.name).toEqual([spec.bindings.includes('uniform')]);
    }
  });
});
