/**
 * Small dense linear algebra for flows.
 *
 * `inverse(W)`: W⁻¹ of a square matrix, differentiable through the tape without a dedicated
 * primitive. The starting point X₀ = W⁻¹ comes from the LU kernel of the `logdet` primitive
 * (kernels/logdet.ts, mode `inverseT`), run OUTSIDE the tape (a constant); one Newton–Schulz step
 * X₁ = 2X₀ − X₀ W X₀ is then taken with ops on the tape. Its value squares X₀'s residual
 * (I − W X₁ = (I − W X₀)²), and its derivative at X₀ = W⁻¹ is dX₁ = −X₀ dW X₀ = −W⁻¹ dW W⁻¹,
 * exactly the derivative of the inverse.
 *
 * CPU helpers (float64): random orthogonal matrices and LU with partial pivoting, for initialising
 * linear layers.
 */
import { affine, matmul, sub, transpose, type Tensor } from '../engine';
import { logdetGradForward } from '../engine/prims';
import type { Rng } from '../engine/philox';
import { noGrad } from '../engine';

/** W⁻¹ for a [n, n] tensor (see the file comment). */
export function inverse(w: Tensor): Tensor {
  if (w.rank !== 2 || w.shape[0] !== w.shape[1]) throw new Error(`inverse: needs a square matrix, got [${w.shape.join(', ')}]`);
  const x0 = noGrad(() => {
    const invT = logdetGradForward(w, null);
    const x = transpose(invT);
    invT.dispose();
    return x;
  });
  return sub(affine(x0, 2), matmul(x0, matmul(w, x0)));
}

/** A random orthogonal n×n matrix (Gram–Schmidt on a Gaussian matrix), row-major float64. */
export function randomOrthogonal(n: number, rng: Rng): Float64Array {
  for (;;) {
    const q = new Float64Array(n * n);
    for (let i = 0; i < n * n; i++) q[i] = rng.normal();
    let ok = true;
    // Orthonormalise the columns (twice for stability).
    for (let pass = 0; pass < 2 && ok; pass++) {
      for (let j = 0; j < n; j++) {
        for (let k = 0; k < j; k++) {
          let dot = 0;
          for (let i = 0; i < n; i++) dot += q[i * n + j]! * q[i * n + k]!;
          for (let i = 0; i < n; i++) q[i * n + j]! -= dot * q[i * n + k]!;
        }
        let norm = 0;
        for (let i = 0; i < n; i++) norm += q[i * n + j]! ** 2;
        norm = Math.sqrt(norm);
        if (norm < 1e-8) {
          ok = false;
          break;
        }
        for (let i = 0; i < n; i++) q[i * n + j]! /= norm;
      }
    }
    if (ok) return q;
  }
}

/** A = P·L·U with partial pivoting: perm[i] = the row of A that row i of L·U reproduces. */
export function luDecompose(a: Float64Array, n: number): { perm: number[]; l: Float64Array; u: Float64Array } {
  const m = a.slice();
  const perm = [...Array(n).keys()];
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i * n + k]!) > Math.abs(m[p * n + k]!)) p = i;
    if (p !== k) {
      for (let j = 0; j < n; j++) [m[k * n + j], m[p * n + j]] = [m[p * n + j]!, m[k * n + j]!];
      [perm[k], perm[p]] = [perm[p]!, perm[k]!];
    }
    for (let i = k + 1; i < n; i++) {
      const f = m[i * n + k]! / m[k * n + k]!;
      m[i * n + k] = f;
      for (let j = k + 1; j < n; j++) m[i * n + j]! -= f * m[k * n + j]!;
    }
  }
  const l = new Float64Array(n * n), u = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (j < i) l[i * n + j] = m[i * n + j]!;
      else u[i * n + j] = m[i * n + j]!;
      if (i === j) l[i * n + j] = 1;
    }
  return { perm, l, u };
}
