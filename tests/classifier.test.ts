/**
 * Issue 14 item 3 (groundwork): the classifier trained on the engine (cross-entropy against a
 * float64 reference and central differences, training on a fixture), and the Fréchet distance
 * against closed forms.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { ParamSet, Rng, tensor, valueAndGrad } from '../engine';
import { accuracy, classify, crossEntropy, trainClassifier } from '../evaluate/classifier';
import { frechetDistance, frechetTerms, gaussianStats } from '../evaluate/frechet';
import { finiteDiff, gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

/** Mean cross-entropy in float64. */
function ceRef(z: Float64Array, y: number[], C: number): number {
  let total = 0;
  y.forEach((label, i) => {
    const row = z.subarray(i * C, (i + 1) * C);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    total += lse - row[label]!;
  });
  return total / y.length;
}

describe('cross-entropy', () => {
  test.each([
    [1, 2],
    [7, 3],
    [13, 10],
  ])('B = %i, C = %i: value against float64, gradient against central differences', async (B, C) => {
    const rng = new Rng(B * 100 + C, 0);
    const z = Float64Array.from({ length: B * C }, () => 4 * rng.normal());
    const y = Array.from({ length: B }, () => rng.int(C));
    const onehot = new Float32Array(B * C);
    y.forEach((l, i) => (onehot[i * C + l] = 1));
    const ps = new ParamSet([{ name: 'z', shape: [B, C], init: Float32Array.from(z) }]);
    const oh = tensor(onehot, [B, C]);
    const { value, grads } = valueAndGrad(() => crossEntropy(ps.params[0]!, oh), ps.params);
    const zf = Float64Array.from(Float32Array.from(z));
    expect(Math.abs((await value.item()) - ceRef(zf, y, C))).toBeLessThan(1e-5);
    const g = await grads[0]!.data();
    const fd = finiteDiff((v) => ceRef(v, y, C), zf, Array.from({ length: B * C }, (_, i) => i));
    for (let i = 0; i < B * C; i++) expect(Math.abs(g[i]! - fd[i]!)).toBeLessThan(1e-5);
    value.dispose();
    grads[0]!.dispose();
    oh.dispose();
    ps.dispose();
  });
});

/** Three Gaussian blobs in 20-D, 1.5 apart per coordinate along random directions. */
function blobs(n: number, seed: number): { x: Float32Array; y: Uint8Array } {
  const rng = new Rng(seed, 7);
  const centers = new Rng(99, 1);
  const c = Array.from({ length: 3 }, () => Float64Array.from({ length: 20 }, () => 1.5 * centers.normal()));
  const x = new Float32Array(n * 20);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = rng.int(3);
    for (let j = 0; j < 20; j++) x[i * 20 + j] = c[y[i]!]![j]! + rng.normal();
  }
  return { x, y };
}

describe('classifier trained on the engine', () => {
  test('separates a 3-class fixture (≥ 95% held out), reproducibly, with features of the last hidden width', async () => {
    const train = blobs(600, 1);
    const held = blobs(300, 2);
    const cfg = { inputDim: 20, classes: 3, hidden: [32, 16], steps: 150, batch: 64, lr: 3e-3, seed: 5 };
    const losses: number[] = [];
    const model = await trainClassifier(train.x, train.y, cfg, { every: 50, onProgress: (p) => losses.push(p.loss) });
    expect(losses).toHaveLength(3);
    expect(losses[2]!).toBeLessThan(losses[0]!);
    const out = await classify(model, held.x, 300, 128);
    expect(out.featureDim).toBe(16);
    expect(out.features.length).toBe(300 * 16);
    expect(accuracy(out.labels, held.y)).toBeGreaterThanOrEqual(0.95);
    const again = await trainClassifier(train.x, train.y, cfg);
    expect(Array.from(await again.params.flat.data())).toEqual(Array.from(await model.params.flat.data()));
    model.dispose();
    again.dispose();
    await expect(trainClassifier(train.x, Uint8Array.from(train.y).fill(3, 0, 1), cfg)).rejects.toThrow(/label 3 of row 0 is not below 3/);
  });
});

describe('Fréchet distance', () => {
  const sample = (n: number, d: number, seed: number, f: (z: number, j: number) => number) => {
    const rng = new Rng(seed, 3);
    return Float32Array.from({ length: n * d }, (_, i) => f(rng.normal(), i % d));
  };

  test('is 0 between a set and itself', () => {
    const s = gaussianStats(sample(500, 6, 1, (z) => z), 500, 6);
    expect(frechetDistance(s, s)).toBeLessThan(1e-9);
  });

  test('matches the closed form for diagonal covariances: ‖Δμ‖² + Σ (σa − σb)²', () => {
    const a = gaussianStats(sample(4000, 3, 2, (z, j) => (j + 1) * z), 4000, 3);
    const b = gaussianStats(sample(4000, 3, 3, (z, j) => 2 + 0.5 * z), 4000, 3);
    // The closed form on the sample statistics themselves (off-diagonals are small but not 0: use
    // the full-matrix formula's diagonal case only where it holds, i.e. compare to stats made diagonal).
    const diag = (s: ReturnType<typeof gaussianStats>) => ({ ...s, cov: s.cov.map((v, i) => (i % (s.dim + 1) === 0 ? v : 0)) });
    const da = diag(a), db = diag(b);
    let want = 0;
    for (let j = 0; j < 3; j++) want += (da.mean[j]! - db.mean[j]!) ** 2 + (Math.sqrt(da.cov[j * 4]!) - Math.sqrt(db.cov[j * 4]!)) ** 2;
    expect(Math.abs(frechetDistance(da, db) - want)).toBeLessThan(1e-9);
    // Its parts: ‖Δμ‖² and the total variances, from the same statistics.
    const t = frechetTerms(da, db);
    expect(t.mean).toBeCloseTo([0, 1, 2].reduce((acc, j) => acc + (da.mean[j]! - db.mean[j]!) ** 2, 0), 12);
    expect(t.traceA).toBeCloseTo(da.cov[0]! + da.cov[4]! + da.cov[8]!, 12);
    expect(Math.abs(t.traceA - 14)).toBeLessThan(0.6); // 1 + 4 + 9
    expect(Math.abs(t.traceB - 0.75)).toBeLessThan(0.05); // 3 × 0.25
    // And the population value within sampling error: Δμ = (2,2,2), σa = 1,2,3, σb = 0.5.
    expect(Math.abs(frechetDistance(a, b) - (12 + 0.25 + 2.25 + 6.25))).toBeLessThan(0.6);
  });

  test('does not change when both sets are rotated', () => {
    const d = 4, n = 800;
    const xa = sample(n, d, 4, (z, j) => z * (1 + j));
    const xb = sample(n, d, 5, (z, j) => 1 + z);
    const th = 0.7, c = Math.cos(th), s = Math.sin(th);
    const rot = (x: Float32Array) => {
      const out = Float64Array.from(x);
      for (let r = 0; r < n; r++) {
        const u = x[r * d]!, v = x[r * d + 1]!;
        out[r * d] = c * u - s * v;
        out[r * d + 1] = s * u + c * v;
      }
      return out;
    };
    const before = frechetDistance(gaussianStats(xa, n, d), gaussianStats(xb, n, d));
    const after = frechetDistance(gaussianStats(rot(xa), n, d), gaussianStats(rot(xb), n, d));
    expect(Math.abs(before - after)).toBeLessThan(1e-8 * Math.max(1, before));
    expect(() => frechetDistance(gaussianStats(xa, n, d), gaussianStats(xa.subarray(0, 2 * n), n, 2))).toThrow(/dimensions differ/);
  });
});
