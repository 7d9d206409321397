/**
 * Monotonic rational-quadratic splines (Durkan, Bekasov, Murray, Papamakarios 2019, "Neural Spline
 * Flows", §3.1 and appendix A), one element per thread, for the engine's `rqspline` primitive.
 *
 * Each element has its own spline on [−B, B] from K bins, given unnormalised: widths w and heights h
 * (K each) pass through a softmax with a floor (as nflows, min 1e-3 of the interval per bin),
 *
 *   wᵢ = m_w + (1 − m_w·K)·softmax(w)ᵢ,  knots x₀ = −B, xⱼ = −B + 2B·Σ_{i<j} wᵢ, x_K = B  (heights alike),
 *
 * and the K − 1 interior derivatives d pass through a softplus with a floor, δⱼ = m_d + softplus(dⱼ₋₁);
 * the boundary derivatives are δ₀ = δ_K = 1, so the spline joins the identity tails outside
 * [−B, B] with a continuous first derivative. In bin k (found by a binary search over the knots,
 * inside the kernel), with ξ = (x − x_k)/w_k, s = h_k/w_k, t = ξ(1 − ξ) (paper eqs. 4–6):
 *
 *   y   = y_k + h_k·(s·ξ² + δ_k·t) / (s + (δ_k + δ_{k+1} − 2s)·t)
 *   dy/dx = s²·(δ_{k+1}·ξ² + 2s·t + δ_k·(1 − ξ)²) / (s + (δ_k + δ_{k+1} − 2s)·t)²          (eq. 7)
 *
 * The inverse solves the quadratic a·ξ² + b·ξ + c = 0 of the appendix by the root
 * ξ = 2c / (−b − √(b² − 4ac)) (as nflows): of the two algebraic forms of the root in [0, 1], the one
 * that does not subtract nearly equal numbers when 4ac is small against b².
 * Points in the tails (|x| > B) pass unchanged with log|det| 0; ±B themselves are inside.
 *
 * Bindings — forward: X, W, H, [Dv], out[2N] (y, then log|dy/dx| per element; for the inverse
 * x = f⁻¹(y) and log|dx/dy| = −log f′(x)). VJP: X, W, H, [Dv], G[2N] (cotangents of both halves),
 * out[N·3K] (gx at 0, gw at N, gh at N + NK, gd at N + 2NK). The VJP recomputes the forward and runs a
 * hand-written reverse pass through eqs. 4–7 (`rq_vjp`), the knots' cumulative sums, the softmaxes
 * and the softplus; for the inverse it uses the implicit-function theorem: with L = log f′,
 * dx = (dy − f_θ dθ)/f_x and d(−L) = −L_x dx − L_θ dθ.
 */
import type { KernelSpec } from '../engine/backend';
import { entry1d, f32, grid1d, spec, u32, type Binding } from './wgsl';

export interface SplineArgs {
  /** Elements (thread count). */
  readonly n: number;
  /** Bins K ≥ 1. */
  readonly bins: number;
  /** Interval half-width B > 0. */
  readonly bound: number;
  readonly inverse: boolean;
  readonly minWidth: number;
  readonly minHeight: number;
  readonly minDerivative: number;
  /** Element offsets of X, W, H, Dv (and G for the VJP) in their buffers. */
  readonly offsets: { x: number; w: number; h: number; d: number; g?: number };
}

export const SPLINE_MAX_BINS = 64;
const WG = 64;

/** Checks the arguments every kernel builder and the op rely on; throws naming the value. */
export function checkSplineArgs(a: Pick<SplineArgs, 'bins' | 'bound' | 'minWidth' | 'minHeight' | 'minDerivative'>): void {
  if (!Number.isInteger(a.bins) || a.bins < 1 || a.bins > SPLINE_MAX_BINS) throw new RangeError(`rqspline: bins must be an integer from 1 to ${SPLINE_MAX_BINS}, got ${a.bins}`);
  if (!(a.bound > 0) || !Number.isFinite(a.bound)) throw new RangeError(`rqspline: bound must be a positive finite number, got ${a.bound}`);
  for (const [k, v] of [['minWidth', a.minWidth], ['minHeight', a.minHeight]] as const) {
    if (!(v >= 0) || v * a.bins >= 1) throw new RangeError(`rqspline: ${k} must be ≥ 0 and below 1/bins (${1 / a.bins}), got ${v}`);
  }
  if (!(a.minDerivative > 0) || !(a.minDerivative < 1)) throw new RangeError(`rqspline: minDerivative must be in (0, 1), got ${a.minDerivative}`);
}

/** Bindings of the parameter inputs (Dv only when K > 1). */
function paramBindings(K: number): Binding[] {
  const b: Binding[] = [{ name: 'X', kind: 'read' }, { name: 'W', kind: 'read' }, { name: 'H', kind: 'read' }];
  if (K > 1) b.push({ name: 'Dv', kind: 'read' });
  return b;
}

/**
 * The shared part: knots (cx, cy), softmax probabilities (sw, sh), derivatives (dv) of element i,
 * the bin k of value v (binary search over cx, or cy for the inverse), and the local quantities.
 */
function setup(a: SplineArgs): string {
  const K = a.bins;
  const B = a.bound;
  const o = a.offsets;
  const softmax = (arr: string, off: number, s: string, c: string, min: number) => `
  var ${s}: array<f32, ${K}>;
  var ${c}: array<f32, ${K + 1}>;
  {
    let base = ${u32(off)} + i * ${u32(K)};
    var mx = ${arr}[base];
    for (var k = 1u; k < ${u32(K)}; k++) { mx = max(mx, ${arr}[base + k]); }
    var tot = 0.0;
    for (var k = 0u; k < ${u32(K)}; k++) { let e = exp(${arr}[base + k] - mx); ${s}[k] = e; tot += e; }
    var acc = 0.0;
    ${c}[0] = ${f32(-B)};
    for (var k = 0u; k < ${u32(K)}; k++) {
      ${s}[k] = ${s}[k] / tot;
      acc += ${f32(min)} + ${f32(1 - min * K)} * ${s}[k];
      ${c}[k + 1u] = ${f32(-B)} + ${f32(2 * B)} * acc;
    }
    ${c}[${u32(K)}] = ${f32(B)};
  }`;
  const derivs = K > 1
    ? `for (var j = 1u; j < ${u32(K)}; j++) { dv[j] = ${f32(a.minDerivative)} + softplus_(Dv[${u32(o.d)} + i * ${u32(K - 1)} + j - 1u]); }`
    : '';
  const knots = a.inverse ? 'cy' : 'cx';
  return `
  ${softmax('W', o.w, 'sw', 'cx', a.minWidth)}
  ${softmax('H', o.h, 'sh', 'cy', a.minHeight)}
  var dv: array<f32, ${K + 1}>;
  dv[0] = 1.0;
  dv[${u32(K)}] = 1.0;
  ${derivs}
  // the bin: the largest k < K with knot k ≤ v
  var lo = 0u;
  var hi = ${u32(K)};
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (${knots}[mid] <= v) { lo = mid; } else { hi = mid; }
  }
  let k = lo;
  let xk = cx[k];
  let wk = cx[k + 1u] - cx[k];
  let yk = cy[k];
  let hk = cy[k + 1u] - cy[k];
  let dk = dv[k];
  let dk1 = dv[k + 1u];`;
}

/** ξ of the inverse: the stable root of the appendix's quadratic. */
const INVERSE_XI = `
  let s = hk / wk;
  let dy = v - yk;
  let sumd = dk1 + dk - 2.0 * s;
  let qa = dy * sumd + hk * (s - dk);
  let qb = hk * dk - dy * sumd;
  let qc = -s * dy;
  let disc = max(qb * qb - 4.0 * qa * qc, 0.0);
  let xi = (2.0 * qc) / (-qb - sqrt(disc));
  let xin = xk + xi * wk;`;

const HELPERS = `
fn softplus_(z: f32) -> f32 { return max(z, 0.0) + log(1.0 + exp(-abs(z))); }
fn sigmoid_(z: f32) -> f32 { return 1.0 / (1.0 + exp(-z)); }
/** y and log f'(x) in bin (xk, wk, yk, hk, dk, dk1), eqs. 4–7. */
fn rq_fwd(x: f32, xk: f32, wk: f32, yk: f32, hk: f32, dk: f32, dk1: f32) -> vec2f {
  let xi = (x - xk) / wk;
  let s = hk / wk;
  let t = xi * (1.0 - xi);
  let den = s + (dk + dk1 - 2.0 * s) * t;
  let num = hk * (s * xi * xi + dk * t);
  let m = s * s * (dk1 * xi * xi + 2.0 * s * t + dk * (1.0 - xi) * (1.0 - xi));
  return vec2f(yk + num / den, log(m) - 2.0 * log(den));
}
struct RqGrad { x: f32, xk: f32, wk: f32, yk: f32, hk: f32, dk: f32, dk1: f32 }
/** Reverse pass of rq_fwd: cotangents gy (of y) and gl (of log f') → every input's. */
fn rq_vjp(x: f32, xk: f32, wk: f32, yk: f32, hk: f32, dk: f32, dk1: f32, gy: f32, gl: f32) -> RqGrad {
  let xi = (x - xk) / wk;
  let s = hk / wk;
  let t = xi * (1.0 - xi);
  let den = s + (dk + dk1 - 2.0 * s) * t;
  let q = s * xi * xi + dk * t;
  let num = hk * q;
  let p = dk1 * xi * xi + 2.0 * s * t + dk * (1.0 - xi) * (1.0 - xi);
  let m = s * s * p;
  var r: RqGrad;
  r.yk = gy;
  let gnum = gy / den;
  var gden = -gy * num / (den * den) - 2.0 * gl / den;
  let gm = gl / m;
  var gs = gm * 2.0 * s * p;
  let gp = gm * s * s;
  r.dk1 = gp * xi * xi;
  gs += gp * 2.0 * t;
  var gt = gp * 2.0 * s;
  r.dk = gp * (1.0 - xi) * (1.0 - xi);
  var gxi = gp * (2.0 * dk1 * xi - 2.0 * dk * (1.0 - xi));
  gs += gden * (1.0 - 2.0 * t);
  r.dk += gden * t;
  r.dk1 += gden * t;
  gt += gden * (dk + dk1 - 2.0 * s);
  r.hk = gnum * q;
  gs += gnum * hk * xi * xi;
  gxi += gnum * hk * 2.0 * s * xi;
  r.dk += gnum * hk * t;
  gt += gnum * hk * dk;
  gxi += gt * (1.0 - 2.0 * xi);
  r.hk += gs / wk;
  r.wk = -gs * hk / (wk * wk) - gxi * xi / wk;
  r.x = gxi / wk;
  r.xk = -gxi / wk;
  return r;
}`;

/** out[i] = y (or x for the inverse), out[N + i] = log|dy/dx| (or log|dx/dy|). */
export function splineForwardKernel(a: SplineArgs): KernelSpec {
  checkSplineArgs(a);
  const N = u32(a.n);
  const B = f32(a.bound);
  const body = `
  let v = X[${u32(a.offsets.x)} + i];
  if (!(v >= -${B} && v <= ${B})) { out[i] = v; out[${N} + i] = 0.0; return; }
  ${setup(a)}
  ${a.inverse
    ? `${INVERSE_XI}
  let r = rq_fwd(xin, xk, wk, yk, hk, dk, dk1);
  out[i] = xin;
  out[${N} + i] = -r.y;`
    : `let r = rq_fwd(v, xk, wk, yk, hk, dk, dk1);
  out[i] = r.x;
  out[${N} + i] = r.y;`}`;
  const src = entry1d(WG, a.n, `  let i = index;\n${body}`, HELPERS);
  return spec(`rqspline${a.inverse ? '_inv' : ''}[${a.n}x${a.bins}]`, [...paramBindings(a.bins), { name: 'out', kind: 'read_write' }], src, grid1d(a.n, WG));
}

/** Cotangents of X, W, H, Dv from those of both outputs, packed into out[N·3K]. */
export function splineVjpKernel(a: SplineArgs): KernelSpec {
  checkSplineArgs(a);
  const K = a.bins;
  const n = a.n;
  const N = u32(n);
  const B = f32(a.bound);
  const go = u32(a.offsets.g ?? 0);
  const oW = u32(n);
  const oH = u32(n + n * K);
  const oD = u32(n + 2 * n * K);
  const zeroParams = `
    for (var k = 0u; k < ${u32(K)}; k++) { out[${oW} + i * ${u32(K)} + k] = 0.0; out[${oH} + i * ${u32(K)} + k] = 0.0; }
    ${K > 1 ? `for (var k = 0u; k < ${u32(K - 1)}; k++) { out[${oD} + i * ${u32(K - 1)} + k] = 0.0; }` : ''}`;
  // Local cotangents lg (of xk, wk, yk, hk, dk, dk1) → knots → softmax inputs; softplus for δ.
  const chain = `
  var gcx: array<f32, ${K + 1}>;
  var gcy: array<f32, ${K + 1}>;
  var gdv: array<f32, ${K + 1}>;
  gcx[k] += lg.xk - lg.wk;
  gcx[k + 1u] += lg.wk;
  gcy[k] += lg.yk - lg.hk;
  gcy[k + 1u] += lg.hk;
  gdv[k] += lg.dk;
  gdv[k + 1u] += lg.dk1;
  // knots j = 1..K−1 are −B + 2B·Σ_{i<j} wᵢ (knots 0 and K are constants), wᵢ = m + (1 − mK)·sᵢ
  var tailx = 0.0;
  var taily = 0.0;
  var gsx: array<f32, ${K}>;
  var gsy: array<f32, ${K}>;
  var dotx = 0.0;
  var doty = 0.0;
  for (var jj = 0u; jj < ${u32(K)}; jj++) {
    let j = ${u32(K - 1)} - jj;
    // Σ_{j' > j, j' < K} of the knot cotangents
    if (j + 1u < ${u32(K)}) { tailx += gcx[j + 1u]; taily += gcy[j + 1u]; }
    gsx[j] = ${f32(2 * a.bound * (1 - a.minWidth * K))} * tailx;
    gsy[j] = ${f32(2 * a.bound * (1 - a.minHeight * K))} * taily;
    dotx += sw[j] * gsx[j];
    doty += sh[j] * gsy[j];
  }
  for (var j = 0u; j < ${u32(K)}; j++) {
    out[${oW} + i * ${u32(K)} + j] = sw[j] * (gsx[j] - dotx);
    out[${oH} + i * ${u32(K)} + j] = sh[j] * (gsy[j] - doty);
  }
  ${K > 1 ? `for (var j = 1u; j < ${u32(K)}; j++) { out[${oD} + i * ${u32(K - 1)} + j - 1u] = gdv[j] * sigmoid_(Dv[${u32(a.offsets.d)} + i * ${u32(K - 1)} + j - 1u]); }` : ''}`;
  const local = a.inverse
    ? `${INVERSE_XI}
  // x = f⁻¹(v), out L⁻ = −log f'(x): total cotangent on x, then the implicit-function theorem.
  let lx = rq_vjp(xin, xk, wk, yk, hk, dk, dk1, 0.0, 1.0).x;
  let fx = exp(rq_fwd(xin, xk, wk, yk, hk, dk, dk1).y);
  let gbar = gx - gl * lx;
  out[i] = gbar / fx;
  let lg = rq_vjp(xin, xk, wk, yk, hk, dk, dk1, -gbar / fx, -gl);`
    : `
  let lg = rq_vjp(v, xk, wk, yk, hk, dk, dk1, gx, gl);
  out[i] = lg.x;`;
  const body = `
  let v = X[${u32(a.offsets.x)} + i];
  let gx = G[${go} + i];
  let gl = G[${go} + ${N} + i];
  if (!(v >= -${B} && v <= ${B})) {
    out[i] = gx;
    ${zeroParams}
    return;
  }
  ${setup(a)}
  ${local}
  ${chain}`;
  const src = entry1d(WG, n, `  let i = index;\n${body}`, HELPERS);
  return spec(`rqspline${a.inverse ? '_inv' : ''}_vjp[${n}x${K}]`, [...paramBindings(K), { name: 'G', kind: 'read' }, { name: 'out', kind: 'read_write' }], src, grid1d(n, WG));
}
