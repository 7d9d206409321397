/**
 * Radial flow (Rezende & Mohamed 2015), used in the normalizing direction:
 *
 *   y = x + β·h(r)·(x − x₀),  r = ‖x − x₀‖,  h = 1/(α + r)
 *   log|det| = (D − 1)·log(1 + βh) + log(1 + βh·α/(α + r))
 *
 * with α = softplus(α̃) > 0 and β = −α + softplus(β̃) > −α, which keeps it invertible.
 * Inverse in closed form: ρ = ‖y − x₀‖ = r·(1 + β/(α + r)) is the quadratic r² + (α + β − ρ)·r − αρ = 0,
 * whose non-negative root is taken in the cancellation-free form for either sign of q = α + β − ρ;
 * then x = x₀ + (y − x₀)/(1 + βh(r)). Norms carry ε = 1e-12 under the root (finite gradient at x₀).
 */
import { add, affine, div, gt, log, mul, softplus, sqrt, square, sub, sum, where, type Tensor } from '../engine';
import type { Rng } from '../engine/philox';
import { checkRows, type Bijection, type Forward, type Inverse } from './bijection';
import type { ParamStore } from './params';

export class Radial implements Bijection {
  readonly kind = 'radial';
  readonly contextDim = 0;
  private readonly x0: string;
  private readonly aRaw: string;
  private readonly bRaw: string;

  constructor(private readonly store: ParamStore, prefix: string, readonly dim: number, rng: Rng, initScale = 1) {
    this.x0 = store.add(`${prefix}.center`, [dim], Float32Array.from({ length: dim }, () => rng.normal() * initScale));
    this.aRaw = store.add(`${prefix}.alpha_raw`, [1], [rng.normal() * 0.1]);
    this.bRaw = store.add(`${prefix}.beta_raw`, [1], [rng.normal() * 0.1]);
  }

  /** α > 0 and β > −α, each [1]. */
  constrained(): { alpha: Tensor; beta: Tensor } {
    const alpha = softplus(this.store.get(this.aRaw));
    return { alpha, beta: sub(softplus(this.store.get(this.bRaw)), alpha) };
  }

  private norm(d: Tensor): Tensor {
    return sqrt(affine(sum(square(d), 1, true), 1, 1e-12));
  }

  /** log|det| from βh and α/(α + r), [B, 1] → [B]. */
  private logDetOf(bh: Tensor, alpha: Tensor, ar: Tensor, rows: number): Tensor {
    const t1 = affine(log(affine(bh, 1, 1)), this.dim - 1);
    const t2 = log(affine(div(mul(bh, alpha), ar), 1, 1));
    return sum(add(t1, t2), 1);
  }

  forward(x: Tensor): Forward {
    const rows = checkRows(this.kind, x, this.dim);
    const { alpha, beta } = this.constrained();
    const d = sub(x, this.store.get(this.x0));
    const ar = add(this.norm(d), alpha);
    const bh = div(beta, ar);
    return { y: add(x, mul(bh, d)), logDet: this.logDetOf(bh, alpha, ar, rows) };
  }

  inverse(y: Tensor): Inverse {
    const rows = checkRows(this.kind, y, this.dim);
    const { alpha, beta } = this.constrained();
    const x0 = this.store.get(this.x0);
    const d = sub(y, x0);
    const rho = this.norm(d);
    const q = sub(add(alpha, beta), rho);
    const s = sqrt(add(square(q), mul(affine(rho, 4), alpha)));
    // r = (s − q)/2 = 2αρ/(q + s): the first form for q ≤ 0, the second for q > 0 (no cancellation).
    const r = where(gt(q, 0), div(mul(affine(rho, 2), alpha), add(q, s)), affine(sub(s, q), 0.5));
    const ar = add(r, alpha);
    const bh = div(beta, ar);
    return { x: add(x0, div(d, affine(bh, 1, 1))), logDet: affine(this.logDetOf(bh, alpha, ar, rows), -1) };
  }

  dispose(): void {}
}
