/**
 * Elementwise kernels generated from an expression table (tinygrad's `code_for_op`): one map from op
 * name to WGSL, one generator for every unary, binary and fused expression. Inputs are strided views
 * of the output's index space (stride 0 = broadcast), so broadcasting, transpose, slicing and
 * parameter views into a flat buffer all reuse this one generator. Kernels here know nothing of
 * derivatives: gradient expressions are built by the tape from these same ops.
 */
import type { KernelSpec } from '../engine/backend';
import { ACT, SELU_ALPHA, SELU_LAMBDA } from './activations';
import { entry1d, f32, grid1d, product, spec, u32, type Binding } from './wgsl';

export { SELU_ALPHA, SELU_LAMBDA };

export const UNARY_OPS = ['neg', 'exp', 'log', 'sqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'selu', 'softplus', 'square',
  'abs', 'sin', 'cos', 'sign', 'recip', 'step'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'lt', 'le', 'gt', 'ge', 'eq', 'ne'] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

export type Expr =
  | { readonly op: 'in'; readonly i: number }
  | { readonly op: 'const'; readonly v: number }
  | { readonly op: UnaryOp; readonly a: Expr }
  | { readonly op: BinaryOp; readonly a: Expr; readonly b: Expr }
  | { readonly op: 'powc'; readonly a: Expr; readonly p: number }
  | { readonly op: 'affine'; readonly a: Expr; readonly scale: number; readonly shift: number }
  | { readonly op: 'where'; readonly c: Expr; readonly a: Expr; readonly b: Expr };

/** WGSL for each unary op given the operand's name. Stable forms: no NaN for large |x|. */
const UNARY_WGSL: { [K in UnaryOp]: (x: string) => string } = {
  neg: (x) => `-${x}`,
  exp: (x) => `exp(${x})`,
  log: (x) => `log(${x})`,
  sqrt: (x) => `sqrt(${x})`,
  // the activations come from the one table (kernels/activations.ts)
  tanh: ACT.tanh.wgsl,
  sigmoid: ACT.sigmoid.wgsl,
  relu: ACT.relu.wgsl,
  silu: ACT.silu.wgsl,
  selu: ACT.selu.wgsl,
  // softplus(x) = max(x, 0) + log(1 + e^{-|x|}), exact and overflow-free.
  softplus: (x) => `(max(${x}, 0.0) + log(1.0 + exp(-abs(${x}))))`,
  square: (x) => `(${x} * ${x})`,
  abs: (x) => `abs(${x})`,
  // accurate versions (kernels/wgsl.ts SINCOS_WGSL): the built-ins may be off by 2⁻¹¹
  sin: (x) => `wgf_sin(${x})`,
  cos: (x) => `wgf_cos(${x})`,
  sign: (x) => `sign(${x})`,
  recip: (x) => `(1.0 / ${x})`,
  step: (x) => `select(0.0, 1.0, ${x} > 0.0)`,
};

const BINARY_WGSL: { [K in BinaryOp]: (a: string, b: string) => string } = {
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  maximum: (a, b) => `max(${a}, ${b})`,
  minimum: (a, b) => `min(${a}, ${b})`,
  lt: (a, b) => `select(0.0, 1.0, ${a} < ${b})`,
  le: (a, b) => `select(0.0, 1.0, ${a} <= ${b})`,
  gt: (a, b) => `select(0.0, 1.0, ${a} > ${b})`,
  ge: (a, b) => `select(0.0, 1.0, ${a} >= ${b})`,
  eq: (a, b) => `select(0.0, 1.0, ${a} == ${b})`,
  ne: (a, b) => `select(0.0, 1.0, ${a} != ${b})`,
};

/** x^p for a constant p: exact products for small integers, sign-aware pow for other integers. */
function powWgsl(x: string, p: number): string {
  if (p === 0) return '1.0';
  if (p === 1) return x;
  if (p === 2) return `(${x} * ${x})`;
  if (p === 3) return `(${x} * ${x} * ${x})`;
  if (p === -1) return `(1.0 / ${x})`;
  if (p === 0.5) return `sqrt(${x})`;
  if (Number.isInteger(p)) {
    const mag = `pow(abs(${x}), ${f32(p)})`;
    return p % 2 === 0 ? mag : `(sign(${x}) * ${mag})`;
  }
  return `pow(${x}, ${f32(p)})`;
}

/** A strided view of an input in the output's index space. */
export interface InputView {
  /** Element offset of the view's origin in its buffer. */
  readonly offset: number;
  /** One stride per output dimension (0 where the input is broadcast). */
  readonly strides: readonly number[];
}

/** Contiguous view of a tensor of `shape` broadcast (numpy rules) to `outShape`. */
export function broadcastView(shape: readonly number[], outShape: readonly number[], offset = 0): InputView {
  const r = outShape.length;
  const strides = new Array<number>(r).fill(0);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const o = r - shape.length + i;
    if (shape[i] !== 1) strides[o] = acc;
    acc *= shape[i]!;
  }
  return { offset, strides };
}

/** Index expression of `view` for flat output `index` (constants baked; unit strides fast-pathed). */
export function viewIndex(view: InputView, outShape: readonly number[], index = 'index'): string {
  const r = outShape.length;
  // Contiguous same-shape view: the flat index itself.
  let contiguous = true;
  let acc = 1;
  for (let i = r - 1; i >= 0; i--) {
    if (outShape[i] !== 1 && view.strides[i] !== acc) contiguous = false;
    acc *= outShape[i]!;
  }
  const base = view.offset ? ` + ${u32(view.offset)}` : '';
  if (contiguous) return `${index}${base}`;
  const terms: string[] = [];
  let below = 1;
  for (let i = r - 1; i >= 0; i--) {
    const d = outShape[i]!;
    const s = view.strides[i]!;
    if (d !== 1 && s !== 0) {
      let coord = below === 1 ? index : `(${index} / ${u32(below)})`;
      if (below * d < product(outShape)) coord = `(${coord} % ${u32(d)})`;
      terms.push(s === 1 ? coord : `${coord} * ${u32(s)}`);
    }
    below *= d;
  }
  if (terms.length === 0) return view.offset ? u32(view.offset) : '0u';
  return `${terms.join(' + ')}${base}`;
}

/**
 * Compiles an expression to WGSL statements with common subexpressions shared (`let tN = ...`).
 * `load(i)` gives the expression that reads input i. Returns the statements and the result name.
 */
export function compileExpr(expr: Expr, load: (i: number) => string): { lines: string[]; result: string } {
  const lines: string[] = [];
  const seen = new Map<string, string>();
  const visit = (e: Expr): string => {
    const key = JSON.stringify(e);
    const hit = seen.get(key);
    if (hit) return hit;
    let code: string;
    switch (e.op) {
      case 'in': code = load(e.i); break;
      case 'const': return f32(e.v);
      case 'powc': code = powWgsl(visit(e.a), e.p); break;
      case 'affine': code = `fma(${visit(e.a)}, ${f32(e.scale)}, ${f32(e.shift)})`; break;
      case 'where': code = `select(${visit(e.b)}, ${visit(e.a)}, ${visit(e.c)} != 0.0)`; break;
      default:
        if ('b' in e) code = BINARY_WGSL[e.op](visit(e.a), visit(e.b));
        else code = UNARY_WGSL[e.op](visit(e.a));
    }
    const name = `t${seen.size}`;
    seen.set(key, name);
    lines.push(`  let ${name} = ${code};`);
    return name;
  };
  const result = visit(expr);
  return { lines, result };
}

/** Number of inputs an expression reads (max input index + 1). */
export function exprArity(e: Expr): number {
  switch (e.op) {
    case 'in': return e.i + 1;
    case 'const': return 0;
    case 'where': return Math.max(exprArity(e.c), exprArity(e.a), exprArity(e.b));
    default: return 'b' in e ? Math.max(exprArity(e.a), exprArity(e.b)) : exprArity(e.a);
  }
}

const WG = 256;

/** out[index] = expr(inputs viewed at index), for every index of `outShape`. */
export function elementwiseKernel(name: string, expr: Expr, views: readonly InputView[], outShape: readonly number[]): KernelSpec {
  const n = product(outShape);
  if (views.length !== exprArity(expr)) throw new Error(`${name}: expression reads ${exprArity(expr)} inputs, ${views.length} views given`);
  const bindings: Binding[] = views.map((_, i) => ({ name: `in${i}`, kind: 'read' as const }));
  bindings.push({ name: 'out', kind: 'read_write' });
  const { lines, result } = compileExpr(expr, (i) => `in${i}[${viewIndex(views[i]!, outShape)}]`);
  const body = `${lines.join('\n')}\n  out[index] = ${result};`;
  return spec(`${name}[${outShape.join('x')}]`, bindings, entry1d(WG, n, body), grid1d(n, WG));
}
