/**
 * The closed set of primitives: every differentiable computation in wgflow is a composition of
 * these. Each has parameters (typed here), a forward implementation (this file, which builds kernels
 * and dispatches them through the Backend) and a VJP rule (engine/vjp.ts), both in exhaustive tables
 * keyed by `Prim`, so adding a primitive without a rule fails to type-check.
 */
import { broadcastView, elementwiseKernel, type BinaryOp, type Expr, type InputView } from '../kernels/elementwise';
import { matmulKernel, chooseMatmul } from '../kernels/matmul';
import { concatKernel, gatherRowsKernel, padKernel, scatterAddRowsKernel } from '../kernels/movement';
import { reduceKernel } from '../kernels/reduce';
import { logdetKernel } from '../kernels/logdet';
import { stridesOf } from '../kernels/wgsl';
import type { KernelSpec } from './backend';
import { mlpForward, type MlpParams } from './mlp';
import { flowLayerForward, type FlowLayerParams } from './flowlayer';
import { splineForward, type RqSplineParams } from './spline';
import { broadcastAxes, broadcastShapes, sameShape, sizeOf } from './shape';
import { getBackend, Tensor } from './tensor';

export type { Activation } from '../kernels/activations';
import type { Activation } from '../kernels/activations';
export type CompareOp = 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne';

type NoParams = Record<string, never>;
export interface PrimParams {
  neg: NoParams; exp: NoParams; log: NoParams; sqrt: NoParams; tanh: NoParams; sigmoid: NoParams;
  relu: NoParams; silu: NoParams; selu: NoParams; softplus: NoParams; square: NoParams; abs: NoParams;
  sin: NoParams; cos: NoParams;
  /** x^p for a constant p. */
  powc: { p: number };
  /** x·scale + shift (scalar arithmetic without a second tensor). */
  affine: { scale: number; shift: number };
  add: NoParams; sub: NoParams; mul: NoParams; div: NoParams; maximum: NoParams; minimum: NoParams;
  /** 1 where the comparison holds, else 0; not differentiable. */
  compare: { op: CompareOp };
  /** where(c, a, b): a where c ≠ 0, else b. */
  where: NoParams;
  /** scale · Σ over `axes`. */
  sum: { axes: number[]; keepDims: boolean; scale: number };
  max: { axis: number; keepDims: boolean };
  reshape: { shape: number[] };
  transpose: { perm: number[] };
  broadcastTo: { shape: number[] };
  slice: { starts: number[]; sizes: number[] };
  concat: { axis: number };
  gatherRows: NoParams;
  scatterAddRows: { rows: number };
  matmul: { transA: boolean; transB: boolean };
  /** activation(x·W + b): a dense layer in one dispatch (inputs x, W, b). */
  linear: { activation: Activation };
  /**
   * A whole dense network in one dispatch (engine/mlp.ts, kernels/mlp/): inputs x, [context],
   * W_0, b_0, …, [masks]; activation after every layer but the last.
   */
  mlp: MlpParams;
  /**
   * A flow layer (affine/additive coupling, MAF) with its conditioner in one dispatch
   * (engine/flowlayer.ts, kernels/mlp/heads.ts): inputs state, [context], W_0, b_0, …, [masks],
   * [ActNorm log-scale, shift]; output the new state [B, D + 1] or log N + log|det| [B, 1].
   */
  flowLayer: FlowLayerParams;
  /** An arbitrary elementwise expression, optionally sum-reduced to `reduceTo`; used by VJP rules. */
  fused: { expr: Expr; reduceTo: number[] | null };
  /** log|det W| of a square matrix [n, n] → [] or a batch [B, n, n] → [B] (LU with partial pivoting, kernels/logdet.ts). */
  logdet: NoParams;
  /**
   * Rational-quadratic splines per element (engine/spline.ts, kernels/spline.ts): inputs x, widths,
   * heights[, derivatives]; output [2, ...x.shape] = y and log|dy/dx| (or the inverse's).
   */
  rqspline: RqSplineParams;
}
export type Prim = keyof PrimParams;

export const UNARY_PRIMS = ['neg', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'selu', 'softplus', 'square', 'abs', 'sin', 'cos'] as const;
export type UnaryPrim = (typeof UNARY_PRIMS)[number];
export const BINARY_PRIMS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const;
export type BinaryPrim = (typeof BINARY_PRIMS)[number];

const IN0: Expr = { op: 'in', i: 0 };
const IN1: Expr = { op: 'in', i: 1 };

/** Dispatches `spec` reading `inputs` and writing a fresh tensor of `shape`. */
export function runKernel(spec: KernelSpec, inputs: readonly Tensor[], shape: readonly number[], uniforms?: ArrayBufferView): Tensor {
  const b = getBackend();
  const bufs = inputs.map((t) => t.buffer);
  const out = Tensor.empty(shape);
  b.dispatch(b.prepare(spec), [...bufs, out.buffer], uniforms);
  return out;
}

function contiguousView(t: Tensor): InputView {
  return { offset: t.offset, strides: stridesOf(t.shape) };
}

/** An elementwise expression over inputs broadcast to their common shape, optionally sum-reduced. */
export function fusedForward(expr: Expr, inputs: readonly Tensor[], reduceTo: readonly number[] | null, name = 'fused'): Tensor {
  // The index space spans the inputs and the target: a target larger than the inputs broadcasts them
  // (e.g. a cotangent spread back over summed axes), a smaller one is reached by summation.
  const full = broadcastShapes(name, ...inputs.map((t) => t.shape), reduceTo ?? []);
  const views = inputs.map((t) => broadcastView(t.shape, full, t.offset));
  if (!reduceTo || sameShape(reduceTo, full)) return runKernel(elementwiseKernel(name, expr, views, full), inputs, reduceTo ?? full);
  const axes = broadcastAxes(reduceTo, full);
  return runKernel(reduceKernel(`${name}_sum`, { op: 'sum', expr, views, fullShape: full, axes, scale: 1 }), inputs, reduceTo);
}

const unary = (op: UnaryPrim) => ([x]: Tensor[]) => fusedForward({ op, a: IN0 }, [x!], null, op);
const binary = (op: BinaryPrim) => ([a, b]: Tensor[]) => fusedForward({ op: op as BinaryOp, a: IN0, b: IN1 }, [a!, b!], null, op);

type Forward = { [P in Prim]: (inputs: Tensor[], p: PrimParams[P]) => Tensor };

export const forward: Forward = {
  neg: unary('neg'), exp: unary('exp'), log: unary('log'), sqrt: unary('sqrt'), tanh: unary('tanh'),
  sigmoid: unary('sigmoid'), relu: unary('relu'), silu: unary('silu'), selu: unary('selu'),
  softplus: unary('softplus'), square: unary('square'), abs: unary('abs'), sin: unary('sin'), cos: unary('cos'),
  powc: ([x], { p }) => fusedForward({ op: 'powc', a: IN0, p }, [x!], null, 'pow'),
  affine: ([x], { scale, shift }) => fusedForward({ op: 'affine', a: IN0, scale, shift }, [x!], null, 'affine'),
  add: binary('add'), sub: binary('sub'), mul: binary('mul'), div: binary('div'),
  maximum: binary('maximum'), minimum: binary('minimum'),
  compare: ([a, b], { op }) => fusedForward({ op, a: IN0, b: IN1 }, [a!, b!], null, op),
  where: ([c, a, b]) => fusedForward({ op: 'where', c: IN0, a: IN1, b: { op: 'in', i: 2 } }, [c!, a!, b!], null, 'where'),
  sum: ([x], { axes, keepDims, scale }) => {
    const outShape = x!.shape.map((d, i) => (axes.includes(i) ? 1 : d)).filter((_, i) => keepDims || !axes.includes(i));
    const spec = reduceKernel('sum', { op: 'sum', expr: IN0, views: [contiguousView(x!)], fullShape: x!.shape, axes, scale });
    return runKernel(spec, [x!], outShape);
  },
  max: ([x], { axis, keepDims }) => {
    const outShape = x!.shape.map((d, i) => (i === axis ? 1 : d)).filter((_, i) => keepDims || i !== axis);
    const spec = reduceKernel('max', { op: 'max', expr: IN0, views: [contiguousView(x!)], fullShape: x!.shape, axes: [axis], scale: 1 });
    return runKernel(spec, [x!], outShape);
  },
  reshape: ([x], { shape }) => Tensor.view(x!, shape),
  transpose: ([x], { perm }) => {
    const s = stridesOf(x!.shape);
    const outShape = perm.map((p) => x!.shape[p]!);
    const view = { offset: x!.offset, strides: perm.map((p) => s[p]!) };
    return runKernel(elementwiseKernel('transpose', IN0, [view], outShape), [x!], outShape);
  },
  broadcastTo: ([x], { shape }) => runKernel(elementwiseKernel('broadcast', IN0, [broadcastView(x!.shape, shape, x!.offset)], shape), [x!], shape),
  slice: ([x], { starts, sizes }) => {
    const s = stridesOf(x!.shape);
    const offset = x!.offset + starts.reduce((acc, st, i) => acc + st * s[i]!, 0);
    return runKernel(elementwiseKernel('slice', IN0, [{ offset, strides: s }], sizes), [x!], sizes);
  },
  concat: (xs, { axis }) => concatForward(xs, axis),
  gatherRows: ([x, idx]) => {
    const inner = sizeOf(x!.shape.slice(1));
    return runKernel(gatherRowsKernel(x!.shape[0]!, inner, idx!.size, x!.offset, idx!.offset), [x!, idx!], [idx!.size, ...x!.shape.slice(1)]);
  },
  scatterAddRows: ([g, idx], { rows }) => {
    const inner = sizeOf(g!.shape.slice(1));
    return runKernel(scatterAddRowsKernel(rows, inner, idx!.size, g!.offset, idx!.offset), [g!, idx!], [rows, ...g!.shape.slice(1)]);
  },
  matmul: ([a, b], { transA, transB }) => {
    const [m, k] = transA ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
    const n = transB ? b!.shape[0]! : b!.shape[1]!;
    const args = { m, n, k, transA, transB, offsetA: a!.offset, offsetB: b!.offset };
    return runKernel(matmulKernel(args, chooseMatmul(args, getBackend().adapter.kind)), [a!, b!], [m, n]);
  },
  linear: ([x, w, b], { activation }) => {
    const [m, k] = x!.shape as [number, number];
    const n = w!.shape[1]!;
    const args = { m, n, k, transA: false, transB: false, offsetA: x!.offset, offsetB: w!.offset, bias: { offset: b!.offset }, activation: activation === 'none' ? undefined : activation };
    return runKernel(matmulKernel(args, chooseMatmul(args, getBackend().adapter.kind)), [x!, w!, b!], [m, n]);
  },
  mlp: (xs, p) => mlpForward(xs, p),
  flowLayer: (xs, p) => flowLayerForward(xs, p),
  fused: (xs, { expr, reduceTo }) => fusedForward(expr, xs, reduceTo),
  logdet: ([x]) => logdetForward(x!),
  rqspline: (xs, p) => splineForward(xs, p),
};

/** Concatenation in as few dispatches as the adapter's binding limit allows. */
function concatForward(xs: Tensor[], axis: number): Tensor {
  const maxInputs = Math.max(2, (getBackend().adapter.limits.maxStorageBuffersPerShaderStage ?? 8) - 1);
  if (xs.length <= maxInputs) {
    return runKernel(concatKernel(xs.map((t) => t.shape), xs.map((t) => t.offset), axis), xs, concatShape(xs, axis));
  }
  const parts: Tensor[] = [];
  for (let i = 0; i < xs.length; i += maxInputs) parts.push(concatForward(xs.slice(i, i + maxInputs), axis));
  const out = concatForward(parts, axis);
  for (const p of parts) p.dispose();
  return out;
}

export function concatShape(xs: readonly Tensor[], axis: number): number[] {
  const s = [...xs[0]!.shape];
  s[axis] = xs.reduce((acc, t) => acc + t.shape[axis]!, 0);
  return s;
}

/** Zero tensor of `shape` with `g` written at `starts` (the adjoint of slice). */
export function padForward(g: Tensor, shape: readonly number[], starts: readonly number[]): Tensor {
  return runKernel(padKernel(shape, starts, g.shape, g.offset), [g], shape);
}

/** Batch size and order of a [n, n] or [B, n, n] operand of logdet. */
function logdetDims(x: Tensor): { batch: number; n: number } {
  const n = x.shape[x.rank - 1]!;
  return { batch: x.rank === 3 ? x.shape[0]! : 1, n };
}

/** log|det W| per matrix: one LU dispatch (kernels/logdet.ts) with a scratch buffer for the factors. */
export function logdetForward(x: Tensor): Tensor {
  const { batch, n } = logdetDims(x);
  const scratch = Tensor.empty([batch * n * n]);
  const out = runKernel(logdetKernel('logdet', { batch, n, offset: x.offset }), [x, scratch], x.rank === 3 ? [batch] : []);
  scratch.dispose();
  return out;
}

/**
 * g · W^{-T} per matrix (the VJP of logdet), or W^{-T} itself when `g` is null: a second LU dispatch
 * that also solves for the inverse's columns. Not recorded on the tape.
 */
export function logdetGradForward(x: Tensor, g: Tensor | null): Tensor {
  const { batch, n } = logdetDims(x);
  const scratch = Tensor.empty([batch * n * n]);
  const out = g
    ? runKernel(logdetKernel('grad', { batch, n, offset: x.offset, gOffset: g.offset }), [x, g, scratch], x.shape)
    : runKernel(logdetKernel('inverseT', { batch, n, offset: x.offset }), [x, scratch], x.shape);
  scratch.dispose();
  return out;
}
