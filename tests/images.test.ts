/**
 * Issue 14 items 1–2 (groundwork): the IDX reader on fixtures made here (never the real files),
 * the Fashion-MNIST loader's checks and scaling, and PCA against a float64 Jacobi reference.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, test } from 'vitest';
import { FASHION_MNIST_DIR, imageSetFrom, loadFashionMnist, pixelToValue, valueToPixel } from '../datasets/fashion-mnist';
import { IDX_MAX_BYTES, encodeIdx, parseIdx, readIdxFile } from '../datasets/idx';
import { fitPca, pcaDecode, pcaEncode, symmetricEigen } from '../datasets/pca';
import { Rng } from '../engine/philox';

const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-images-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('IDX reader', () => {
  test('reads uint8 and float32 files, gzipped or not', () => {
    const img = encodeIdx('uint8', [3, 2, 2], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 255]);
    const a = parseIdx(img);
    expect(a).toMatchObject({ type: 'uint8', shape: [3, 2, 2] });
    expect(Array.from(a.values)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 250, 255]);
    const f = parseIdx(encodeIdx('float32', [2], [1.5, -3]));
    expect(Array.from(f.values)).toEqual([1.5, -3]);
    const p = path.join(tmp, 'x.gz');
    writeFileSync(p, gzipSync(img));
    expect(Array.from(readIdxFile(p).bytes!)).toEqual(Array.from(a.bytes!));
  });

  test.each([
    ['too short', new Uint8Array([0, 0]), /too short/],
    ['bad magic', new Uint8Array([1, 2, 8, 1, 0, 0, 0, 1, 7]), /not an IDX file/],
    ['gzip passed as raw', new Uint8Array([0x1f, 0x8b, 8, 0]), /gzip-compressed/],
    ['unknown type', new Uint8Array([0, 0, 0x0a, 1, 0, 0, 0, 1, 7]), /unknown IDX element type 0x0a/],
    ['zero dimensions', new Uint8Array([0, 0, 8, 0]), /0 dimensions; accepted: 1 to 4/],
    ['five dimensions', new Uint8Array([0, 0, 8, 5]), /5 dimensions/],
    ['truncated header', new Uint8Array([0, 0, 8, 2, 0, 0, 0, 1]), /truncated header/],
    ['a size of 0', new Uint8Array([0, 0, 8, 1, 0, 0, 0, 0]), /size 0 is 0/],
    ['truncated data', encodeIdx('uint8', [4], [1, 2, 3, 4]).subarray(0, 10), /truncated: sizes \[4\] of uint8 need 12 bytes, the file has 10/],
    ['trailing bytes', Uint8Array.from([...encodeIdx('uint8', [1], [1]), 9]), /trailing bytes/],
    ['huge sizes', new Uint8Array([0, 0, 0x0e, 3, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 2]), new RegExp(`at most ${IDX_MAX_BYTES}`)],
  ])('%s → a clear error', (_what, bytes, re) => {
    expect(() => parseIdx(bytes, 'f.idx')).toThrow(re);
  });

  test('a corrupt gzip and a missing file are clear errors', () => {
    const p = path.join(tmp, 'bad.gz');
    writeFileSync(p, Uint8Array.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));
    expect(() => readIdxFile(p)).toThrow(/not a valid gzip file/);
    expect(() => readIdxFile(path.join(tmp, 'nope.gz'))).toThrow(/no such file/);
  });
});

describe('Fashion-MNIST loader', () => {
  const imgs = encodeIdx('uint8', [3, 28, 28], Array.from({ length: 3 * 784 }, (_, i) => (i < 784 ? 0 : i < 2 * 784 ? 255 : 51)));
  const labs = encodeIdx('uint8', [3], [7, 9, 7]);

  test('scales pixels to [-1, 1] and keeps the classes asked for', () => {
    const dir = mkdtempSync(path.join(tmp, 'fm-'));
    writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(imgs));
    writeFileSync(path.join(dir, 'train-labels-idx1-ubyte.gz'), gzipSync(labs));
    const all = loadFashionMnist({ dir });
    expect([all.n, all.dim]).toEqual([3, 784]);
    expect([all.images[0], all.images[784], all.images[2 * 784]]).toEqual([-1, 1, Math.fround(51 / 127.5 - 1)]);
    const sevens = loadFashionMnist({ dir, classes: [7] });
    expect(Array.from(sevens.labels)).toEqual([7, 7]);
    expect(sevens.images[784]).toBeCloseTo(pixelToValue(51), 6);
    expect([0, 51, 255].map((p) => valueToPixel(pixelToValue(p)))).toEqual([0, 51, 255]);
    expect(() => loadFashionMnist({ dir, classes: [10] })).toThrow(/classes: 10 is not a class 0–9/);
    expect(() => loadFashionMnist({ dir, split: 'test' })).toThrow(/t10k-images-idx3-ubyte.gz: no such file/);
  });

  test('refuses mismatched or malformed pairs', () => {
    expect(() => imageSetFrom(parseIdx(imgs), parseIdx(encodeIdx('uint8', [2], [1, 2])))).toThrow(/3 images but 2 labels/);
    expect(() => imageSetFrom(parseIdx(imgs), parseIdx(encodeIdx('uint8', [3], [1, 12, 2])))).toThrow(/label 12 of image 1/);
    expect(() => imageSetFrom(parseIdx(encodeIdx('uint8', [1, 4, 4], new Array(16).fill(0))), parseIdx(encodeIdx('uint8', [1], [1])))).toThrow(/4×4, expected 28×28/);
    expect(() => imageSetFrom(parseIdx(labs), parseIdx(labs))).toThrow(/images must be uint8 \[n, rows, cols\]/);
  });

  test.skipIf(!existsSync(FASHION_MNIST_DIR))('reads the installed test split (10 000 images, 1 000 per class)', () => {
    const t = loadFashionMnist({ split: 'test' });
    expect([t.n, t.dim]).toEqual([10_000, 784]);
    const counts = new Array(10).fill(0);
    for (const l of t.labels) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(1000));
  });
});

/** Cyclic Jacobi eigenvalues of a symmetric matrix, float64: the slow, obviously right reference. */
function jacobiEigenvalues(a: Float64Array, n: number): number[] {
  const m = Float64Array.from(a);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * n + q]! - m[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = m[k * n + p]!, akq = m[k * n + q]!;
          m[k * n + p] = c * akp - s * akq;
          m[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = m[p * n + k]!, aqk = m[q * n + k]!;
          m[p * n + k] = c * apk - s * aqk;
          m[q * n + k] = s * apk + c * aqk;
        }
      }
    }
  }
  return Array.from({ length: n }, (_, i) => m[i * n + i]!).sort((x, y) => x - y);
}

function randomSymmetric(n: number, rng: Rng): Float64Array {
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng.normal();
  return a;
}

describe('PCA', () => {
  test.each([1, 2, 3, 7, 13, 40])('symmetricEigen of a random symmetric matrix, n = %i: Jacobi eigenvalues, A·v = λ·v, orthonormal V', (n) => {
    const a = randomSymmetric(n, new Rng(n, 1));
    const { values, vectors } = symmetricEigen(a, n);
    const ref = jacobiEigenvalues(a, n);
    for (let i = 0; i < n; i++) expect(Math.abs(values[i]! - ref[i]!)).toBeLessThan(1e-10);
    for (let c = 0; c < n; c++) {
      for (let i = 0; i < n; i++) {
        let av = 0;
        for (let k = 0; k < n; k++) av += a[i * n + k]! * vectors[k * n + c]!;
        expect(Math.abs(av - values[c]! * vectors[i * n + c]!)).toBeLessThan(1e-10);
      }
      for (let c2 = 0; c2 < n; c2++) {
        let dot = 0;
        for (let k = 0; k < n; k++) dot += vectors[k * n + c]! * vectors[k * n + c2]!;
        expect(Math.abs(dot - (c === c2 ? 1 : 0))).toBeLessThan(1e-10);
      }
    }
  });

  test('handles repeated and zero eigenvalues (a rank-1 matrix, the identity)', () => {
    const n = 5;
    const u = [1, 2, 3, 4, 5];
    const r1 = new Float64Array(n * n).map((_, i) => u[Math.floor(i / n)]! * u[i % n]!);
    expect(Array.from(symmetricEigen(r1, n).values).map((v) => Math.abs(+v.toFixed(9)))).toEqual([0, 0, 0, 0, 55]);
    const eye = new Float64Array(n * n).map((_, i) => (i % (n + 1) === 0 ? 1 : 0));
    expect(Array.from(symmetricEigen(eye, n).values)).toEqual([1, 1, 1, 1, 1]);
  });

  test('fitPca finds planted directions, explains the right variance, and round-trips what it keeps', () => {
    // 2 000 points in 6-D: variances 9, 4, 1 along three orthonormal directions, 0.01 noise on all.
    const rng = new Rng(3, 0);
    const dim = 6, n = 2000;
    const q = symmetricEigen(randomSymmetric(dim, rng), dim).vectors; // columns: an orthonormal basis
    const sd = [3, 2, 1];
    const x = new Float64Array(n * dim);
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < dim; j++) x[r * dim + j] = 5 + 0.1 * rng.normal();
      for (let c = 0; c < 3; c++) {
        const z = sd[c]! * rng.normal();
        for (let j = 0; j < dim; j++) x[r * dim + j]! += z * q[j * dim + c]!;
      }
    }
    const p = fitPca(x, n, dim, 3);
    for (let c = 0; c < 3; c++) {
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += p.components[c * dim + j]! * q[j * dim + c]!;
      expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(0.01);
      expect(p.variances[c]! / sd[c]! ** 2).toBeGreaterThan(0.9);
      expect(p.variances[c]! / sd[c]! ** 2).toBeLessThan(1.1);
    }
    expect(p.explained).toBeGreaterThan(0.99);
    for (const m of p.mean) expect(Math.abs(m - 5)).toBeLessThan(0.2);
    // Encode → decode is the projection: decoding z and encoding again gives z back.
    const z = pcaEncode(p, x.subarray(0, 10 * dim), 10);
    const back = pcaEncode(p, pcaDecode(p, z, 10), 10);
    for (let i = 0; i < z.length; i++) expect(Math.abs(back[i]! - z[i]!)).toBeLessThan(1e-4);
    // All components: explained is 1 and the reconstruction is exact (float32).
    const full = fitPca(x, n, dim, dim);
    expect(full.explained).toBeCloseTo(1, 12);
    const rec = pcaDecode(full, pcaEncode(full, x.subarray(0, 5 * dim), 5), 5);
    for (let i = 0; i < rec.length; i++) expect(Math.abs(rec[i]! - x[i]!)).toBeLessThan(1e-4);
    expect(() => fitPca(x, n, dim, 7)).toThrow(/k must be an integer in 1..6/);
  });
});
