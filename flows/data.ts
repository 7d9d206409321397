/**
 * The data of a flow run (flows/train.ts): a named 2-D toy set (SPEC §2; a fresh batch per step from
 * a Philox stream keyed by (seed, step), a fixed held-out test set from its own stream) or a user
 * matrix of any dimension, its rows shuffled by the seed, split into train/test (testFraction) and
 * standardised per coordinate with the training mean and std: the flow models standardised data, and
 * NLL_x = NLL_standardised + Σ log std converts back to the data's units. Conditional runs carry each
 * row's context (a label's one-hot or the given context row) beside it.
 */
import { Rng } from '../engine/philox';
import type { Condition, DataMatrix, TrainConfig } from '../train/contract';
import { conditionCols } from '../train/options';
import { oneHot } from '../cfm/conditional';
import { getDataset, type Sampler } from '../datasets/toy2d';

/** Stream numbers of the Philox generators (seeded by cfg.seed). */
export const STREAM = { split: 0x5e11, test: 0x7e57, init: 0x1417, target: 0x7a6e, batch: 0x40000000 };
export const GPU_SAMPLE_SEED_OFFSET = 0x5a3;

export interface Standardize {
  mean: number[];
  std: number[];
}

/** Checks a data matrix: shape consistency, at least `minRows` rows, finite values. */
export function validateData(m: DataMatrix, what = 'data', minRows = 1): void {
  if (!m || !(m.data instanceof Float32Array)) throw new Error(`${what}: expected a float32 matrix {data, n, dim}`);
  if (!Number.isInteger(m.dim) || m.dim < 1) throw new Error(`${what}: dimension must be a positive integer, got ${m.dim}`);
  if (!Number.isInteger(m.n) || m.n < 0 || m.data.length !== m.n * m.dim) throw new Error(`${what}: ${m.data.length} values do not make ${m.n} rows of ${m.dim}`);
  if (m.n === 0) throw new Error(`${what} is empty (0 rows)`);
  if (m.n < minRows) throw new Error(`${what} has ${m.n} row${m.n === 1 ? '' : 's'}; at least ${minRows} are needed (a training and a held-out test part)`);
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i]!)) {
      throw new Error(`${what}: row ${Math.floor(i / m.dim) + 1}, column ${(i % m.dim) + 1} is ${m.data[i]} (non-finite values are not accepted)`);
    }
  }
}

/** A run's data, prepared: batches by step, the held-out test rows, the rows of the data-dependent initialisation. */
export interface Prepared {
  dim: number;
  standardize: Standardize | null;
  /** Training batch for a step (standardised). */
  batchAt(step: number, size: number): Float32Array;
  /** A conditional run's context rows of the same batch (the same draws), else null. */
  contextAt(step: number, size: number): Float32Array | null;
  /** Context rows of initRows() and of the test rows; the test rows' labels (conditional on labels). */
  initContext: Float32Array | null;
  testContext: Float32Array | null;
  testLabels: Int32Array | null;
  /** Rows for the data-dependent initialisation (standardised). */
  initRows(): Float32Array;
  /** Held-out test rows (standardised). */
  test: DataMatrix;
  /** Target rows in original units for pictures and W2. */
  targetSamples(n: number): DataMatrix;
}

export function standardizeInPlace(d: Float32Array, dim: number, s: Standardize): void {
  for (let i = 0; i < d.length; i++) d[i] = (d[i]! - s.mean[i % dim]!) / s.std[i % dim]!;
}

export function unstandardizeInPlace(d: Float32Array, dim: number, s: Standardize | null): void {
  if (!s) return;
  for (let i = 0; i < d.length; i++) d[i] = d[i]! * s.std[i % dim]! + s.mean[i % dim]!;
}

/** The first n held-out test rows in original units. */
export function testRawOf(d: Prepared, n: number): Float32Array {
  const out = d.test.data.slice(0, n * d.dim);
  unstandardizeInPlace(out, d.dim, d.standardize);
  return out;
}

/** Σ log std: the NLL offset between standardised and original units. */
export function logStdSum(s: Standardize | null): number {
  return s ? s.std.reduce((a, v) => a + Math.log(v), 0) : 0;
}

export function prepareData(cfg: TrainConfig, testSize: number, testFraction: number, cond: Condition | null = null): Prepared {
  if (cfg.data) {
    const m = cfg.data;
    validateData(m, 'training data', 2);
    const dim = m.dim;
    const perm = new Rng(cfg.seed, STREAM.split).permutation(m.n);
    const nTest = Math.min(m.n - 1, Math.max(1, Math.round(testFraction * m.n)));
    const nTrain = m.n - nTest;
    const rows = (idx: ArrayLike<number>, from: number, count: number) => {
      const out = new Float32Array(count * dim);
      for (let r = 0; r < count; r++) out.set(m.data.subarray(idx[from + r]! * dim, (idx[from + r]! + 1) * dim), r * dim);
      return out;
    };
    const train = rows(perm, 0, nTrain);
    const testRaw = rows(perm, nTrain, nTest);
    const meanV: number[] = [], stdV: number[] = [];
    for (let j = 0; j < dim; j++) {
      let s = 0;
      for (let i = 0; i < nTrain; i++) s += train[i * dim + j]!;
      const mu = s / nTrain;
      let v = 0;
      for (let i = 0; i < nTrain; i++) v += (train[i * dim + j]! - mu) ** 2;
      const sd = Math.sqrt(v / Math.max(1, nTrain - 1));
      meanV.push(mu);
      stdV.push(sd > 1e-12 && Number.isFinite(sd) ? sd : 1);
    }
    const st: Standardize = { mean: meanV, std: stdV };
    const trainStd = train.slice();
    standardizeInPlace(trainStd, dim, st);
    const testStd = testRaw.slice();
    standardizeInPlace(testStd, dim, st);
    // Context rows follow the data rows: a label's one-hot, or the given context row.
    const C = conditionCols(cond);
    const ctxRows = (idx: ArrayLike<number>, from: number, count: number): Float32Array | null => {
      if (!cond) return null;
      if (cond.kind === 'labels') return oneHot(Int32Array.from({ length: count }, (_, r) => cfg.labels!.labels[idx[from + r]!]!), C);
      const out = new Float32Array(count * C);
      for (let r = 0; r < count; r++) out.set(cfg.context!.data.subarray(idx[from + r]! * C, (idx[from + r]! + 1) * C), r * C);
      return out;
    };
    const nInit = Math.min(nTrain, 2048);
    return {
      dim,
      standardize: st,
      batchAt(step, size) {
        const rng = new Rng(cfg.seed, (STREAM.batch + step) >>> 0);
        const out = new Float32Array(size * dim);
        for (let r = 0; r < size; r++) {
          const i = rng.int(nTrain);
          out.set(trainStd.subarray(i * dim, (i + 1) * dim), r * dim);
        }
        return out;
      },
      contextAt(step, size) {
        if (!cond) return null;
        const rng = new Rng(cfg.seed, (STREAM.batch + step) >>> 0);
        return ctxRows(Int32Array.from({ length: size }, () => perm[rng.int(nTrain)]!), 0, size);
      },
      initContext: ctxRows(perm, 0, nInit),
      testContext: ctxRows(perm, nTrain, nTest),
      testLabels: cond?.kind === 'labels' ? Int32Array.from({ length: nTest }, (_, r) => cfg.labels!.labels[perm[nTrain + r]!]!) : null,
      initRows: () => trainStd.slice(0, nInit * dim),
      test: { data: testStd, n: nTest, dim },
      targetSamples(n) {
        const k = Math.min(n, nTest);
        return { data: testRaw.slice(0, k * dim), n: k, dim };
      },
    };
  }
  const sampler: Sampler = getDataset(cfg.target!).sample;
  // A labelled set's labelling draws the same points as its sampler (datasets/toy2d.ts).
  const lab = cond ? getDataset(cfg.target!).labels! : null;
  const labelsOf = (n: number, rng: Rng) => oneHot(lab!.sample(n, rng).labels, lab!.classes);
  const testLabels = lab ? lab.sample(testSize, new Rng(cfg.seed, STREAM.test)).labels : null;
  return {
    dim: 2,
    standardize: null,
    contextAt: (step, size) => (lab ? labelsOf(size, new Rng(cfg.seed, (STREAM.batch + step) >>> 0)) : null),
    initContext: lab ? labelsOf(2048, new Rng(cfg.seed, STREAM.init)) : null,
    testContext: testLabels ? oneHot(testLabels, lab!.classes) : null,
    testLabels,
    batchAt: (step, size) => sampler(size, new Rng(cfg.seed, (STREAM.batch + step) >>> 0)),
    initRows: () => sampler(2048, new Rng(cfg.seed, STREAM.init)),
    test: { data: sampler(testSize, new Rng(cfg.seed, STREAM.test)), n: testSize, dim: 2 },
    targetSamples: (n) => ({ data: sampler(n, new Rng(cfg.seed, STREAM.target)), n, dim: 2 }),
  };
}
