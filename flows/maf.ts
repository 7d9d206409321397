/**
 * Masked autoregressive flow layer (Papamakarios et al. 2017) with a MADE conditioner:
 *
 *   forward (normalizing, one pass): z_i = (x_i − μ_i(x_<i)) · exp(−a_i(x_<i)),  log|det| = −Σ a_i
 *   inverse (sampling, sequential):  x_i = z_i · exp(a_i(x_<i)) + μ_i(x_<i)
 *
 * "<i" is in the layer's degree order. The inverse runs D passes of the MADE over whole rows:
 * after pass k every coordinate of degree ≤ k is exact (it only reads coordinates of lower degree,
 * exact since pass k − 1), so after D passes x is exact, and the a of the last pass is the final
 * one. The log-scale is soft-clamped: a = B·tanh(â/B).
 */
import { add, affine, exp, mul, slice, sub, sum, tanh, type Tensor } from '../engine';
import type { Rng } from '../engine/philox';
import { checkContext, checkRows, type Bijection, type Forward, type Inverse } from './bijection';
import { MADE, type MLPOptions } from './nets';
import type { ParamStore } from './params';
import type { FusedSpec } from './flow';

export interface MAFOptions extends MLPOptions {
  /** Degrees of the coordinates, a permutation of 1..D (default 1..D; 'reverse' flips it). */
  order?: readonly number[] | 'natural' | 'reverse';
  contextDim?: number;
  scaleBound?: number;
}

export class MAFLayer implements Bijection {
  readonly kind = 'maf';
  readonly contextDim: number;
  readonly made: MADE;
  readonly scaleBound: number;

  constructor(store: ParamStore, prefix: string, readonly dim: number, opts: MAFOptions, rng: Rng) {
    this.contextDim = opts.contextDim ?? 0;
    const o = opts.order ?? 'natural';
    const order = o === 'natural' ? [...Array(dim).keys()].map((i) => i + 1) : o === 'reverse' ? [...Array(dim).keys()].map((i) => dim - i) : [...o];
    this.made = new MADE(store, `${prefix}.made`, dim, this.contextDim, order, 2, opts, rng);
    this.scaleBound = opts.scaleBound ?? 3;
    if (!(this.scaleBound > 0) || !Number.isFinite(this.scaleBound)) throw new RangeError(`maf: scaleBound must be a positive number, got ${this.scaleBound}`);
  }

  /** Degrees of the coordinates (the autoregressive order). */
  get degrees(): number[] {
    return this.made.degrees;
  }

  private shiftLogScale(x: Tensor, context: Tensor | undefined, rows: number): { mu: Tensor; a: Tensor } {
    const h = this.made.apply(x, context);
    const mu = slice(h, [0, 0], [rows, this.dim]);
    const a = affine(tanh(affine(slice(h, [0, this.dim], [rows, this.dim]), 1 / this.scaleBound)), this.scaleBound);
    return { mu, a };
  }

  forward(x: Tensor, context?: Tensor): Forward {
    const rows = checkRows(this.kind, x, this.dim);
    const ctx = checkContext(this.kind, context, this.contextDim, rows);
    const { mu, a } = this.shiftLogScale(x, ctx, rows);
    return { y: mul(sub(x, mu), exp(affine(a, -1))), logDet: affine(sum(a, 1), -1) };
  }

  /** For Flow's fused path: MADE and the transform in one `flowLayer` dispatch (kernels/mlp/heads.ts). */
  fusedSpec(): FusedSpec {
    return { head: 'maf', keep: null, scaleBound: this.scaleBound, activation: this.made.opts.activation, layers: this.made.layers(), onesMasks: this.made.onesMasks };
  }

  inverse(z: Tensor, context?: Tensor): Inverse {
    const rows = checkRows(this.kind, z, this.dim);
    const ctx = checkContext(this.kind, context, this.contextDim, rows);
    let x = z;
    let a: Tensor | null = null;
    for (let pass = 0; pass < this.dim; pass++) {
      const p = this.shiftLogScale(x, ctx, rows);
      x = add(mul(z, exp(p.a)), p.mu);
      a = p.a;
    }
    return { x, logDet: sum(a!, 1) };
  }

  dispose(): void {
    this.made.dispose();
  }
}
