/**
 * The `logdet` primitive (batched LU with partial pivoting, kernels/logdet.ts) against the float64
 * reference (engine/reference.ts logdet), value and gradient (W^{-T}), for random and
 * ill-conditioned matrices up to 64×64, single and batched; and flows/linalg.ts `inverse` (LU-kernel
 * start + one Newton step on the tape) against a float64 inverse, with its derivative.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { logdet, mul, sum, tensor, valueAndGrad } from '../engine';
import { Rng } from '../engine/philox';
import { logdet as refLogdet, Ref } from '../engine/reference';
import { inverse } from '../flows/linalg';
import { checkOp, expectClose, finiteDiff, gpu, rand } from './helpers';

beforeAll(async () => {
  await gpu();
});

/** Float64 inverse by Gauss–Jordan with partial pivoting. */
function inv64(a: Float64Array, n: number): Float64Array {
  const m = a.slice();
  const r = new Float64Array(n * n);
  for (let i = 0; i < n; i++) r[i * n + i] = 1;
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(m[i * n + k]!) > Math.abs(m[p * n + k]!)) p = i;
    for (let j = 0; j < n; j++) {
      [m[k * n + j], m[p * n + j]] = [m[p * n + j]!, m[k * n + j]!];
      [r[k * n + j], r[p * n + j]] = [r[p * n + j]!, r[k * n + j]!];
    }
    const d = m[k * n + k]!;
    for (let j = 0; j < n; j++) (m[k * n + j]! /= d), (r[k * n + j]! /= d);
    for (let i = 0; i < n; i++) {
      if (i === k) continue;
      const f = m[i * n + k]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) (m[i * n + j]! -= f * m[k * n + j]!), (r[i * n + j]! -= f * r[k * n + j]!);
    }
  }
  return r;
}

function transpose64(a: Float64Array, n: number): Float64Array {
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = a[i * n + j]!;
  return t;
}

function orthogonal(n: number, rng: Rng): Float64Array {
  const q = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) q[i] = rng.normal();
  for (let j = 0; j < n; j++) {
    for (let k = 0; k < j; k++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += q[i * n + j]! * q[i * n + k]!;
      for (let i = 0; i < n; i++) q[i * n + j]! -= dot * q[i * n + k]!;
    }
    let nr = 0;
    for (let i = 0; i < n; i++) nr += q[i * n + j]! ** 2;
    for (let i = 0; i < n; i++) q[i * n + j]! /= Math.sqrt(nr);
  }
  return q;
}

/** U·diag(s)·Vᵀ with singular values log-spaced from 1 down to 1/cond, rounded to float32. */
function illConditioned(n: number, cond: number, rng: Rng): Float64Array {
  const u = orthogonal(n, rng), v = orthogonal(n, rng);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = n === 1 ? 1 : Math.pow(cond, -k / (n - 1));
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j]! += u[i * n + k]! * s * v[j * n + k]!;
  }
  return out.map(Math.fround);
}

function relFrob(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

describe('logdet primitive vs float64 reference', () => {
  const rng = new Rng(42);

  test.each([
    ['2×2', [2, 2]],
    ['5×5', [5, 5]],
    ['batch 3 of 4×4', [3, 4, 4]],
  ])('%s: value and gradient (finite differences of the float64 reference)', async (_, shape) => {
    await checkOp({ name: `logdet ${shape}`, inputs: [rand(shape as number[], rng)], gpu: (w) => logdet(w), ref: (w) => refLogdet(w), gradTol: { atol: 5e-4, rtol: 2e-3 } }, rng);
  });

  test.each([1, 3, 8, 17, 33, 64])('random n = %i (batch of 2 n×n): log|det| and W^{-T}', async (n) => {
    const data = rand([2, n, n], rng).data;
    const w = tensor(Float32Array.from(data), [2, n, n]);
    const { value, grads } = valueAndGrad(() => sum(logdet(w)), [w]);
    const ref = refLogdet(new Ref([2, n, n], data)).data;
    expectClose(await logdet(w).data(), ref, { atol: 2e-5 * n, rtol: 1e-5 }, `logdet ${n}`);
    expect(await value.item()).toBeCloseTo(ref[0]! + ref[1]!, 3);
    const g = await grads[0]!.data();
    for (let b = 0; b < 2; b++) {
      const want = transpose64(inv64(data.slice(b * n * n, (b + 1) * n * n), n), n);
      expect(relFrob(g.slice(b * n * n, (b + 1) * n * n), want), `W^{-T} of matrix ${b}`).toBeLessThan(2e-4 * Math.max(1, n / 8));
    }
  });

  test.each([
    [8, 1e3],
    [16, 1e4],
    [64, 1e3],
    [64, 1e5],
    [64, 1e6],
  ])('ill-conditioned n = %i, cond %d: value within n·ε·√cond, gradient within ε·cond', async (n, cond) => {
    const data = illConditioned(n, cond, rng);
    const w = tensor(Float32Array.from(data), [n, n]);
    const ref = refLogdet(new Ref([n, n], data)).data[0]!;
    const got = await logdet(w).item();
    expect(logdet(w).shape).toEqual([]);
    // Typical-case bounds (float32 ε ≈ 6e-8); measured errors sit 3–20× below them.
    expect(Math.abs(got - ref), `log|det| ${got} vs ${ref}`).toBeLessThan(1e-4 + n * 6e-8 * Math.sqrt(cond));
    const { grads } = valueAndGrad(() => logdet(w), [w]);
    const want = transpose64(inv64(data, n), n);
    expect(relFrob(await grads[0]!.data(), want), 'W^{-T}').toBeLessThan(1e-5 + 6e-8 * cond);
    // Float64 finite differences of the reference at a few coordinates agree with the float64 W^{-T}
    // (the reference and the comparison are consistent).
    const coords = [0, n + 1, n * n - 1];
    const fd = finiteDiff((x) => refLogdet(new Ref([n, n], x)).data[0]!, data.slice(), coords, 1e-7);
    for (const c of coords) expect(Math.abs(fd[c]! - want[c]!)).toBeLessThan(1e-3 * (1 + Math.abs(want[c]!)));
  });

  test('pivoting: zero leading entry, permutation matrix, negative determinant', async () => {
    const cases: [number[], number][] = [
      [[0, 1, 1, 0], Math.log(1)],
      [[0, 2, 0, 0, 0, 3, 4, 0, 0], Math.log(24)],
      [[1e-7, 1, 1, 1], Math.log(Math.abs(1e-7 - 1))],
    ];
    for (const [m, want] of cases) {
      const n = Math.round(Math.sqrt(m.length));
      expect(await logdet(tensor(m, [n, n])).item()).toBeCloseTo(want, 5);
    }
  });

  test('gradient scales with the cotangent per matrix (batched)', async () => {
    const data = rand([3, 4, 4], rng).data;
    const w = tensor(Float32Array.from(data), [3, 4, 4]);
    const c = tensor([2, -1, 0.5]);
    const { grads } = valueAndGrad(() => sum(mul(logdet(w), c)), [w]);
    const g = await grads[0]!.data();
    [2, -1, 0.5].forEach((k, b) => {
      const want = transpose64(inv64(data.slice(b * 16, (b + 1) * 16), 4), 4).map((v) => v * k);
      expectClose(g.slice(b * 16, (b + 1) * 16), want, { atol: 1e-4, rtol: 1e-3 }, `matrix ${b}`);
    });
  });

  test('bad shapes are clear errors', () => {
    expect(() => logdet(tensor(new Float32Array(6), [2, 3]))).toThrow(/square matrix/);
    expect(() => logdet(tensor(new Float32Array(8), [2, 2, 2, 1]))).toThrow(/square matrix/);
    expect(() => logdet(tensor(new Float32Array(4), [4]))).toThrow(/square matrix/);
  });
});

describe('flows/linalg inverse (LU start + Newton step on the tape)', () => {
  test.each([
    [3, 10],
    [16, 1e3],
  ])('n = %i, cond %d: value and derivative −W⁻¹ dW W⁻¹', async (n, cond) => {
    const rng = new Rng(n);
    const data = illConditioned(n, cond, rng);
    const w = tensor(Float32Array.from(data), [n, n]);
    const want = inv64(data, n);
    expect(relFrob(await inverse(w).data(), want)).toBeLessThan(1e-6 * cond);
    // d/dW Σ (C ⊙ W⁻¹) = −W⁻ᵀ C W⁻ᵀ.
    const cm = rand([n, n], rng).data;
    const ct = tensor(Float32Array.from(cm), [n, n]);
    const { grads } = valueAndGrad(() => sum(mul(inverse(w), ct)), [w]);
    const it = transpose64(want, n);
    const expected = new Float64Array(n * n);
    const tmp = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) tmp[i * n + j]! += it[i * n + k]! * cm[k * n + j]!;
    for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) expected[i * n + j]! -= tmp[i * n + k]! * it[k * n + j]!;
    expect(relFrob(await grads[0]!.data(), expected)).toBeLessThan(2e-6 * cond * cond ** 0.5 + 1e-4);
  });
});
