/**
 * Fréchet distance between two sets of feature vectors, each summarised by its mean and covariance
 * (the formula of FID, Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule…"):
 *
 *   d² = ‖μa − μb‖² + tr Σa + tr Σb − 2 tr (Σa^½ Σb Σa^½)^½
 *
 * (tr (Σa Σb)^½ equals tr (Σa^½ Σb Σa^½)^½, and the latter is a symmetric PSD matrix, so both roots
 * come from symmetric eigendecompositions in float64; tiny negative eigenvalues from rounding are
 * clipped to 0.) wgflow computes it in the penultimate features of a classifier it trained itself, so
 * the number is an FID-style score for comparing wgflow's own models, not comparable to Inception FID.
 */
import { symmetricEigen } from '../datasets/pca';

export interface GaussianStats {
  dim: number;
  n: number;
  mean: Float64Array;
  /** Sample covariance (divided by n − 1), row-major dim × dim. */
  cov: Float64Array;
}

/** Mean and covariance of n rows of dimension dim (row-major), in float64. */
export function gaussianStats(x: ArrayLike<number>, n: number, dim: number): GaussianStats {
  if (!Number.isInteger(n) || n < 2 || x.length !== n * dim) throw new Error(`gaussianStats: ${x.length} values are not n ≥ 2 rows of ${dim}`);
  const mean = new Float64Array(dim);
  for (let r = 0; r < n; r++) for (let j = 0; j < dim; j++) mean[j]! += x[r * dim + j]!;
  for (let j = 0; j < dim; j++) mean[j]! /= n;
  const cov = new Float64Array(dim * dim);
  const c = new Float64Array(dim);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < dim; j++) c[j] = x[r * dim + j]! - mean[j]!;
    for (let i = 0; i < dim; i++) for (let j = i; j < dim; j++) cov[i * dim + j]! += c[i]! * c[j]!;
  }
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const v = cov[i * dim + j]! / (n - 1);
      cov[i * dim + j] = v;
      cov[j * dim + i] = v;
    }
  }
  return { dim, n, mean, cov };
}

/** Symmetric PSD square root V·diag(√max(λ, 0))·Vᵀ. */
function sqrtPsd(a: Float64Array, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, n);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt(Math.max(values[k]!, 0));
    if (s === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = vectors[i * n + k]! * s;
      for (let j = 0; j < n; j++) out[i * n + j]! += vik * vectors[j * n + k]!;
    }
  }
  return out;
}

function matmulSquare(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j]! += aik * b[k * n + j]!;
    }
  }
  return out;
}

/**
 * The parts of d² that say where it comes from: the mean term ‖μa − μb‖² and the total variances
 * tr Σa, tr Σb (d² = mean + tr Σa + tr Σb − 2 tr (Σa^½ Σb Σa^½)^½). tr Σa / tr Σb below 1 says
 * the first set is less spread than the second (e.g. samples drawn toward class averages).
 */
export function frechetTerms(a: GaussianStats, b: GaussianStats): { mean: number; traceA: number; traceB: number } {
  if (a.dim !== b.dim) throw new Error(`frechetTerms: dimensions differ (${a.dim} vs ${b.dim})`);
  const n = a.dim;
  let mean = 0, traceA = 0, traceB = 0;
  for (let j = 0; j < n; j++) {
    mean += (a.mean[j]! - b.mean[j]!) ** 2;
    traceA += a.cov[j * n + j]!;
    traceB += b.cov[j * n + j]!;
  }
  return { mean, traceA, traceB };
}

/** The Fréchet distance d² between two Gaussians (the squared distance, as FID reports it). */
export function frechetDistance(a: GaussianStats, b: GaussianStats): number {
  if (a.dim !== b.dim) throw new Error(`frechetDistance: dimensions differ (${a.dim} vs ${b.dim})`);
  const n = a.dim;
  const { mean: d2, traceA, traceB } = frechetTerms(a, b);
  const tr = traceA + traceB;
  const ra = sqrtPsd(a.cov, n);
  const inner = matmulSquare(matmulSquare(ra, b.cov, n), ra, n);
  // Symmetrise against rounding before the eigendecomposition.
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) inner[i * n + j] = inner[j * n + i] = 0.5 * (inner[i * n + j]! + inner[j * n + i]!);
  const { values } = symmetricEigen(inner, n);
  let cross = 0;
  for (const v of values) cross += Math.sqrt(Math.max(v, 0));
  return Math.max(d2 + tr - 2 * cross, 0);
}
