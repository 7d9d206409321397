/**
 * Principal component analysis in float64 on the CPU, for training flows in a latent space of
 * image data (Fashion-MNIST's 784 pixels → 32–128 components).
 *
 * Why the CPU and a full eigendecomposition: the covariance of d = 784 pixels is one 784×784
 * symmetric matrix, computed once per dataset; its full spectrum (Householder tridiagonalisation then
 * the implicit QL algorithm, as EISPACK's tred2/tql2, O(d³) ≈ 1 GFLOP) takes about a second and gives
 * the exact explained variance of every k, where an iterative top-k method would need a tolerance.
 * The covariance is accumulated from at most `maxRows` rows (default 10 000: the sample covariance of
 * 10 000 images already fixes the leading components), in float64.
 */

export interface Pca {
  /** Input dimension d. */
  dim: number;
  /** Components kept, k. */
  k: number;
  /** Per-feature mean, length d. */
  mean: Float64Array;
  /** Principal directions as rows (k × d, orthonormal), by decreasing variance. */
  components: Float64Array;
  /** Variance along each kept component (eigenvalues of the covariance), length k. */
  variances: Float64Array;
  /** Sum of all d eigenvalues (total variance). */
  totalVariance: number;
  /** Fraction of the total variance the k components explain. */
  explained: number;
}

/**
 * Eigenvalues (ascending) and eigenvectors (columns of V, row-major n × n) of the symmetric n × n
 * matrix `a` (row-major; not modified). Householder reduction to tridiagonal form, then QL with
 * implicit shifts (the symmetric path of EISPACK's tred2/tql2).
 */
export function symmetricEigen(a: ArrayLike<number>, n: number): { values: Float64Array; vectors: Float64Array } {
  if (a.length !== n * n) throw new Error(`symmetricEigen: ${a.length} values are not a ${n}×${n} matrix`);
  const V = Float64Array.from(a);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const at = (i: number, j: number) => V[i * n + j]!;
  const set = (i: number, j: number, x: number) => {
    V[i * n + j] = x;
  };
  for (let j = 0; j < n; j++) d[j] = at(n - 1, j);

  // Householder tridiagonalisation.
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = at(i - 1, j);
        set(i, j, 0);
        set(j, i, 0);
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k]! /= scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        set(j, i, f);
        g = e[j]! + at(j, j) * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += at(k, j) * d[k]!;
          e[k]! += at(k, j) * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j]! /= h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j]! -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        for (let k = j; k <= i - 1; k++) set(k, j, at(k, j) - (f * e[k]! + g * d[k]!));
        d[j] = at(i - 1, j);
        set(i, j, 0);
      }
    }
    d[i] = h;
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    set(n - 1, i, at(i, i));
    set(i, i, 1);
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = at(k, i + 1) / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += at(k, i + 1) * at(k, j);
        for (let k = 0; k <= i; k++) set(k, j, at(k, j) - g * d[k]!);
      }
    }
    for (let k = 0; k <= i; k++) set(k, i + 1, 0);
  }
  for (let j = 0; j < n; j++) {
    d[j] = at(n - 1, j);
    set(n - 1, j, 0);
  }
  set(n - 1, n - 1, 1);
  e[0] = 0;

  // Implicit QL on the tridiagonal matrix.
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n && Math.abs(e[m]!) > eps * tst1) m++;
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new Error('symmetricEigen: QL did not converge');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i]! -= h;
        f += h;
        p = d[m]!;
        let c = 1, c2 = 1, c3 = 1;
        const el1 = e[l + 1]!;
        let s = 0, s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          for (let k = 0; k < n; k++) {
            h = at(k, i + 1);
            set(k, i + 1, s * at(k, i) + c * h);
            set(k, i, c * at(k, i) - s * h);
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > eps * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
  // Sort ascending, moving eigenvector columns along.
  for (let i = 0; i < n - 1; i++) {
    let k = i;
    let p = d[i]!;
    for (let j = i + 1; j < n; j++) if (d[j]! < p) p = d[(k = j)]!;
    if (k !== i) {
      d[k] = d[i]!;
      d[i] = p;
      for (let j = 0; j < n; j++) {
        const t = at(j, i);
        set(j, i, at(j, k));
        set(j, k, t);
      }
    }
  }
  return { values: d, vectors: V };
}

/** Fits a k-component PCA to `n` rows of dimension `dim` (row-major), from at most `maxRows` evenly spaced rows. */
export function fitPca(x: ArrayLike<number>, n: number, dim: number, k: number, opts: { maxRows?: number } = {}): Pca {
  if (!Number.isInteger(n) || n < 2 || x.length !== n * dim) throw new Error(`fitPca: ${x.length} values are not ${n} ≥ 2 rows of ${dim}`);
  if (!Number.isInteger(k) || k < 1 || k > dim) throw new Error(`fitPca: k must be an integer in 1..${dim}, got ${k}`);
  const rows = Math.min(n, opts.maxRows ?? 10_000);
  const pick = (r: number) => Math.floor((r * n) / rows);
  const mean = new Float64Array(dim);
  for (let r = 0; r < rows; r++) for (let j = 0, o = pick(r) * dim; j < dim; j++) mean[j]! += x[o + j]!;
  for (let j = 0; j < dim; j++) mean[j]! /= rows;
  // Upper triangle of the scatter matrix, row by row (a centred row outer product each).
  const cov = new Float64Array(dim * dim);
  const c = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const o = pick(r) * dim;
    for (let j = 0; j < dim; j++) c[j] = x[o + j]! - mean[j]!;
    for (let i = 0; i < dim; i++) {
      const ci = c[i]!;
      if (ci === 0) continue;
      const base = i * dim;
      for (let j = i; j < dim; j++) cov[base + j]! += ci * c[j]!;
    }
  }
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const v = cov[i * dim + j]! / (rows - 1);
      cov[i * dim + j] = v;
      cov[j * dim + i] = v;
    }
  }
  const { values, vectors } = symmetricEigen(cov, dim);
  let total = 0;
  for (const v of values) total += Math.max(v, 0);
  const components = new Float64Array(k * dim);
  const variances = new Float64Array(k);
  let kept = 0;
  for (let c2 = 0; c2 < k; c2++) {
    const col = dim - 1 - c2; // descending
    variances[c2] = Math.max(values[col]!, 0);
    kept += variances[c2]!;
    for (let j = 0; j < dim; j++) components[c2 * dim + j] = vectors[j * dim + col]!;
  }
  return { dim, k, mean, components, variances, totalVariance: total, explained: total > 0 ? kept / total : 1 };
}

/** Rows of x (n × dim) → their k coordinates (n × k, float32): (x − mean)·componentsᵀ. */
export function pcaEncode(p: Pca, x: ArrayLike<number>, n: number): Float32Array {
  if (x.length !== n * p.dim) throw new Error(`pcaEncode: ${x.length} values are not ${n} rows of ${p.dim}`);
  const out = new Float32Array(n * p.k);
  const c = new Float64Array(p.dim);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < p.dim; j++) c[j] = x[r * p.dim + j]! - p.mean[j]!;
    for (let q = 0; q < p.k; q++) {
      let s = 0;
      for (let j = 0, o = q * p.dim; j < p.dim; j++) s += c[j]! * p.components[o + j]!;
      out[r * p.k + q] = s;
    }
  }
  return out;
}

/** Latent rows z (n × k) → points in the input space (n × dim, float32): mean + z·components. */
export function pcaDecode(p: Pca, z: ArrayLike<number>, n: number): Float32Array {
  if (z.length !== n * p.k) throw new Error(`pcaDecode: ${z.length} values are not ${n} rows of ${p.k}`);
  const out = new Float32Array(n * p.dim);
  const row = new Float64Array(p.dim);
  for (let r = 0; r < n; r++) {
    row.set(p.mean);
    for (let q = 0; q < p.k; q++) {
      const zq = z[r * p.k + q]!;
      for (let j = 0, o = q * p.dim; j < p.dim; j++) row[j]! += zq * p.components[o + j]!;
    }
    out.set(row, r * p.dim);
  }
  return out;
}
