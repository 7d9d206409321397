/**
 * Vector–Jacobian products, one rule per primitive in one exhaustive table: a primitive without a
 * rule does not type-check (as jax-js's `jvpRules`). A rule receives the output cotangent g, the
 * recorded node (inputs, output y, params) and which inputs need a gradient, and returns one
 * cotangent per input (null where none is needed). Rules compose gradients from elementwise
 * expressions (`fused`, one dispatch each, sum-reduced over broadcast axes in the same dispatch)
 * and the primitives' own forwards. They run in no-grad mode.
 */
import { ACT } from '../kernels/activations';
import type { Expr } from '../kernels/elementwise';
import type { TapeNode } from './autodiff';
import { mlpVjp } from './mlp';
import { flowLayerVjp } from './flowlayer';
import { splineVjp } from './spline';
import { forward, fusedForward, logdetGradForward, padForward, type Activation, type Prim } from './prims';
import { broadcastAxes, sameShape } from './shape';
import { Tensor } from './tensor';

type Rule<P extends Prim> = (g: Tensor, node: TapeNode<P>, needs: boolean[]) => (Tensor | null)[];

// Expression shorthands: G is the cotangent, X/Y/A/B bind further inputs in the order passed.
const I = (i: number): Expr => ({ op: 'in', i });
const G = I(0);
const c = (v: number): Expr => ({ op: 'const', v });
const mul = (a: Expr, b: Expr): Expr => ({ op: 'mul', a, b });
const sub = (a: Expr, b: Expr): Expr => ({ op: 'sub', a, b });
const add = (a: Expr, b: Expr): Expr => ({ op: 'add', a, b });
const div = (a: Expr, b: Expr): Expr => ({ op: 'div', a, b });
const neg = (a: Expr): Expr => ({ op: 'neg', a });

/** expr(g, ...others) reduced (summed) to `shape`: one dispatch. */
function gradTo(expr: Expr, inputs: Tensor[], shape: readonly number[]): Tensor {
  return fusedForward(expr, inputs, shape, 'vjp');
}

/** Cotangent of a unary op: g · f'(x or y), the derivative given as an expression of input 1. */
const unaryRule = (deriv: Expr, use: 'x' | 'y'): Rule<Prim> => (g, n) => [gradTo(mul(G, deriv), [g, use === 'x' ? n.inputs[0]! : n.output], n.inputs[0]!.shape)];
const D = I(1);

/** g reduced to `shape` over broadcast axes; an alias (no dispatch) when no reduction is needed. */
function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return Tensor.view(g, shape);
  if (broadcastAxes(shape, g.shape).length === 0) return Tensor.view(g, shape);
  return gradTo(G, [g], shape);
}

/** Derivative of the fused dense layer's activation as an expression of its output y (input 1). */
function actDerivFromY(act: Activation): Expr {
  const d = ACT[act].dFromY;
  if (!d) throw new Error(`linear: the derivative of ${act} is not a function of its output; ops.linear composes it instead`);
  return d(D);
}

export const vjpRules: { [P in Prim]: Rule<P> } = {
  neg: (g, n) => [gradTo(neg(G), [g], n.inputs[0]!.shape)],
  exp: unaryRule(D, 'y'), // d eˣ = eˣ
  log: unaryRule({ op: 'recip', a: D }, 'x'), // d log x = 1/x
  sqrt: unaryRule(div(c(0.5), D), 'y'), // d √x = 1/(2√x)
  // activations: derivatives from the one table (kernels/activations.ts)
  tanh: unaryRule(ACT.tanh.dFromY!(D), 'y'), // 1 − tanh²
  sigmoid: unaryRule(ACT.sigmoid.dFromY!(D), 'y'), // σ(1 − σ)
  relu: unaryRule(ACT.relu.dexpr(D), 'x'), // 1[x > 0]
  silu: unaryRule(ACT.silu.dexpr(D), 'x'), // σ(x)·(1 + x·(1 − σ(x)))
  selu: unaryRule(ACT.selu.dexpr(D), 'x'), // λ for x > 0, λα·eˣ otherwise
  softplus: unaryRule({ op: 'sigmoid', a: D }, 'x'), // σ(x)
  square: unaryRule(mul(c(2), D), 'x'), // 2x
  abs: unaryRule({ op: 'sign', a: D }, 'x'), // sign(x)
  sin: unaryRule({ op: 'cos', a: D }, 'x'),
  cos: unaryRule(neg({ op: 'sin', a: D }), 'x'),
  powc: (g, n) => [gradTo(mul(G, mul(c(n.params.p), { op: 'powc', a: D, p: n.params.p - 1 })), [g, n.inputs[0]!], n.inputs[0]!.shape)], // p·x^(p−1)
  affine: (g, n) => [gradTo({ op: 'affine', a: G, scale: n.params.scale, shift: 0 }, [g], n.inputs[0]!.shape)],
  add: (g, n, needs) => [needs[0] ? sumTo(g, n.inputs[0]!.shape) : null, needs[1] ? sumTo(g, n.inputs[1]!.shape) : null],
  sub: (g, n, needs) => [needs[0] ? sumTo(g, n.inputs[0]!.shape) : null, needs[1] ? gradTo(neg(G), [g], n.inputs[1]!.shape) : null],
  mul: (g, n, needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    return [needs[0] ? gradTo(mul(G, I(1)), [g, b], a.shape) : null, needs[1] ? gradTo(mul(G, I(1)), [g, a], b.shape) : null];
  },
  div: (g, n, needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    // d(a/b) = da/b − a·db/b²
    return [needs[0] ? gradTo(div(G, I(1)), [g, b], a.shape) : null, needs[1] ? gradTo(neg(div(mul(G, I(1)), mul(I(2), I(2)))), [g, a, b], b.shape) : null];
  },
  // Ties go to the first operand, as a subgradient.
  maximum: (g, n, needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    return [needs[0] ? gradTo(mul(G, { op: 'ge', a: I(1), b: I(2) }), [g, a, b], a.shape) : null, needs[1] ? gradTo(mul(G, { op: 'lt', a: I(1), b: I(2) }), [g, a, b], b.shape) : null];
  },
  minimum: (g, n, needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    return [needs[0] ? gradTo(mul(G, { op: 'le', a: I(1), b: I(2) }), [g, a, b], a.shape) : null, needs[1] ? gradTo(mul(G, { op: 'gt', a: I(1), b: I(2) }), [g, a, b], b.shape) : null];
  },
  compare: () => [null, null],
  where: (g, n, needs) => {
    const [cond, a, b] = n.inputs as [Tensor, Tensor, Tensor];
    const picked: Expr = { op: 'ne', a: I(1), b: c(0) };
    return [null, needs[1] ? gradTo(mul(G, picked), [g, cond], a.shape) : null, needs[2] ? gradTo(mul(G, sub(c(1), picked)), [g, cond], b.shape) : null];
  },
  // Σ: the cotangent broadcast back over the summed axes (times the scale).
  sum: (g, n) => {
    const x = n.inputs[0]!;
    const kept = x.shape.map((d, i) => (n.params.axes.includes(i) ? 1 : d));
    const gk = Tensor.view(g, kept);
    const out = fusedForward({ op: 'affine', a: G, scale: n.params.scale, shift: 0 }, [gk], x.shape, 'vjp_sum');
    gk.dispose();
    return [out];
  },
  // max: the cotangent split evenly between the tied maxima.
  max: (g, n) => {
    const x = n.inputs[0]!;
    const kept = x.shape.map((d, i) => (i === n.params.axis ? 1 : d));
    const y = Tensor.view(n.output, kept);
    const gk = Tensor.view(g, kept);
    const isMax: Expr = { op: 'eq', a: I(1), b: I(2) };
    // The count reads only x and y, so only they are bound (an unread gk made the dispatch fail
    // under an 'auto' pipeline layout, which drops bindings the shader never uses).
    const count = fusedForward({ op: 'eq', a: I(0), b: I(1) }, [x, y], kept, 'vjp_max_count');
    const out = fusedForward(div(mul(G, isMax), I(3)), [gk, x, y, count], x.shape, 'vjp_max');
    for (const t of [y, gk, count]) t.dispose();
    return [out];
  },
  reshape: (g, n) => [Tensor.view(g, n.inputs[0]!.shape)],
  transpose: (g, n) => {
    const inv = new Array<number>(n.params.perm.length);
    n.params.perm.forEach((p, i) => (inv[p] = i));
    return [forward.transpose([g], { perm: inv })];
  },
  broadcastTo: (g, n) => [sumTo(g, n.inputs[0]!.shape)],
  slice: (g, n) => [padForward(g, n.inputs[0]!.shape, n.params.starts)],
  concat: (g, n, needs) => {
    let start = 0;
    return n.inputs.map((x, i) => {
      const starts = x.shape.map((_, d) => (d === n.params.axis ? start : 0));
      start += x.shape[n.params.axis]!;
      return needs[i] ? forward.slice([g], { starts, sizes: [...x.shape] }) : null;
    });
  },
  gatherRows: (g, n) => [forward.scatterAddRows([g, n.inputs[1]!], { rows: n.inputs[0]!.shape[0]! }), null],
  scatterAddRows: (g, n) => [forward.gatherRows([g, n.inputs[1]!], {}), null],
  // C = op(A)·op(B): dA = g·op(B)ᵀ (transposed back if A was), dB = op(A)ᵀ·g (likewise).
  matmul: (g, n, needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    const { transA, transB } = n.params;
    const da = !needs[0] ? null : transA ? forward.matmul([b, g], { transA: transB, transB: true }) : forward.matmul([g, b], { transA: false, transB: !transB });
    const db = !needs[1] ? null : transB ? forward.matmul([g, a], { transA: true, transB: transA }) : forward.matmul([a, g], { transA: !transA, transB: false });
    return [da, db];
  },
  // y = act(x·W + b): gz = g·act'(y), dx = gz·Wᵀ, dW = xᵀ·gz, db = Σ_rows gz.
  linear: (g, n, needs) => {
    const [x, w, b] = n.inputs as [Tensor, Tensor, Tensor];
    const act = n.params.activation;
    const gz = act === 'none' ? Tensor.view(g, g.shape) : gradTo(mul(G, actDerivFromY(act)), [g, n.output], g.shape);
    const dx = needs[0] ? forward.matmul([gz, w], { transA: false, transB: true }) : null;
    const dw = needs[1] ? forward.matmul([x, gz], { transA: true, transB: false }) : null;
    const db = needs[2] ? gradTo(G, [gz], b.shape) : null;
    gz.dispose();
    return [dx, dw, db];
  },
  // The whole network's reverse pass: one kernel for the input cotangents and per-thread parameter
  // gradients, one reduce (engine/mlp.ts); masks are constants.
  mlp: (g, n, needs) => mlpVjp(n.inputs, n.params, g, needs),
  // A flow layer's reverse kernel (head derivatives + the conditioner's reverse pass), one reduce.
  flowLayer: (g, n, needs) => flowLayerVjp(n.inputs, n.params, g, needs),
  // d log|det W| = W^{-T} (per matrix, times its cotangent): a second LU kernel solves for the inverse.
  logdet: (g, n) => [logdetGradForward(n.inputs[0]!, g)],
  // Rational-quadratic splines: one kernel recomputes the bin and runs the reverse pass of eqs. 4–7
  // through the knots, softmaxes and softplus (the inverse by the implicit-function theorem).
  rqspline: (g, n, needs) => splineVjp(n.inputs, n.params, g, needs),
  fused: () => {
    throw new Error('fused expressions are not differentiable (gradients of gradients are not supported)');
  },
};
