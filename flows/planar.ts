/**
 * Planar flow (Rezende & Mohamed 2015), used in the normalizing direction:
 *
 *   y = x + û·tanh(wᵀx + b),   log|det ∂y/∂x| = log(1 + (1 − tanh²(wᵀx + b))·wᵀû)
 *
 * with the û correction that keeps it invertible: û = u + (m(wᵀu) − wᵀu)·w/‖w‖², so wᵀû = m(wᵀu) > −1
 * and 1 + h′·wᵀû > 0 for every x whatever the parameters become during training. We take
 * m(a) = −1 + softplus(a + ln(e − 1)) (the paper's m shifted so that m(0) = 0): with the paper's
 * m(0) = −0.31, every freshly initialised layer contracts by ~0.7 along w, and a chain of 32 such
 * layers is badly conditioned to invert in float32; with the shift, layers start near the identity.
 *
 * Inverse (sampling): writing α = wᵀx, the equation wᵀy = α + m·tanh(α + b) has exactly one root
 * (the left side's α-derivative is 1 + m(1 − tanh²) > 0). The root is found on the GPU, one thread
 * per row, by Newton's method safeguarded by bisection on the bracket [wᵀy − |m|, wᵀy + |m|] (at
 * most 64 iterations; one kernel dispatch, outside the tape). One more Newton step is then taken
 * with ops on the tape, so x = y − û·tanh(α + b) is differentiable in y and the parameters with
 * exact first derivatives (implicit-function theorem), not just the root's value.
 */
import { add, affine, div, linear, log, matmul, mul, reshape, softplus, square, sub, sum, tanh, type Tensor } from '../engine';
import type { KernelSpec } from '../engine/backend';
import { runKernel } from '../engine/prims';
import { noGrad } from '../engine';
import { entry1d, grid1d, spec, u32 } from '../kernels/wgsl';
import type { Rng } from '../engine/philox';
import { checkRows, type Bijection, type Forward, type Inverse } from './bijection';
import type { ParamStore } from './params';

/** α per row solving α + m·tanh(α + b) = c (inputs c [B], m [1], b [1]; element offsets baked). */
const LN_E_MINUS_1 = Math.log(Math.E - 1);

export function planarRootKernel(rows: number, offC: number, offM: number, offB: number): KernelSpec {
  const body = `  let c = C[index + ${u32(offC)}];
  let m = M[${u32(offM)}];
  let bb = Bv[${u32(offB)}];
  let r = abs(m) * 1.0000001 + 1e-6 * (1.0 + abs(c));
  var lo = c - r;
  var hi = c + r;
  var a = clamp(c - m * tanh(clamp(c + bb, -10.0, 10.0)), lo, hi);
  for (var it = 0u; it < 64u; it++) {
    let t = tanh(clamp(a + bb, -10.0, 10.0));
    let f = a + m * t - c;
    if (f == 0.0) { break; }
    if (f > 0.0) { hi = a; } else { lo = a; }
    let fp = 1.0 + m * (1.0 - t * t);
    var next = a - f / fp;
    if (!(next > lo && next < hi)) { next = 0.5 * (lo + hi); }
    if (next == a) { break; }
    a = next;
  }
  out[index] = a;`;
  const bindings = [{ name: 'C', kind: 'read' as const }, { name: 'M', kind: 'read' as const }, { name: 'Bv', kind: 'read' as const }, { name: 'out', kind: 'read_write' as const }];
  return spec(`planar_root[${rows}]`, bindings, entry1d(64, rows, body), grid1d(rows, 64));
}

export class Planar implements Bijection {
  readonly kind = 'planar';
  readonly contextDim = 0;
  private readonly u: string;
  private readonly w: string;
  private readonly b: string;

  constructor(private readonly store: ParamStore, prefix: string, readonly dim: number, rng: Rng, initScale = 0.1) {
    const init = () => Float32Array.from({ length: dim }, () => rng.normal() * initScale);
    this.u = store.add(`${prefix}.u`, [dim], init());
    this.w = store.add(`${prefix}.w`, [dim], init());
    this.b = store.add(`${prefix}.b`, [1], [0]);
  }

  /** û and m = wᵀû = softplus(wᵀu + ln(e − 1)) − 1 (> −1). */
  constrained(): { uHat: Tensor; m: Tensor } {
    const u = this.store.get(this.u), w = this.store.get(this.w);
    const wu = sum(mul(w, u));
    const m = affine(softplus(affine(wu, 1, LN_E_MINUS_1)), 1, -1);
    const coef = div(sub(m, wu), affine(sum(square(w)), 1, 1e-12));
    return { uHat: add(u, mul(coef, w)), m: reshape(m, [1]) };
  }

  /** log(1 + (1 − h²)·m) for h = tanh(wᵀx + b), [B, 1] → [B]. */
  private logDetOf(h: Tensor, m: Tensor, rows: number): Tensor {
    return reshape(log(affine(mul(affine(square(h), -1, 1), m), 1, 1)), [rows]);
  }

  forward(x: Tensor): Forward {
    const rows = checkRows(this.kind, x, this.dim);
    const { uHat, m } = this.constrained();
    const h = linear(x, reshape(this.store.get(this.w), [this.dim, 1]), this.store.get(this.b), 'tanh');
    return { y: add(x, mul(h, uHat)), logDet: this.logDetOf(h, m, rows) };
  }

  inverse(y: Tensor): Inverse {
    const rows = checkRows(this.kind, y, this.dim);
    const { uHat, m } = this.constrained();
    const b = this.store.get(this.b);
    const c = matmul(y, reshape(this.store.get(this.w), [this.dim, 1]));
    const a0 = noGrad(() => runKernel(planarRootKernel(rows, c.offset, m.offset, b.offset), [c, m, b], [rows, 1]));
    // One Newton step on the tape: a1 = a0 − g(a0)/g′(a0), g(a) = a + m·tanh(a + b) − c.
    const t0 = tanh(add(a0, b));
    const g = sub(add(a0, mul(m, t0)), c);
    const gp = affine(mul(m, affine(square(t0), -1, 1)), 1, 1);
    const a1 = sub(a0, div(g, gp));
    const h = tanh(add(a1, b));
    return { x: sub(y, mul(h, uHat)), logDet: affine(this.logDetOf(h, m, rows), -1) };
  }

  dispose(): void {}
}
