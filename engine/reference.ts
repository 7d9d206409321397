/**
 * A float64 CPU implementation of every primitive: the oracle the tests compare GPU values and
 * gradients against (gradients by central differences of these float64 functions, exact to ~1e-9).
 * Written for clarity, not speed.
 */
import { ACT, type Activation } from '../kernels/activations';
import type { BinaryOp, UnaryOp } from '../kernels/elementwise';
import { broadcastShapes, sizeOf } from './shape';

export class Ref {
  constructor(readonly shape: number[], readonly data: Float64Array) {
    if (sizeOf(shape) !== data.length) throw new Error(`Ref: ${data.length} values for shape [${shape}]`);
  }
  static of(data: ArrayLike<number>, shape: number[]): Ref {
    return new Ref(shape, Float64Array.from(data));
  }
}

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let a = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = a;
    a *= shape[i]!;
  }
  return s;
}

function unravel(i: number, shape: readonly number[]): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return c;
}

/** Index into `shape` (right-aligned, broadcast) for output coordinate `c`. */
function bindex(c: readonly number[], shape: readonly number[]): number {
  const st = strides(shape);
  let idx = 0;
  const off = c.length - shape.length;
  for (let d = 0; d < shape.length; d++) if (shape[d] !== 1) idx += c[d + off]! * st[d]!;
  return idx;
}

export const UNARY_REF: { [K in UnaryOp]: (x: number) => number } = {
  neg: (x) => -x, exp: Math.exp, log: Math.log, sqrt: Math.sqrt,
  // the activations from the one table (kernels/activations.ts)
  tanh: ACT.tanh.f64, sigmoid: ACT.sigmoid.f64, relu: ACT.relu.f64, silu: ACT.silu.f64, selu: ACT.selu.f64,
  softplus: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
  square: (x) => x * x, abs: Math.abs, sin: Math.sin, cos: Math.cos, sign: Math.sign, recip: (x) => 1 / x,
  step: (x) => (x > 0 ? 1 : 0),
};
export const BINARY_REF: { [K in BinaryOp]: (a: number, b: number) => number } = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b,
  maximum: Math.max, minimum: Math.min,
  lt: (a, b) => +(a < b), le: (a, b) => +(a <= b), gt: (a, b) => +(a > b), ge: (a, b) => +(a >= b),
  eq: (a, b) => +(a === b), ne: (a, b) => +(a !== b),
};

export function map(x: Ref, f: (v: number) => number): Ref {
  return new Ref([...x.shape], x.data.map(f));
}

export function unary(op: UnaryOp, x: Ref): Ref {
  return map(x, UNARY_REF[op]);
}

export function zipN(xs: Ref[], f: (...v: number[]) => number): Ref {
  const shape = broadcastShapes('ref', ...xs.map((x) => x.shape));
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const c = unravel(i, shape);
    out[i] = f(...xs.map((x) => x.data[bindex(c, x.shape)]!));
  }
  return new Ref(shape, out);
}

export const binary = (op: BinaryOp, a: Ref, b: Ref): Ref => zipN([a, b], BINARY_REF[op]);
export const where = (c: Ref, a: Ref, b: Ref): Ref => zipN([c, a, b], (cv, av, bv) => (cv !== 0 ? av : bv));
export const powc = (x: Ref, p: number): Ref => map(x, (v) => v ** p);
export const affine = (x: Ref, s: number, t: number): Ref => map(x, (v) => v * s + t);

function reduce(x: Ref, axes: number[], keepDims: boolean, init: number, f: (acc: number, v: number) => number): Ref {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const out = new Float64Array(sizeOf(kept)).fill(init);
  for (let i = 0; i < x.data.length; i++) {
    const c = unravel(i, x.shape);
    const o = bindex(c, kept);
    out[o] = f(out[o]!, x.data[i]!);
  }
  return new Ref(keepDims ? kept : x.shape.filter((_, i) => !axes.includes(i)), out);
}
export const sum = (x: Ref, axes: number[], keepDims = false, scale = 1): Ref => map(reduce(x, axes, keepDims, 0, (a, v) => a + v), (v) => v * scale);
export const max = (x: Ref, axis: number, keepDims = false): Ref => reduce(x, [axis], keepDims, -Infinity, Math.max);

export const reshape = (x: Ref, shape: number[]): Ref => new Ref(shape, x.data.slice());

export function transpose(x: Ref, perm: number[]): Ref {
  const shape = perm.map((p) => x.shape[p]!);
  const st = strides(x.shape);
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const c = unravel(i, shape);
    out[i] = x.data[c.reduce((a, ci, d) => a + ci * st[perm[d]!]!, 0)]!;
  }
  return new Ref(shape, out);
}

export const broadcastTo = (x: Ref, shape: number[]): Ref => zipN([x, new Ref(shape, new Float64Array(sizeOf(shape)))], (v) => v);

export function slice(x: Ref, starts: number[], sizes: number[]): Ref {
  const st = strides(x.shape);
  const out = new Float64Array(sizeOf(sizes));
  for (let i = 0; i < out.length; i++) {
    const c = unravel(i, sizes);
    out[i] = x.data[c.reduce((a, ci, d) => a + (ci + starts[d]!) * st[d]!, 0)]!;
  }
  return new Ref([...sizes], out);
}

export function concat(xs: Ref[], axis: number): Ref {
  const shape = [...xs[0]!.shape];
  shape[axis] = xs.reduce((a, x) => a + x.shape[axis]!, 0);
  const out = new Float64Array(sizeOf(shape));
  for (let i = 0; i < out.length; i++) {
    const c = unravel(i, shape);
    let k = c[axis]!;
    let j = 0;
    while (k >= xs[j]!.shape[axis]!) k -= xs[j++]!.shape[axis]!;
    const cc = [...c];
    cc[axis] = k;
    out[i] = xs[j]!.data[bindex(cc, xs[j]!.shape)]!;
  }
  return new Ref(shape, out);
}

export function gatherRows(x: Ref, idx: Ref): Ref {
  const inner = sizeOf(x.shape.slice(1));
  const out = new Float64Array(idx.data.length * inner);
  idx.data.forEach((r, j) => {
    if (r >= 0 && r < x.shape[0]!) out.set(x.data.subarray(r * inner, (r + 1) * inner), j * inner);
  });
  return new Ref([idx.data.length, ...x.shape.slice(1)], out);
}

export function scatterAddRows(g: Ref, idx: Ref, rows: number): Ref {
  const inner = sizeOf(g.shape.slice(1));
  const out = new Float64Array(rows * inner);
  idx.data.forEach((r, j) => {
    for (let k = 0; k < inner; k++) out[r * inner + k]! += g.data[j * inner + k]!;
  });
  return new Ref([rows, ...g.shape.slice(1)], out);
}

export function matmul(a: Ref, b: Ref, transA = false, transB = false): Ref {
  const A = transA ? transpose(a, [1, 0]) : a;
  const B = transB ? transpose(b, [1, 0]) : b;
  const [m, k] = A.shape as [number, number];
  const n = B.shape[1]!;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const av = A.data[i * k + p]!;
      for (let j = 0; j < n; j++) out[i * n + j]! += av * B.data[p * n + j]!;
    }
  return new Ref([m, n], out);
}

export function linear(x: Ref, w: Ref, b: Ref, act: Activation): Ref {
  const z = binary('add', matmul(x, w), b);
  return map(z, ACT[act].f64);
}

/** One Adam/AdamW step in float64 (torch.optim.AdamW semantics), updating p, m, v in place. */
export function adamStep(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, t: number, o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number }): void {
  for (let i = 0; i < p.length; i++) {
    p[i] = p[i]! * (1 - o.lr * o.weightDecay);
    m[i] = o.beta1 * m[i]! + (1 - o.beta1) * g[i]!;
    v[i] = o.beta2 * v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
    const mh = m[i]! / (1 - o.beta1 ** t);
    const vh = v[i]! / (1 - o.beta2 ** t);
    p[i] = p[i]! - (o.lr * mh) / (Math.sqrt(vh) + o.eps);
  }
}

/** log|det W| of [n, n] (→ []) or [B, n, n] (→ [B]) by LU with partial pivoting in float64. */
export function logdet(x: Ref): Ref {
  const n = x.shape[x.shape.length - 1]!;
  const batch = x.shape.length === 3 ? x.shape[0]! : 1;
  const out = new Float64Array(batch);
  for (let b = 0; b < batch; b++) {
    const a = x.data.slice(b * n * n, (b + 1) * n * n);
    let acc = 0;
    for (let k = 0; k < n; k++) {
      let p = k;
      for (let i = k + 1; i < n; i++) if (Math.abs(a[i * n + k]!) > Math.abs(a[p * n + k]!)) p = i;
      if (p !== k) for (let j = 0; j < n; j++) [a[k * n + j], a[p * n + j]] = [a[p * n + j]!, a[k * n + j]!];
      const piv = a[k * n + k]!;
      acc += Math.log(Math.abs(piv));
      for (let i = k + 1; i < n; i++) {
        const l = a[i * n + k]! / piv;
        for (let j = k + 1; j < n; j++) a[i * n + j]! -= l * a[k * n + j]!;
      }
    }
    out[b] = acc;
  }
  return new Ref(x.shape.length === 3 ? [batch] : [], out);
}

/**
 * A dense network in float64: h = [x, ctx], h ← f(h·(W_k ⊙ M_k) + b_k), no activation after the
 * last layer (the `mlp` primitive). With `tangent` ([B, nx + nc]) also the forward-mode J·tangent.
 */
export function mlp(x: Ref, ctx: Ref | null, layers: readonly { w: Ref; b: Ref; mask?: Ref | null }[], act: Activation, tangent?: Ref): { y: Ref; ty: Ref | null } {
  let h = ctx ? concat([x, ctx], 1) : x;
  let t = tangent ?? null;
  layers.forEach((l, k) => {
    const w = l.mask ? binary('mul', l.w, l.mask) : l.w;
    const z = binary('add', matmul(h, w), l.b);
    const tz = t ? matmul(t, w) : null;
    if (k + 1 === layers.length) {
      h = z;
      t = tz;
      return;
    }
    h = map(z, ACT[act].f64);
    if (tz) t = zipN([tz, z], (tv, zv) => tv * ACT[act].df64(zv));
  });
  return { y: h, ty: t };
}

/**
 * Rational-quadratic splines per element in float64 (the `rqspline` primitive; formulas in
 * kernels/spline.ts): x of any shape, w and h [...shape, K], d [...shape, K − 1] (null when K = 1).
 * Returns y and log|dy/dx| per element (the inverse's x and log|dx/dy| with `inverse`).
 */
export function rqspline(x: Ref, w: Ref, h: Ref, d: Ref | null, p: { bins: number; bound: number; inverse: boolean; minWidth: number; minHeight: number; minDerivative: number }): { y: Ref; logDet: Ref } {
  const K = p.bins;
  const B = p.bound;
  const y = new Float64Array(x.data.length);
  const lad = new Float64Array(x.data.length);
  const knots = (u: Float64Array, off: number, min: number): number[] => {
    const row = Array.from(u.subarray(off, off + K));
    const mx = Math.max(...row);
    const e = row.map((v) => Math.exp(v - mx));
    const tot = e.reduce((a, v) => a + v, 0);
    const c = [-B];
    let acc = 0;
    for (let k = 0; k < K; k++) {
      acc += min + (1 - min * K) * (e[k]! / tot);
      c.push(-B + 2 * B * acc);
    }
    c[K] = B;
    return c;
  };
  for (let i = 0; i < x.data.length; i++) {
    const v = x.data[i]!;
    if (!(v >= -B && v <= B)) {
      y[i] = v;
      continue;
    }
    const cx = knots(w.data, i * K, p.minWidth);
    const cy = knots(h.data, i * K, p.minHeight);
    const dv = [1];
    for (let j = 1; j < K; j++) dv.push(p.minDerivative + UNARY_REF.softplus(d!.data[i * (K - 1) + j - 1]!));
    dv.push(1);
    const kn = p.inverse ? cy : cx;
    let k = 0;
    while (k + 1 < K && kn[k + 1]! <= v) k++;
    const xk = cx[k]!, wk = cx[k + 1]! - xk, yk = cy[k]!, hk = cy[k + 1]! - yk, dk = dv[k]!, dk1 = dv[k + 1]!;
    const s = hk / wk;
    let xi: number;
    if (p.inverse) {
      const dy = v - yk;
      const sd = dk1 + dk - 2 * s;
      const a = dy * sd + hk * (s - dk);
      const b = hk * dk - dy * sd;
      const c = -s * dy;
      xi = (2 * c) / (-b - Math.sqrt(Math.max(b * b - 4 * a * c, 0)));
    } else xi = (v - xk) / wk;
    const t = xi * (1 - xi);
    const den = s + (dk + dk1 - 2 * s) * t;
    const logDeriv = Math.log(s * s * (dk1 * xi * xi + 2 * s * t + dk * (1 - xi) ** 2)) - 2 * Math.log(den);
    if (p.inverse) {
      y[i] = xk + xi * wk;
      lad[i] = -logDeriv;
    } else {
      y[i] = yk + (hk * (s * xi * xi + dk * t)) / den;
      lad[i] = logDeriv;
    }
  }
  return { y: new Ref([...x.shape], y), logDet: new Ref([...x.shape], lad) };
}

/**
 * A flow layer in float64 (the `flowLayer` primitive; formulas in kernels/mlp/heads.ts): the state
 * h = [x, ℓ] ([B, D + 1], or [B, D] with ℓ = 0), an optional ActNorm in front, the conditioner
 * (on x ⊙ m for couplings, x for maf) and the head; [B, D + 1] or, with tail 'normal', [B, 1].
 */
export function flowLayer(h: Ref, ctx: Ref | null, layers: readonly { w: Ref; b: Ref; mask?: Ref | null }[], act: Activation, o: { head: 'affine' | 'additive' | 'maf'; dim: number; keep: readonly number[] | null; scaleBound: number; tail: 'state' | 'normal'; pre?: { s: Ref; b: Ref } }): Ref {
  const D = o.dim;
  const B = h.shape[0]!;
  const inW = h.shape[1]!;
  const x = new Float64Array(B * D);
  const ld = new Float64Array(B);
  for (let r = 0; r < B; r++) {
    ld[r] = inW === D + 1 ? h.data[r * inW + D]! : 0;
    for (let j = 0; j < D; j++) {
      const v = h.data[r * inW + j]!;
      x[r * D + j] = o.pre ? v * Math.exp(o.pre.s.data[j]!) + o.pre.b.data[j]! : v;
      if (o.pre) ld[r] += o.pre.s.data[j]!;
    }
  }
  const cin = new Ref([B, D], x.map((v, i) => (o.keep ? v * o.keep[i % D]! : v)));
  const out = mlp(cin, ctx, layers, act).y;
  const nOut = out.shape[1]!;
  const res = new Float64Array(B * (o.tail === 'state' ? D + 1 : 1));
  for (let r = 0; r < B; r++) {
    let l = ld[r]!;
    let sq = 0;
    for (let j = 0; j < D; j++) {
      const xv = x[r * D + j]!;
      const oj = out.data[r * nOut + j]!;
      let y = xv;
      if (o.head === 'additive') y = xv + (1 - o.keep![j]!) * oj;
      else if (o.head === 'affine') {
        const s = (1 - o.keep![j]!) * o.scaleBound * Math.tanh(oj / o.scaleBound);
        y = xv * Math.exp(s) + (1 - o.keep![j]!) * out.data[r * nOut + D + j]!;
        l += s;
      } else {
        const a = o.scaleBound * Math.tanh(out.data[r * nOut + D + j]! / o.scaleBound);
        y = (xv - oj) * Math.exp(-a);
        l -= a;
      }
      sq += y * y;
      if (o.tail === 'state') res[r * (D + 1) + j] = y;
    }
    if (o.tail === 'state') res[r * (D + 1) + D] = l;
    else res[r] = -0.5 * sq - 0.5 * D * Math.log(2 * Math.PI) + l;
  }
  return new Ref([B, o.tail === 'state' ? D + 1 : 1], res);
}
