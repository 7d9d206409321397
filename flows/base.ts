/**
 * Base distributions: the standard normal N(0, I) and a diagonal normal N(μ, diag σ²) with learned
 * μ and log σ. log-densities are per row ([B]); samples come from the GPU Philox stream.
 */
import { add, affine, exp, mul, square, sub, sum, type GpuRng, type Tensor } from '../engine';
import { checkRows } from './bijection';
import type { ParamStore } from './params';

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

export interface BaseDistribution {
  readonly kind: string;
  readonly dim: number;
  logProb(z: Tensor): Tensor;
  sample(n: number, rng: GpuRng): Tensor;
  /** log p of its own samples in the same pass (sampleAndLogProb). */
  sampleAndLogProb(n: number, rng: GpuRng): { z: Tensor; logProb: Tensor };
}

export class StandardNormal implements BaseDistribution {
  readonly kind = 'standard-normal';
  constructor(readonly dim: number) {}

  logProb(z: Tensor): Tensor {
    checkRows(this.kind, z, this.dim);
    return affine(sum(square(z), 1), -0.5, -this.dim * HALF_LOG_2PI);
  }

  sample(n: number, rng: GpuRng): Tensor {
    return rng.normal([n, this.dim]);
  }

  sampleAndLogProb(n: number, rng: GpuRng): { z: Tensor; logProb: Tensor } {
    const z = this.sample(n, rng);
    return { z, logProb: this.logProb(z) };
  }
}

export class DiagNormal implements BaseDistribution {
  readonly kind = 'diag-normal';
  private readonly mean: string;
  private readonly logStd: string;

  constructor(private readonly store: ParamStore, prefix: string, readonly dim: number) {
    this.mean = store.add(`${prefix}.mean`, [dim], new Float32Array(dim));
    this.logStd = store.add(`${prefix}.log_std`, [dim], new Float32Array(dim));
  }

  logProb(z: Tensor): Tensor {
    checkRows(this.kind, z, this.dim);
    const ls = this.store.get(this.logStd);
    const e = mul(sub(z, this.store.get(this.mean)), exp(affine(ls, -1)));
    return sub(affine(sum(square(e), 1), -0.5, -this.dim * HALF_LOG_2PI), sum(ls));
  }

  sample(n: number, rng: GpuRng): Tensor {
    return add(mul(rng.normal([n, this.dim]), exp(this.store.get(this.logStd))), this.store.get(this.mean));
  }

  sampleAndLogProb(n: number, rng: GpuRng): { z: Tensor; logProb: Tensor } {
    const eps = rng.normal([n, this.dim]);
    const ls = this.store.get(this.logStd);
    const z = add(mul(eps, exp(ls)), this.store.get(this.mean));
    return { z, logProb: sub(affine(sum(square(eps), 1), -0.5, -this.dim * HALF_LOG_2PI), sum(ls)) };
  }
}
