/**
 * The public operations: validate arguments (naming the op, the shapes and what is accepted),
 * turn numbers into constant-folded `affine` / expression forms, and apply primitives. Everything
 * here is differentiable through the tape unless noted.
 */
import { apply } from './autodiff';
import { ACTIVATIONS as ACTIVATION_NAMES, ACT } from '../kernels/activations';
import { fusionAtLeast } from './config';
import { checkMlp } from './mlp';
import { checkSpline, SPLINE_MINIMA } from './spline';
import { MLP_MAX_WIDTH } from '../kernels/mlp/emit';
import { fusedForward, type Activation, type CompareOp, type UnaryPrim } from './prims';
import { broadcastShapes, checkShape, fmt, normAxis, sameShape, sizeOf, type Shape } from './shape';
import { getBackend, Tensor } from './tensor';

export type TensorLike = Tensor | number;

function need(op: string, t: unknown, what = 'argument'): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`${op}: ${what} must be a Tensor, got ${describe(t)}`);
  try {
    void t.buffer; // throws if disposed
  } catch (e) {
    throw new Error(`${op}: ${what} ${(e as Error).message}`);
  }
  return t;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array (wrap it with tensor(data, shape))';
  if (ArrayBuffer.isView(v)) return 'a typed array (wrap it with tensor(data, shape))';
  return typeof v === 'number' ? `the number ${v}` : typeof v;
}

function finite(op: string, x: unknown, what = 'scalar'): number {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new RangeError(`${op}: ${what} must be a finite number, got ${String(x)}`);
  return x;
}

// ---- creation ----

/** Uploads `data` (float32) as a tensor of `shape` (default: 1-D). */
export function tensor(data: ArrayLike<number>, shape?: readonly number[]): Tensor {
  const s = checkShape('tensor', shape ?? [data.length]);
  if (sizeOf(s) !== data.length) throw new Error(`tensor: ${data.length} values do not fill shape ${fmt(s)} (${sizeOf(s)} elements)`);
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  const t = Tensor.empty(s);
  getBackend().write(t.buffer, f);
  return t;
}

export function full(shape: readonly number[], value: number): Tensor {
  const s = checkShape('full', shape);
  return fusedForward({ op: 'const', v: finite('full', value, 'value') }, [], s, 'fill');
}
export const zeros = (shape: readonly number[]): Tensor => full(shape, 0);
export const ones = (shape: readonly number[]): Tensor => full(shape, 1);
export const scalar = (v: number): Tensor => full([1], v);

// ---- elementwise ----

const unaryOp = (prim: UnaryPrim) => (x: Tensor): Tensor => apply(prim, [need(prim, x)], {});
export const neg = unaryOp('neg');
export const exp = unaryOp('exp');
export const log = unaryOp('log');
export const sqrt = unaryOp('sqrt');
export const tanh = unaryOp('tanh');
export const sigmoid = unaryOp('sigmoid');
export const relu = unaryOp('relu');
export const silu = unaryOp('silu');
export const selu = unaryOp('selu');
export const softplus = unaryOp('softplus');
export const square = unaryOp('square');
export const abs = unaryOp('abs');
export const sin = unaryOp('sin');
export const cos = unaryOp('cos');

/** x^p for a constant exponent p. */
export function pow(x: Tensor, p: number): Tensor {
  return apply('powc', [need('pow', x)], { p: finite('pow', p, 'exponent') });
}

/** x·scale + shift. */
export function affine(x: Tensor, scale: number, shift = 0): Tensor {
  return apply('affine', [need('affine', x)], { scale: finite('affine', scale, 'scale'), shift: finite('affine', shift, 'shift') });
}

/** Validates two operands (tensors or finite numbers) and their broadcast before anything is allocated. */
function checkOperands(op: string, a: TensorLike, b: TensorLike): void {
  const sa = typeof a === 'number' ? (finite(op, a), [1]) : need(op, a, 'first argument').shape;
  const sb = typeof b === 'number' ? (finite(op, b), [1]) : need(op, b, 'second argument').shape;
  broadcastShapes(op, sa, sb);
}

type BinOp = 'add' | 'sub' | 'mul' | 'div' | 'maximum' | 'minimum';
function binary(op: BinOp, a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number' && a instanceof Tensor) {
    finite(op, b);
    if (op === 'add') return affine(a, 1, b);
    if (op === 'sub') return affine(a, 1, -b);
    if (op === 'mul') return affine(a, b, 0);
    if (op === 'div') {
      if (b === 0) throw new RangeError('div: division by the scalar 0');
      return affine(a, 1 / b, 0);
    }
  }
  if (typeof a === 'number' && b instanceof Tensor) {
    finite(op, a);
    if (op === 'add' || op === 'mul') return binary(op, b, a);
    if (op === 'sub') return affine(b, -1, a);
  }
  checkOperands(op, a, b);
  const ta = typeof a === 'number' ? full([1], a) : a;
  const tb = typeof b === 'number' ? full([1], b) : b;
  const out = apply(op, [ta, tb], {});
  if (typeof a === 'number') ta.dispose();
  if (typeof b === 'number') tb.dispose();
  return out;
}
export const add = (a: TensorLike, b: TensorLike): Tensor => binary('add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary('mul', a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => binary('div', a, b);
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary('maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary('minimum', a, b);

function compare(op: CompareOp, a: TensorLike, b: TensorLike): Tensor {
  checkOperands(op, a, b);
  const ta = typeof a === 'number' ? full([1], a) : a;
  const tb = typeof b === 'number' ? full([1], b) : b;
  const out = apply('compare', [ta, tb], { op });
  if (typeof a === 'number') ta.dispose();
  if (typeof b === 'number') tb.dispose();
  return out;
}
/** Comparisons give 1 where they hold and 0 elsewhere (not differentiable). */
export const lt = (a: TensorLike, b: TensorLike) => compare('lt', a, b);
export const le = (a: TensorLike, b: TensorLike) => compare('le', a, b);
export const gt = (a: TensorLike, b: TensorLike) => compare('gt', a, b);
export const ge = (a: TensorLike, b: TensorLike) => compare('ge', a, b);
export const eq = (a: TensorLike, b: TensorLike) => compare('eq', a, b);
export const ne = (a: TensorLike, b: TensorLike) => compare('ne', a, b);

/** a where cond ≠ 0, else b (broadcast together). */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  need('where', cond, 'cond');
  // validate everything before a constant operand is allocated, so a refused call leaks nothing
  const sa = typeof a === 'number' ? (finite('where', a), [1]) : need('where', a, 'a').shape;
  const sb = typeof b === 'number' ? (finite('where', b), [1]) : need('where', b, 'b').shape;
  broadcastShapes('where', cond.shape, sa, sb);
  const ta = typeof a === 'number' ? full([1], a) : a;
  const tb = typeof b === 'number' ? full([1], b) : b;
  const out = apply('where', [cond, ta, tb], {});
  if (typeof a === 'number') ta.dispose();
  if (typeof b === 'number') tb.dispose();
  return out;
}

// ---- reductions ----

function normAxes(op: string, axes: number | readonly number[] | undefined, rank: number): number[] {
  const list = axes === undefined ? [...Array(rank).keys()] : typeof axes === 'number' ? [axes] : [...axes];
  const norm = [...new Set(list.map((a) => normAxis(op, a, rank)))].sort((a, b) => a - b);
  return norm;
}

/** Σ over `axes` (default: all). */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  need('sum', x);
  return apply('sum', [x], { axes: normAxes('sum', axes, x.rank), keepDims, scale: 1 });
}

/** Mean over `axes` (default: all), as one reduction with a 1/n scale. */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  need('mean', x);
  const ax = normAxes('mean', axes, x.rank);
  const n = ax.reduce((acc, a) => acc * x.shape[a]!, 1);
  return apply('sum', [x], { axes: ax, keepDims, scale: 1 / n });
}

/** Maximum over one axis. */
export function max(x: Tensor, axis: number, keepDims = false): Tensor {
  need('max', x);
  return apply('max', [x], { axis: normAxis('max', axis, x.rank), keepDims });
}

// ---- shape ----

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  need('reshape', x);
  const s = [...shape];
  const free = s.indexOf(-1);
  if (free >= 0) s[free] = x.size / sizeOf(s.filter((_, i) => i !== free));
  checkShape('reshape', s);
  if (sizeOf(s) !== x.size) throw new Error(`reshape: cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}`);
  return apply('reshape', [x], { shape: s });
}

/** Permutes axes (default: reverse them). */
export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  need('transpose', x);
  const p = perm ? [...perm] : [...Array(x.rank).keys()].reverse();
  if (p.length !== x.rank || [...p].sort((a, b) => a - b).some((v, i) => v !== i)) {
    throw new Error(`transpose: perm ${fmt(p)} is not a permutation of the ${x.rank} axes of ${fmt(x.shape)}`);
  }
  return apply('transpose', [x], { perm: p });
}

export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  need('broadcastTo', x);
  const s = checkShape('broadcastTo', shape);
  const b = broadcastShapes('broadcastTo', x.shape, s);
  if (!sameShape(b, s)) throw new Error(`broadcastTo: ${fmt(x.shape)} cannot be broadcast to ${fmt(s)}`);
  return apply('broadcastTo', [x], { shape: s });
}

/** The block starting at `starts` of size `sizes` (-1: to the end). */
export function slice(x: Tensor, starts: readonly number[], sizes: readonly number[]): Tensor {
  need('slice', x);
  if (starts.length !== x.rank || sizes.length !== x.rank) throw new Error(`slice: starts ${fmt(starts)} and sizes ${fmt(sizes)} must both have ${x.rank} entries for ${fmt(x.shape)}`);
  const sz = sizes.map((s, i) => (s === -1 ? x.shape[i]! - starts[i]! : s));
  starts.forEach((st, i) => {
    if (!Number.isInteger(st) || !Number.isInteger(sz[i]) || st < 0 || sz[i]! < 1 || st + sz[i]! > x.shape[i]!) {
      throw new RangeError(`slice: block at ${fmt(starts)} of size ${fmt(sizes)} is outside ${fmt(x.shape)} (axis ${i})`);
    }
  });
  return apply('slice', [x], { starts: [...starts], sizes: sz });
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new Error('concat: needs a non-empty array of tensors');
  xs.forEach((t, i) => need('concat', t, `tensor ${i}`));
  const ax = normAxis('concat', axis, xs[0]!.rank);
  for (const t of xs) {
    if (t.rank !== xs[0]!.rank || t.shape.some((d: number, i: number) => i !== ax && d !== xs[0]!.shape[i])) {
      throw new Error(`concat: shapes ${xs.map((s) => fmt(s.shape)).join(', ')} differ outside axis ${ax}`);
    }
  }
  if (xs.length === 1) return apply('reshape', [xs[0]!], { shape: [...xs[0]!.shape] });
  return apply('concat', [...xs], { axis: ax });
}

/** Rows of x (first axis) picked by integer-valued indices (a float tensor of shape [m]). */
export function gatherRows(x: Tensor, indices: Tensor): Tensor {
  need('gatherRows', x, 'x');
  need('gatherRows', indices, 'indices');
  if (indices.rank !== 1) throw new Error(`gatherRows: indices must be 1-D, got ${fmt(indices.shape)}`);
  return apply('gatherRows', [x, indices], {});
}

/** out[r] = Σ_{j: idx[j] = r} g[j]: the adjoint of gatherRows, `rows` output rows. */
export function scatterAddRows(g: Tensor, indices: Tensor, rows: number): Tensor {
  need('scatterAddRows', g, 'g');
  need('scatterAddRows', indices, 'indices');
  if (indices.rank !== 1 || indices.size !== g.shape[0]) throw new Error(`scatterAddRows: indices ${fmt(indices.shape)} must be 1-D with one entry per row of ${fmt(g.shape)}`);
  if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`scatterAddRows: rows must be a positive integer, got ${rows}`);
  return apply('scatterAddRows', [g, indices], { rows });
}

// ---- linear algebra ----

/** op(a)·op(b) for 2-D tensors; transA/transB transpose an operand without a copy. */
export function matmul(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor {
  need('matmul', a, 'a');
  need('matmul', b, 'b');
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  if (a.rank !== 2 || b.rank !== 2) throw new Error(`matmul: operands must be 2-D, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
  const ka = transA ? a.shape[0] : a.shape[1];
  const kb = transB ? b.shape[1] : b.shape[0];
  if (ka !== kb) throw new Error(`matmul: inner dimensions differ: ${fmt(a.shape)}${transA ? 'ᵀ' : ''} · ${fmt(b.shape)}${transB ? 'ᵀ' : ''} (${ka} vs ${kb})`);
  return apply('matmul', [a, b], { transA, transB });
}

const ACTIVATIONS: readonly Activation[] = ACTIVATION_NAMES;

/**
 * A dense layer activation(x·W + b). At fusion level 'layer' and above (engine/config.ts) it is one
 * dispatch; at 'ops' it is the composition matmul → add → activation. Both give the same numbers.
 */
export function linear(x: Tensor, w: Tensor, b: Tensor, activation: Activation = 'none'): Tensor {
  need('linear', x, 'x');
  need('linear', w, 'W');
  need('linear', b, 'b');
  if (!ACTIVATIONS.includes(activation)) throw new Error(`linear: unknown activation "${activation}"; accepted: ${ACTIVATIONS.join(', ')}`);
  if (x.rank !== 2 || w.rank !== 2 || x.shape[1] !== w.shape[0]) throw new Error(`linear: x ${fmt(x.shape)} and W ${fmt(w.shape)} do not chain (need [B, I] and [I, O])`);
  if (b.size !== w.shape[1] || b.rank !== 1) throw new Error(`linear: bias ${fmt(b.shape)} must be [${w.shape[1]}] for W ${fmt(w.shape)}`);
  // The fused layer's VJP needs f' from its output y; silu's is not a function of y, so it composes.
  if (fusionAtLeast('layer') && ACT[activation].dFromY) return apply('linear', [x, w, b], { activation });
  const z = matmul(x, w);
  const zb = add(z, b);
  z.dispose();
  if (activation === 'none') return zb;
  const y = apply(activation, [zb], {});
  zb.dispose();
  return y;
}

/**
 * log|det W| of a square matrix [n, n] (→ shape []) or of each matrix of a batch [B, n, n] (→ [B]),
 * by a float32 LU factorisation with partial pivoting (kernels/logdet.ts). Gradient: g · W^{-T}.
 * A singular matrix gives −∞ (and a non-finite gradient).
 */
export function logdet(x: Tensor): Tensor {
  need('logdet', x);
  const n = x.shape[x.rank - 1];
  if ((x.rank !== 2 && x.rank !== 3) || x.shape[x.rank - 2] !== n) {
    throw new Error(`logdet: needs a square matrix [n, n] or a batch of them [B, n, n], got ${fmt(x.shape)}`);
  }
  return apply('logdet', [x], {});
}

export interface RqSplineOptions {
  /** The spline acts on [−bound, bound]; outside it is the identity (default 3). */
  bound?: number;
  /** Evaluate x = f⁻¹(y) instead (the log-determinant is then log|dx/dy|). */
  inverse?: boolean;
  /** Floors of the bin widths and heights (fractions of the interval) and of the derivatives (nflows' 1e-3). */
  minWidth?: number;
  minHeight?: number;
  minDerivative?: number;
}

/**
 * Monotonic rational-quadratic splines, one per element of x (Durkan et al. 2019, "Neural Spline
 * Flows"; kernels/spline.ts has the formulas): widths and heights [...x.shape, K] are unnormalised
 * (softmax), derivatives [...x.shape, K − 1] too (softplus; null when K = 1); identity outside
 * [−B, B]. Returns y and the per-element log|dy/dx| (x and log|dx/dy| with `inverse`).
 * Differentiable in all four inputs.
 */
export function rqspline(x: Tensor, widths: Tensor, heights: Tensor, derivatives: Tensor | null, opts: RqSplineOptions = {}): { y: Tensor; logDet: Tensor } {
  const ins = [need('rqspline', x, 'x'), need('rqspline', widths, 'widths'), need('rqspline', heights, 'heights')];
  if (derivatives) ins.push(need('rqspline', derivatives, 'derivatives'));
  const bins = widths.shape[widths.rank - 1]!;
  const params = { bins, bound: opts.bound ?? 3, inverse: opts.inverse ?? false, minWidth: opts.minWidth ?? SPLINE_MINIMA.minWidth, minHeight: opts.minHeight ?? SPLINE_MINIMA.minHeight, minDerivative: opts.minDerivative ?? SPLINE_MINIMA.minDerivative };
  if (bins > 1 && !derivatives) throw new Error(`rqspline: ${bins} bins need derivatives of shape ${fmt([...x.shape, bins - 1])}`);
  checkSpline(ins, params);
  const both = apply('rqspline', ins, params);
  const rest = x.shape.map(() => 0);
  const row = (r: number) => {
    const part = slice(both, [r, ...rest], [1, ...x.shape]);
    const flat = reshape(part, x.shape);
    part.dispose();
    return flat;
  };
  const y = row(0);
  const logDet = row(1);
  both.dispose();
  return { y, logDet };
}

export interface MlpLayer {
  w: Tensor;
  b: Tensor;
  /** A constant 0/1 mask of w's shape (MADE): the layer uses w ⊙ mask. */
  mask?: Tensor;
}

export interface MlpOptions {
  /** After every layer but the last (default 'relu'). */
  activation?: Activation;
  /** Context columns appended to x's: the network sees [x, context]. */
  context?: Tensor;
}

/** Why the `mlp` primitive cannot run this network (widths past the kernel's), or null. */
export function mlpFallbackReason(dims: readonly number[]): string | null {
  const wide = dims.find((d) => d > MLP_MAX_WIDTH);
  return wide === undefined ? null : `a width of ${wide} exceeds the mlp kernel's ${MLP_MAX_WIDTH}; the network runs layer by layer`;
}

/**
 * A dense network: h = [x, context], h ← f(h·(W_k ⊙ M_k) + b_k) for every layer, no activation after
 * the last. At fusion level 'mlp' and above it is the `mlp` primitive (one dispatch, two for its
 * gradient); at 'layer' one `linear` per layer, at 'ops' matmul → add → activation; the same numbers.
 * Networks wider than the kernel allows fall back to 'layer' (mlpFallbackReason says so).
 */
export function mlp(x: Tensor, layers: readonly MlpLayer[], opts: MlpOptions = {}): Tensor {
  need('mlp', x, 'x');
  const activation = opts.activation ?? 'relu';
  if (!ACTIVATIONS.includes(activation)) throw new Error(`mlp: unknown activation "${activation}"; accepted: ${ACTIVATIONS.join(', ')}`);
  if (layers.length === 0) throw new Error('mlp: needs at least one layer');
  const ctx = opts.context ? need('mlp', opts.context, 'context') : null;
  const masked = layers.some((l) => l.mask);
  if (masked && !layers.every((l) => l.mask)) throw new Error('mlp: give every layer a mask or none');
  const inputs = [x, ...(ctx ? [ctx] : []), ...layers.flatMap((l, k) => [need('mlp', l.w, `W_${k}`), need('mlp', l.b, `b_${k}`)]), ...(masked ? layers.map((l, k) => need('mlp', l.mask, `mask_${k}`)) : [])];
  const params = { activation, layers: layers.length, contextCols: ctx ? ctx.shape[1]! : 0, masked };
  checkMlp(inputs, params);
  const dims = [x.shape[1]! + params.contextCols, ...layers.map((l) => l.w.shape[1]!)];
  if (fusionAtLeast('mlp') && mlpFallbackReason(dims) === null) return apply('mlp', inputs, params);
  let h = ctx ? concat([x, ctx], 1) : x;
  layers.forEach((l, k) => {
    const w = l.mask ? mul(l.w, l.mask) : l.w;
    const next = linear(h, w, l.b, k + 1 < layers.length ? activation : 'none');
    if (w !== l.w) w.dispose();
    if (h !== x) h.dispose();
    h = next;
  });
  return h;
}
