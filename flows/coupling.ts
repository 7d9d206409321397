/**
 * Coupling layers (Dinh et al.): a binary mask m splits the coordinates; the masked part passes
 * through unchanged and conditions (with the optional context) an MLP that transforms the rest.
 *
 *   NICE, additive:  y = x + (1 − m) ⊙ t(m ⊙ x, c)                       log|det| = 0
 *   RealNVP, affine: y = x ⊙ exp(s) + (1 − m) ⊙ t,  s = (1 − m) ⊙ B·tanh(ŝ / B)   log|det| = Σ s
 *
 * The log-scale is soft-clamped to (−B, B) (B = `scaleBound`, default 3): tanh keeps the gradient at
 * ŝ = 0 equal to 1 while stopping one layer from blowing a scale up (Glow's and nflows' remedy for
 * the instability of the unbounded exp(s) of the original RealNVP).
 *
 * `fusedSpec` describes the layer to Flow's fused path (fusion level 'mlp' and above): conditioner
 * and transform in one `flowLayer` dispatch (kernels/mlp/heads.ts), the same formulas.
 */
import { add, affine, exp, keep, mul, slice, sub, sum, tanh, tensor, type Tensor } from '../engine';
import type { Rng } from '../engine/philox';
import { checkContext, checkRows, zeroLogDet, type Bijection, type Forward, type Inverse } from './bijection';
import { MLP, type MLPOptions } from './nets';
import type { ParamStore } from './params';
import type { FusedSpec } from './flow';

export type MaskKind = 'half' | 'alternate';

/**
 * A coupling mask (1 = passes through and conditions): `half` keeps the first ⌊D/2⌋ coordinates,
 * `alternate` the even ones; `flip` swaps the roles.
 */
export function couplingMask(dim: number, kind: MaskKind, flip: boolean): Float32Array {
  if (!Number.isInteger(dim) || dim < 2) throw new Error(`coupling layers need at least 2 dimensions (the data has ${dim}); use planar or radial for 1-D data`);
  const m = new Float32Array(dim);
  for (let i = 0; i < dim; i++) {
    const keepIt = kind === 'half' ? i < Math.floor(dim / 2) : i % 2 === 0;
    m[i] = keepIt !== flip ? 1 : 0;
  }
  return m;
}

export interface CouplingOptions extends MLPOptions {
  /** 1 = identity (conditioning) coordinates. */
  mask: Float32Array;
  contextDim?: number;
}

abstract class Coupling implements Bijection {
  abstract readonly kind: string;
  readonly contextDim: number;
  protected readonly net: MLP;
  protected readonly maskT: Tensor;
  /** 1 − m. */
  protected readonly invT: Tensor;
  private readonly keepMask: Float32Array;

  constructor(store: ParamStore, prefix: string, readonly dim: number, opts: CouplingOptions, rng: Rng, outMult: number) {
    if (opts.mask.length !== dim) throw new Error(`coupling: mask has ${opts.mask.length} entries for dimension ${dim}`);
    const ones = opts.mask.reduce((a, v) => a + v, 0);
    if (ones === 0 || ones === dim) throw new Error('coupling: the mask must keep at least one coordinate and transform at least one');
    this.contextDim = opts.contextDim ?? 0;
    this.net = new MLP(store, `${prefix}.net`, dim + this.contextDim, outMult * dim, opts, rng);
    this.keepMask = Float32Array.from(opts.mask);
    this.maskT = keep(tensor(opts.mask));
    this.invT = keep(tensor(opts.mask.map((v) => 1 - v)));
  }

  /** The conditioner's output from the unchanged coordinates (and the context). */
  protected condition(x: Tensor, context: Tensor | undefined): Tensor {
    return this.net.apply(mul(x, this.maskT), context);
  }

  abstract forward(x: Tensor, context?: Tensor): Forward;
  abstract inverse(y: Tensor, context?: Tensor): Inverse;

  protected spec(head: 'affine' | 'additive', scaleBound: number): FusedSpec {
    return { head, keep: this.keepMask, scaleBound, activation: this.net.opts.activation, layers: this.net.layers() };
  }

  dispose(): void {
    this.maskT.dispose();
    this.invT.dispose();
  }
}

export class AdditiveCoupling extends Coupling {
  readonly kind = 'additive-coupling';

  constructor(store: ParamStore, prefix: string, dim: number, opts: CouplingOptions, rng: Rng) {
    super(store, prefix, dim, opts, rng, 1);
  }

  private shift(x: Tensor, context: Tensor | undefined): Tensor {
    const rows = checkRows(this.kind, x, this.dim);
    return mul(this.condition(x, checkContext(this.kind, context, this.contextDim, rows)), this.invT);
  }

  forward(x: Tensor, context?: Tensor): Forward {
    return { y: add(x, this.shift(x, context)), logDet: zeroLogDet(x.shape[0]!) };
  }

  fusedSpec(): FusedSpec {
    return this.spec('additive', 1);
  }

  inverse(y: Tensor, context?: Tensor): Inverse {
    return { x: sub(y, this.shift(y, context)), logDet: zeroLogDet(y.shape[0]!) };
  }
}

export class AffineCoupling extends Coupling {
  readonly kind = 'affine-coupling';
  readonly scaleBound: number;
  /** B·(1 − m): multiplies tanh(ŝ / B). */
  private readonly sScale: Tensor;

  constructor(store: ParamStore, prefix: string, dim: number, opts: CouplingOptions & { scaleBound?: number }, rng: Rng) {
    super(store, prefix, dim, opts, rng, 2);
    this.scaleBound = opts.scaleBound ?? 3;
    if (!(this.scaleBound > 0) || !Number.isFinite(this.scaleBound)) throw new RangeError(`affine coupling: scaleBound must be a positive number, got ${this.scaleBound}`);
    this.sScale = keep(tensor(opts.mask.map((v) => (1 - v) * this.scaleBound)));
  }

  /** (s, t) with s bounded and both zero on the identity coordinates. */
  private st(x: Tensor, context: Tensor | undefined): { s: Tensor; t: Tensor } {
    const rows = checkRows(this.kind, x, this.dim);
    const h = this.condition(x, checkContext(this.kind, context, this.contextDim, rows));
    const raw = slice(h, [0, 0], [rows, this.dim]);
    const s = mul(tanh(affine(raw, 1 / this.scaleBound)), this.sScale);
    const t = mul(slice(h, [0, this.dim], [rows, this.dim]), this.invT);
    return { s, t };
  }

  forward(x: Tensor, context?: Tensor): Forward {
    const { s, t } = this.st(x, context);
    return { y: add(mul(x, exp(s)), t), logDet: sum(s, 1) };
  }

  fusedSpec(): FusedSpec {
    return this.spec('affine', this.scaleBound);
  }

  inverse(y: Tensor, context?: Tensor): Inverse {
    const { s, t } = this.st(y, context);
    return { x: mul(sub(y, t), exp(affine(s, -1))), logDet: affine(sum(s, 1), -1) };
  }

  override dispose(): void {
    super.dispose();
    this.sScale.dispose();
  }
}
