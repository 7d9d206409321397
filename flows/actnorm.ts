/**
 * ActNorm (Glow): y = x ⊙ exp(s) + b per coordinate, log|det| = Σ s. Data-dependent
 * initialisation sets s = −log σ and b = −μ/σ from a batch so that the layer's output starts with
 * zero mean and unit variance per coordinate; afterwards s and b are ordinary parameters.
 */
import { add, affine, exp, mul, sub, sum, type Tensor } from '../engine';
import { checkRows, perRow, type Bijection, type Forward, type Inverse } from './bijection';
import type { ParamStore } from './params';

export class ActNorm implements Bijection {
  readonly kind = 'actnorm';
  readonly contextDim = 0;
  private readonly logScale: string;
  private readonly shift: string;

  constructor(private readonly store: ParamStore, prefix: string, readonly dim: number) {
    this.logScale = store.add(`${prefix}.log_scale`, [dim], new Float32Array(dim));
    this.shift = store.add(`${prefix}.shift`, [dim], new Float32Array(dim));
  }

  forward(x: Tensor): Forward {
    const rows = checkRows(this.kind, x, this.dim);
    const s = this.store.get(this.logScale);
    return { y: add(mul(x, exp(s)), this.store.get(this.shift)), logDet: perRow(sum(s), rows) };
  }

  inverse(y: Tensor): Inverse {
    const rows = checkRows(this.kind, y, this.dim);
    const s = this.store.get(this.logScale);
    return { x: mul(sub(y, this.store.get(this.shift)), exp(affine(s, -1))), logDet: perRow(affine(sum(s), -1), rows) };
  }

  /** The log-scale and shift, for folding into the next fused layer (Flow's fused path). */
  fusedPre(): { s: Tensor; b: Tensor } {
    return { s: this.store.get(this.logScale), b: this.store.get(this.shift) };
  }

  /** s = −log σ, b = −μ/σ per coordinate of the batch x (σ floored at 1e-6). */
  async dataInit(x: Tensor): Promise<void> {
    const rows = checkRows(this.kind, x, this.dim);
    const d = await x.data();
    const s = new Float32Array(this.dim), b = new Float32Array(this.dim);
    for (let j = 0; j < this.dim; j++) {
      let m = 0;
      for (let i = 0; i < rows; i++) m += d[i * this.dim + j]!;
      m /= rows;
      let v = 0;
      for (let i = 0; i < rows; i++) v += (d[i * this.dim + j]! - m) ** 2;
      const sd = Math.max(Math.sqrt(v / Math.max(1, rows - 1)), 1e-6);
      if (!Number.isFinite(sd) || !Number.isFinite(m)) throw new Error('actnorm: data-dependent initialisation saw non-finite values');
      s[j] = -Math.log(sd);
      b[j] = -m / sd;
    }
    this.store.write(this.logScale, s);
    this.store.write(this.shift, b);
  }

  dispose(): void {}
}
