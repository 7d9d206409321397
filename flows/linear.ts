/**
 * Linear bijections y = x·W (rows times W) and permutations.
 *
 *  - LULinear (Glow's invertible 1×1 convolution for vectors): W = P·L·(U + diag(sign·exp(d))) with P
 *    a fixed permutation, L unit lower-triangular, U strictly upper-triangular and fixed signs, all
 *    initialised from the LU factors of a random rotation; log|det W| = Σ d costs nothing.
 *  - DenseLinear: an unconstrained W (initialised to a random rotation); log|det W| comes from the
 *    batched LU kernel (engine op `logdet`, kernels/logdet.ts), its gradient W⁻ᵀ from the same
 *    kernel in a second dispatch.
 *  - Permutation: y = x·P for a fixed permutation matrix (exact: products with 0 and 1), reverse or
 *    random; log|det| = 0.
 *
 * Inverses use flows/linalg.ts `inverse` (LU-kernel start, one Newton step on the tape).
 */
import { add, exp, keep, logdet, matmul, mul, neg, sum, tensor, type Tensor } from '../engine';
import type { Rng } from '../engine/philox';
import { checkRows, perRow, zeroLogDet, type Bijection, type Forward, type Inverse } from './bijection';
import { inverse, luDecompose, randomOrthogonal } from './linalg';
import type { ParamStore } from './params';

/** P with P[perm[j], j] = 1: (x·P)[:, j] = x[:, perm[j]], and A = P·L·U for luDecompose's perm. */
function permutationMatrix(perm: readonly number[]): Float32Array {
  const n = perm.length;
  const p = new Float32Array(n * n);
  perm.forEach((src, j) => (p[src * n + j] = 1));
  return p;
}

export class Permutation implements Bijection {
  readonly kind = 'permutation';
  readonly contextDim = 0;
  /** y[:, j] = x[:, perm[j]]. */
  readonly perm: number[];
  private readonly p: Tensor;

  constructor(readonly dim: number, perm: 'reverse' | 'random' | readonly number[], rng?: Rng) {
    if (perm === 'reverse') this.perm = [...Array(dim).keys()].reverse();
    else if (perm === 'random') {
      if (!rng) throw new Error('permutation: a random permutation needs an Rng');
      this.perm = Array.from(rng.permutation(dim));
    } else this.perm = [...perm];
    if (this.perm.length !== dim || [...this.perm].sort((a, b) => a - b).some((v, i) => v !== i)) {
      throw new Error(`permutation: [${this.perm.join(', ')}] is not a permutation of 0..${dim - 1}`);
    }
    this.p = keep(tensor(permutationMatrix(this.perm), [dim, dim]));
  }

  forward(x: Tensor): Forward {
    const rows = checkRows(this.kind, x, this.dim);
    return { y: matmul(x, this.p), logDet: zeroLogDet(rows) };
  }

  inverse(y: Tensor): Inverse {
    const rows = checkRows(this.kind, y, this.dim);
    return { x: matmul(y, this.p, { transB: true }), logDet: zeroLogDet(rows) };
  }

  dispose(): void {
    this.p.dispose();
  }
}

export class LULinear implements Bijection {
  readonly kind = 'lu-linear';
  readonly contextDim = 0;
  private readonly lower: string;
  private readonly upper: string;
  private readonly logDiag: string;
  private readonly consts: { p: Tensor; sign: Tensor; maskL: Tensor; maskU: Tensor; eye: Tensor };

  constructor(private readonly store: ParamStore, prefix: string, readonly dim: number, rng: Rng) {
    const n = dim;
    const { perm, l, u } = luDecompose(randomOrthogonal(n, rng), n);
    const lo = new Float32Array(n * n), up = new Float32Array(n * n), ld = new Float32Array(n), sign = new Float32Array(n);
    const maskL = new Float32Array(n * n), maskU = new Float32Array(n * n), eye = new Float32Array(n * n);
    for (let i = 0; i < n; i++) {
      const d = u[i * n + i]!;
      sign[i] = d < 0 ? -1 : 1;
      ld[i] = Math.log(Math.abs(d));
      eye[i * n + i] = 1;
      for (let j = 0; j < n; j++) {
        if (j < i) (lo[i * n + j] = l[i * n + j]!), (maskL[i * n + j] = 1);
        if (j > i) (up[i * n + j] = u[i * n + j]!), (maskU[i * n + j] = 1);
      }
    }
    this.lower = store.add(`${prefix}.lower`, [n, n], lo);
    this.upper = store.add(`${prefix}.upper`, [n, n], up);
    this.logDiag = store.add(`${prefix}.log_diag`, [n], ld);
    this.consts = {
      p: keep(tensor(permutationMatrix(perm), [n, n])),
      sign: keep(tensor(sign)),
      maskL: keep(tensor(maskL, [n, n])),
      maskU: keep(tensor(maskU, [n, n])),
      eye: keep(tensor(eye, [n, n])),
    };
  }

  /** W = P·L·U′ assembled from the parameters (on the tape). */
  weight(): Tensor {
    const c = this.consts;
    const l = add(mul(this.store.get(this.lower), c.maskL), c.eye);
    const diag = mul(c.eye, mul(exp(this.store.get(this.logDiag)), c.sign));
    const u = add(mul(this.store.get(this.upper), c.maskU), diag);
    return matmul(c.p, matmul(l, u));
  }

  forward(x: Tensor): Forward {
    const rows = checkRows(this.kind, x, this.dim);
    return { y: matmul(x, this.weight()), logDet: perRow(sum(this.store.get(this.logDiag)), rows) };
  }

  inverse(y: Tensor): Inverse {
    const rows = checkRows(this.kind, y, this.dim);
    return { x: matmul(y, inverse(this.weight())), logDet: perRow(neg(sum(this.store.get(this.logDiag))), rows) };
  }

  dispose(): void {
    for (const t of Object.values(this.consts)) t.dispose();
  }
}

export class DenseLinear implements Bijection {
  readonly kind = 'dense-linear';
  readonly contextDim = 0;
  private readonly w: string;

  constructor(private readonly store: ParamStore, prefix: string, readonly dim: number, rng: Rng) {
    this.w = store.add(`${prefix}.weight`, [dim, dim], Float32Array.from(randomOrthogonal(dim, rng)));
  }

  forward(x: Tensor): Forward {
    const rows = checkRows(this.kind, x, this.dim);
    const w = this.store.get(this.w);
    return { y: matmul(x, w), logDet: perRow(logdet(w), rows) };
  }

  inverse(y: Tensor): Inverse {
    const rows = checkRows(this.kind, y, this.dim);
    const w = this.store.get(this.w);
    return { x: matmul(y, inverse(w)), logDet: perRow(neg(logdet(w)), rows) };
  }

  dispose(): void {}
}
