/**
 * Maximum-likelihood training of normalizing flows: the flows family of the training driver
 * (`flowTrainer`: config resolution, the step, evaluation; the loop, loss readback, guard,
 * checkpoints, abort and timing are train/driver.ts), and the sampling/evaluation helpers used on
 * saved checkpoints.
 *
 * Data: `cfg.target` names a 2-D toy set (SPEC §2; a fresh batch per step from a Philox stream
 * keyed by (seed, step), a fixed held-out test set from its own stream) or `cfg.data` is a user
 * matrix (any dimension): rows are shuffled by the seed and split into train/test (testFraction,
 * default 0.1), and standardised per coordinate with the training mean and std; the flow models the
 * standardised data and every reported NLL is converted back to the original units
 * (NLL_x = NLL_standardised + Σ log std).
 *
 * A step (one flush, no readback): upload the batch, loss = −mean log p(x) on the tape, Adam (one
 * pack + one update dispatch), the loss into its slot of the GPU loss ring with the non-finite
 * guard (engine/loss-ring.ts: one dispatch). A data-dependent initialisation (ActNorm) runs once
 * before the first step on a batch of ≤ 2 048 rows.
 * Option `chunk` (default: off) evaluates a batch in chunks of that many rows inside one gradient
 * (loss = −Σ_chunks Σ log p / B, the same gradient): it was a workaround for workgroup-tree bias
 * reductions over > 128 rows, which were very slow on SwiftShader before kernels/reduce.ts went
 * serial for wide outputs; it doubles the dispatches, so it now only pays to bound memory.
 * Learning rate: cosine decay from cfg.lr to 0 over cfg.steps (options.schedule 'cosine', the
 * default) or constant. The batch of step s depends only on (seed, s), so a resumed run sees the
 * same batches as an uninterrupted one.
 *
 * Options (cfg.options): layers, hidden, activation, scaleBound, linear ('lu' | 'dense', glow),
 * base ('standard' | 'diag'), actnorm (true), contextDim, nsf's variant, bins, bound (flows/build.ts
 * ARCH_OPTIONS), schedule
 * ('cosine' | 'constant'), testSize (toy test set, 10 000), testFraction (file data, 0.1), grid
 * (density picture cells per side, 128), w2 (compute W2 against target samples, true), chunk (rows
 * per gradient chunk, off), condition ('none' | 'labels' | 'context': train/options.ts; the flow
 * then models p(x | c) with c a label's one-hot or the data's context rows, fed to every
 * conditioner as contextDim columns; evaluation reports NLL given the test rows' labels and the
 * per-label accuracy of samples drawn for the test labels, cfm/conditional-eval.ts). Unknown
 * options are an error naming the accepted ones.
 */
import { add, Adam, affine, getBackend, GpuRng, LossRing, mean, neg, noGrad, NonFiniteError, scope, sum, tensor, valueAndGrad, type Tensor } from '../engine';
import { Rng } from '../engine/philox';
import { FLOW_METHODS, type Condition, type DataMatrix, type Evaluation, type FamilyTrainer, type TrainConfig, type TrainingRun, type TrainState } from '../train/contract';
import { conditionCols, resolveCondition } from '../train/options';
import { oneHot } from '../cfm/conditional';
import { conditionalMetrics } from '../cfm/conditional-eval';
import type { EvalOptions, EvalResult, ModelCheckpoint, SampleOptions, SampleResult } from '../train/methods';
import { getDataset, type Sampler } from '../datasets/toy2d';
import { wassersteinW2 } from '../cfm/metrics/w2';
import { ARCH_OPTIONS, buildFlow, resolveArch, type FlowArch } from './build';
import type { Flow } from './flow';

/** Stream numbers of the Philox generators (seeded by cfg.seed). */
const STREAM = { split: 0x5e11, test: 0x7e57, init: 0x1417, target: 0x7a6e, batch: 0x40000000 };
const GPU_SAMPLE_SEED_OFFSET = 0x5a3;

export interface Standardize {
  mean: number[];
  std: number[];
}

/** What sampling/evaluation need, stored as the checkpoint's config (JSON-safe). */
export interface FlowRunConfig {
  family: 'flow';
  method: FlowArch['method'];
  source: null;
  target: string | null;
  data: { n: number; dim: number } | null;
  dim: number;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  schedule: 'cosine' | 'constant';
  testSize: number;
  testFraction: number;
  arch: FlowArch;
  standardize: Standardize | null;
  options: Record<string, unknown>;
  /** What the flow is conditioned on (absent or null: unconditional). */
  condition?: Condition | null;
}

// ---------------------------------------------------------------------------------------------
// Validation and data

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

function numOption(o: Record<string, unknown>, key: string, def: number, ok: (v: number) => boolean, accepted: string): number {
  if (o[key] === undefined) return def;
  const v = Number(o[key]);
  if (!Number.isFinite(v) || !ok(v)) throw new Error(`flow option ${key}: ${JSON.stringify(o[key])} is not accepted; accepted: ${accepted}`);
  return v;
}

interface Prepared {
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

function standardizeInPlace(d: Float32Array, dim: number, s: Standardize): void {
  for (let i = 0; i < d.length; i++) d[i] = (d[i]! - s.mean[i % dim]!) / s.std[i % dim]!;
}

function unstandardizeInPlace(d: Float32Array, dim: number, s: Standardize | null): void {
  if (!s) return;
  for (let i = 0; i < d.length; i++) d[i] = d[i]! * s.std[i % dim]! + s.mean[i % dim]!;
}

/** The first n held-out test rows in original units. */
function testRawOf(d: Prepared, n: number): Float32Array {
  const out = d.test.data.slice(0, n * d.dim);
  unstandardizeInPlace(out, d.dim, d.standardize);
  return out;
}

/** Σ log std: the NLL offset between standardised and original units. */
export function logStdSum(s: Standardize | null): number {
  return s ? s.std.reduce((a, v) => a + Math.log(v), 0) : 0;
}

function prepareData(cfg: TrainConfig, testSize: number, testFraction: number, cond: Condition | null = null): Prepared {
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

// ---------------------------------------------------------------------------------------------
// Evaluation helpers (also used by the CLI on checkpoints)

/** Rows per evaluation chunk (test NLL, density grid): one shape, so one set of compiled kernels. */
const EVAL_ROWS = 4096;

/**
 * log p of n rows of `pts` (n × dim) in chunks of `batch` rows, one readback each, handing each
 * chunk's values to `each`. When there is more than one chunk the last one is padded (with copies
 * of row 0) to the full chunk size: kernels are compiled per shape, and on SwiftShader compiling a
 * flow's ~40 kernels for a remainder shape took longer than evaluating 20 000 rows.
 */
async function logProbChunks(flow: Flow, pts: Float32Array, n: number, batch: number, each: (start: number, values: Float32Array, rows: number) => void, ctx: Float32Array | null = null): Promise<void> {
  const dim = flow.dim;
  const C = flow.contextDim;
  const rowsOf = (src: Float32Array, w: number, start: number, rows: number, pad: boolean) => {
    const chunk = src.subarray(start * w, (start + rows) * w);
    if (!pad) return chunk;
    const padded = new Float32Array(batch * w);
    padded.set(chunk);
    for (let r = rows; r < batch; r++) padded.set(src.subarray(0, w), r * w);
    return padded;
  };
  for (let start = 0; start < n; start += batch) {
    const rows = Math.min(batch, n - start);
    const pad = rows < batch && n > batch;
    const chunk = rowsOf(pts, dim, start, rows, pad);
    const shapeRows = pad ? batch : rows;
    const c = ctx && C > 0 ? rowsOf(ctx, C, start, rows, pad) : null;
    const lp = noGrad(() => scope(() => flow.logProb(tensor(chunk, [shapeRows, dim]), c ? tensor(c, [shapeRows, C]) : undefined)));
    const values = await lp.data();
    lp.dispose();
    each(start, values, rows);
  }
}

/** Mean −log p over the rows of `m` (in the flow's own units; given the context rows `ctx` of a conditional flow), in batches, one readback each. */
export async function meanNll(flow: Flow, m: DataMatrix, batch = EVAL_ROWS, ctx: Float32Array | null = null): Promise<number> {
  if (m.dim !== flow.dim) throw new Error(`evaluation data has dimension ${m.dim}, the flow models dimension ${flow.dim}`);
  let total = 0;
  await logProbChunks(flow, m.data, m.n, batch, (_, values, rows) => {
    for (let k = 0; k < rows; k++) total -= values[k]!;
  }, ctx);
  return total / m.n;
}

/** log-density on a gw × gh grid of cell centres over bounds [xmin, xmax, ymin, ymax] (row j from the bottom). */
export async function densityGrid(flow: Flow, bounds: [number, number, number, number], gw = 128, gh = gw, standardize: Standardize | null = null): Promise<Float32Array> {
  if (flow.dim !== 2) throw new Error(`densityGrid: needs a 2-D flow, this one has dimension ${flow.dim}`);
  const [x0, x1, y0, y1] = bounds;
  const pts = new Float32Array(gw * gh * 2);
  for (let j = 0; j < gh; j++)
    for (let i = 0; i < gw; i++) {
      pts[2 * (j * gw + i)] = x0 + ((i + 0.5) * (x1 - x0)) / gw;
      pts[2 * (j * gw + i) + 1] = y0 + ((j + 0.5) * (y1 - y0)) / gh;
    }
  if (standardize) standardizeInPlace(pts, 2, standardize);
  const out = new Float32Array(gw * gh);
  const offset = logStdSum(standardize);
  await logProbChunks(flow, pts, gw * gh, EVAL_ROWS, (start, values, rows) => {
    for (let k = 0; k < rows; k++) out[start + k] = values[k]! - offset;
  });
  return out;
}

/** n samples in original units (one readback); a conditional flow's given its context rows (n × contextDim). */
export async function drawSamples(flow: Flow, n: number, seed: number, standardize: Standardize | null = null, ctx: Float32Array | null = null): Promise<DataMatrix> {
  const rng = new GpuRng(seed);
  const out = new Float32Array(n * flow.dim);
  const B = 8192;
  const C = flow.contextDim;
  for (let start = 0; start < n; start += B) {
    const rows = Math.min(B, n - start);
    const x = noGrad(() => scope(() => flow.sample(rows, rng, ctx && C > 0 ? tensor(ctx.subarray(start * C, (start + rows) * C), [rows, C]) : undefined)));
    out.set(await x.data(), start * flow.dim);
    x.dispose();
  }
  unstandardizeInPlace(out, flow.dim, standardize);
  return { data: out, n, dim: flow.dim };
}

/** Square bounds around the data with a 10 % margin. */
function boundsOf(m: DataMatrix): [number, number, number, number] {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < m.n; i++) {
    const x = m.data[2 * i]!, y = m.data[2 * i + 1]!;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const half = (Math.max(x1 - x0, y1 - y0, 1e-3) / 2) * 1.1;
  return [cx - half, cx + half, cy - half, cy + half];
}

/** The resolved run configuration stored in a checkpoint, checked. */
export function readRunConfig(config: Record<string, unknown>): FlowRunConfig {
  const c = config as unknown as FlowRunConfig;
  if (!c || c.family !== 'flow' || !c.arch || typeof c.arch !== 'object') {
    throw new Error('checkpoint config is not a flow configuration (no "arch"): was it written by flows/train.ts?');
  }
  return c;
}

/** Rebuilds a trained flow from a checkpoint's config and parameters. */
export function flowFromCheckpoint(config: Record<string, unknown>, params: TrainState['params']): Flow {
  const c = readRunConfig(config);
  const arch = resolveArch(c.arch.method, c.arch.dim, c.arch as unknown as Record<string, unknown>, c.arch.seed);
  const flow = buildFlow(arch);
  try {
    flow.store.load(params);
  } catch (e) {
    flow.dispose();
    throw e;
  }
  return flow;
}

/** `wgflow sample` for flows: n samples in the data's original units. */
export async function sampleFlow(ckpt: ModelCheckpoint, opts: SampleOptions): Promise<SampleResult> {
  if (!Number.isInteger(opts.n) || opts.n < 1) throw new Error(`sample: n must be a positive integer, got ${opts.n}`);
  const c = readRunConfig(ckpt.config);
  const cond = c.condition ?? null;
  if (!cond && (opts.labels || opts.context)) throw new RangeError('sample: labels and context are for conditional models; this checkpoint is unconditional');
  if (opts.guidance !== undefined) throw new RangeError('sample: guidance is for conditional flow matching; a flow samples p(x | c) directly');
  let labels: Int32Array | null = null;
  let ctx: Float32Array | null = null;
  if (cond?.kind === 'labels') {
    const list = opts.labels && opts.labels.length ? Array.from(opts.labels) : Array.from({ length: cond.numClasses }, (_, k) => k);
    for (const k of list) if (!Number.isInteger(k) || k < 0 || k >= cond.numClasses) throw new RangeError(`label ${k} is not a label of this model; accepted: integers 0..${cond.numClasses - 1}`);
    labels = Int32Array.from({ length: opts.n }, (_, b) => list[b % list.length]!);
    ctx = oneHot(labels, cond.numClasses);
  } else if (cond?.kind === 'context') {
    if (!opts.context || opts.context.length !== opts.n * cond.cols) throw new RangeError(`sample: this flow is conditioned on context vectors: give ${opts.n} context rows of ${cond.cols} columns`);
    ctx = opts.context;
  }
  const flow = flowFromCheckpoint(ckpt.config, ckpt.params);
  try {
    return { samples: await drawSamples(flow, opts.n, opts.seed, c.standardize, ctx), nfe: null, ...(labels ? { labels } : {}) };
  } finally {
    flow.dispose();
  }
}

/**
 * `wgflow eval` for flows: NLL (nats, original units) of `opts.data` or of `opts.n` fresh samples of
 * the target set (default: the checkpoint's), and W2 between `opts.n` flow samples and target rows.
 */
export async function evalFlow(ckpt: ModelCheckpoint, opts: EvalOptions): Promise<EvalResult> {
  const c = readRunConfig(ckpt.config);
  const cond = c.condition ?? null;
  if (cond?.kind === 'context') throw new RangeError('eval: a flow conditioned on context vectors is evaluated with its training run');
  if (!cond && opts.labels) throw new RangeError('eval: labels are for conditional models; this checkpoint is unconditional');
  let data: DataMatrix;
  let labels: ArrayLike<number> | null = null;
  if (opts.data) {
    validateData(opts.data, 'evaluation data');
    data = opts.data;
    if (cond && !opts.labels) throw new RangeError('eval: a conditional flow needs the labels of the data rows (--label-column N)');
    labels = opts.labels?.labels ?? null;
  } else {
    const name = opts.target ?? c.target;
    if (!name) throw new Error('eval: this flow was trained on a data file; pass --data FILE (or a --target dataset of the same dimension)');
    const lab = cond ? getDataset(name).labels : null;
    if (cond && (!lab || lab.classes !== (cond as { numClasses: number }).numClasses)) throw new RangeError(`eval: target "${name}" has no labels of this model's ${(cond as { numClasses: number }).numClasses} classes`);
    const drawn = lab ? lab.sample(opts.n, new Rng(opts.seed, STREAM.test)) : { points: getDataset(name).sample(opts.n, new Rng(opts.seed, STREAM.test)), labels: null };
    data = { data: drawn.points, n: opts.n, dim: 2 };
    labels = drawn.labels;
  }
  const K = cond?.kind === 'labels' ? cond.numClasses : 0;
  const ctx = labels ? oneHot(labels, K) : null;
  if (data.dim !== c.dim) throw new Error(`eval: the data has dimension ${data.dim}, the flow was trained on dimension ${c.dim}`);
  const flow = flowFromCheckpoint(ckpt.config, ckpt.params);
  try {
    const std = data.data.slice();
    if (c.standardize) standardizeInPlace(std, data.dim, c.standardize);
    const nll = (await meanNll(flow, { data: std, n: data.n, dim: data.dim }, EVAL_ROWS, ctx)) + logStdSum(c.standardize);
    const k = Math.min(opts.n, data.n);
    const samples = await drawSamples(flow, k, opts.seed + GPU_SAMPLE_SEED_OFFSET, c.standardize, ctx ? ctx.subarray(0, k * K) : null);
    const ref = data.data.slice(0, k * data.dim);
    const w2 = wassersteinW2(samples.data, ref, k, data.dim);
    const y = labels ? Int32Array.from({ length: k }, (_, b) => labels![b]!) : null;
    return { w2, npe: null, nll, nfe: null, ...(y ? { conditional: conditionalMetrics(samples.data, y, ref, y, K, data.dim, 1) } : {}) };
  } finally {
    flow.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Training

/** Learning rate at `step` of `steps`. */
export function learningRate(schedule: 'cosine' | 'constant', lr: number, step: number, steps: number): number {
  if (schedule === 'constant' || steps <= 1) return lr;
  return 0.5 * lr * (1 + Math.cos((Math.PI * Math.min(step, steps)) / steps));
}

/** Options of the flow trainer itself (the architecture's are flows/build.ts ARCH_OPTIONS). */
const TRAIN_OPTIONS = ['schedule', 'testSize', 'testFraction', 'grid', 'w2', 'chunk'] as const;

interface FlowTrainOptions {
  schedule: 'cosine' | 'constant';
  testSize: number;
  testFraction: number;
  grid: number;
  w2: boolean;
  chunk: number;
}

function trainOptions(cfg: TrainConfig): FlowTrainOptions {
  const o = cfg.options ?? {};
  const accepted = [...TRAIN_OPTIONS, ...ARCH_OPTIONS, 'condition'];
  for (const k of Object.keys(o)) if (!(accepted as readonly string[]).includes(k)) throw new Error(`unknown flow option "${k}"; accepted: ${accepted.join(', ')}`);
  const schedule = (o.schedule ?? 'cosine') as 'cosine' | 'constant';
  if (schedule !== 'cosine' && schedule !== 'constant') throw new Error(`flow option schedule: ${JSON.stringify(o.schedule)} is not accepted; accepted: cosine, constant`);
  if (o.w2 !== undefined && ![true, false, 'true', 'false'].includes(o.w2 as string)) throw new Error(`flow option w2: ${JSON.stringify(o.w2)} is not accepted; accepted: true, false`);
  return {
    schedule,
    testSize: numOption(o, 'testSize', 10000, (v) => Number.isInteger(v) && v >= 1, 'a positive integer'),
    testFraction: numOption(o, 'testFraction', 0.1, (v) => v > 0 && v < 1, 'a number in (0, 1)'),
    grid: numOption(o, 'grid', 128, (v) => Number.isInteger(v) && v >= 2 && v <= 1024, 'an integer from 2 to 1024'),
    w2: o.w2 === undefined ? true : o.w2 === true || o.w2 === 'true',
    chunk: numOption(o, 'chunk', cfg.batch, (v) => Number.isInteger(v) && v >= 1, 'a positive integer'),
  };
}

/** The resolved run configuration (stored in checkpoints); `data` is the prepared data it was resolved with. */
function resolveFlow(cfg: TrainConfig): { config: FlowRunConfig; data: Prepared; opts: FlowTrainOptions } {
  if (!(FLOW_METHODS as readonly string[]).includes(cfg.method)) throw new Error(`flow training: method "${cfg.method}" is not a flow method`);
  const opts = trainOptions(cfg);
  const cond = resolveCondition(cfg);
  const data = prepareData(cfg, opts.testSize, opts.testFraction, cond);
  const { condition: _c, ...archOptions } = cfg.options ?? {};
  if (cond && archOptions.contextDim !== undefined && Number(archOptions.contextDim) !== conditionCols(cond)) throw new Error(`flow option contextDim: ${JSON.stringify(archOptions.contextDim)} is not accepted with condition = "${cond.kind}"; it is set to the condition's ${conditionCols(cond)} columns (leave it out)`);
  const arch = resolveArch(cfg.method, data.dim, cond ? { ...archOptions, contextDim: conditionCols(cond) } : archOptions, cfg.seed);
  const config: FlowRunConfig = {
    family: 'flow', method: arch.method, source: null, target: cfg.data ? null : cfg.target,
    data: cfg.data ? { n: cfg.data.n, dim: cfg.data.dim } : null, dim: data.dim,
    steps: cfg.steps, batch: cfg.batch, lr: cfg.lr, seed: cfg.seed, schedule: opts.schedule, testSize: opts.testSize, testFraction: opts.testFraction,
    arch, standardize: data.standardize, options: { ...(cfg.options ?? {}) },
    ...(cond ? { condition: cond } : {}),
  };
  return { config, data, opts };
}

async function prepare(cfg: TrainConfig, _resolved: Record<string, unknown>, resume?: TrainState): Promise<TrainingRun> {
  // Resolved again for the prepared data (the split and standardisation), which the config only summarises.
  const { config, data, opts } = resolveFlow(cfg);
  const arch = config.arch;
  const offset = logStdSum(data.standardize);
  const b = getBackend();
  const flow = buildFlow(arch);
  let adam: Adam | null = null;
  let ring: LossRing | null = null;
  try {
    const paramSet = flow.store.paramSet;
    if (!paramSet) throw new Error(`method ${arch.method}: the flow has no trainable parameters`);
    adam = new Adam(paramSet, { lr: cfg.lr });
    ring = new LossRing();
    if (resume) {
      flow.store.load(resume.params);
      adam.loadState(resume.adam);
    } else {
      const init = data.initRows();
      const x = tensor(init, [init.length / data.dim, data.dim]);
      const c = data.initContext ? tensor(data.initContext, [init.length / data.dim, flow.contextDim]) : undefined;
      await flow.initialize(x, c);
      x.dispose();
      c?.dispose();
    }
  } catch (e) {
    adam?.dispose();
    ring?.dispose();
    flow.dispose();
    throw e;
  }
  const params = flow.parameters;
  const paramSet = flow.store.paramSet!;
  const opt = adam;
  const lossRing = ring;
  const fused = flow.fusionReport();
  return {
    // Flows have no whole-step kernel: their 'step' is 'mlp' (flows/build.ts).
    fusion: { asked: arch.fusion === 'step' ? 'mlp' : (arch.fusion ?? 'mlp'), used: fused.fallback ? 'layer' : fused.level === 'step' ? 'mlp' : fused.level, fallback: fused.fallback },
    step(step) {
      const xb = data.batchAt(step, cfg.batch);
      const cb = data.contextAt(step, cfg.batch);
      const C = flow.contextDim;
      const lr = learningRate(opts.schedule, cfg.lr, step, cfg.steps);
      scope(() => {
        const xs: Tensor[] = [];
        const cs: (Tensor | undefined)[] = [];
        for (let r = 0; r < cfg.batch; r += opts.chunk) {
          const rows = Math.min(opts.chunk, cfg.batch - r);
          xs.push(tensor(xb.subarray(r * data.dim, (r + rows) * data.dim), [rows, data.dim]));
          cs.push(cb ? tensor(cb.subarray(r * C, (r + rows) * C), [rows, C]) : undefined);
        }
        const { value, grads } = valueAndGrad(() => {
          if (xs.length === 1) return neg(mean(flow.logProb(xs[0]!, cs[0])));
          let total: Tensor | null = null;
          for (const [i, x] of xs.entries()) {
            const s = sum(flow.logProb(x, cs[i]));
            total = total ? add(total, s) : s;
          }
          return affine(total!, -1 / cfg.batch);
        }, params);
        opt.step(grads, lr);
        lossRing.record(value, paramSet.flat, step);
      });
      b.flush();
    },
    async readLosses(from, to) {
      // The ring holds standardised-unit losses; report them in the data's units.
      const r = await lossRing.read(from, to);
      return { losses: offset === 0 ? r.losses : r.losses.map((v) => v + offset), firstBad: r.firstBad };
    },
    snapshot: async () => ({ params: await flow.store.read(), adam: await opt.state(), extra: { initialized: true } }),
    // What to try when training diverges (the affine couplings' scales are bounded by scaleBound).
    divergenceAdvice: `Try a lower --lr (this run: ${cfg.lr})${['realnvp', 'glow', 'maf'].includes(arch.method) ? ` or a smaller --option scaleBound=… (this run: ${arch.scaleBound})` : ''}`,
    async evaluate(): Promise<Evaluation> {
      const nll = (await meanNll(flow, data.test, EVAL_ROWS, data.testContext)) + offset;
      const nShow = 2048;
      // A conditional flow: samples for the first test rows' contexts (so as many per label as the test set has).
      const k0 = Math.min(nShow, data.test.n);
      const showCtx = data.testContext ? data.testContext.slice(0, k0 * flow.contextDim) : null;
      const samples = await drawSamples(flow, showCtx ? k0 : nShow, cfg.seed + GPU_SAMPLE_SEED_OFFSET, data.standardize, showCtx);
      const bad = samples.data.reduce((k, x) => k + (Number.isFinite(x) ? 0 : 1), 0);
      if (bad > 0) throw new NonFiniteError(`evaluation: ${bad} of ${samples.data.length} sample coordinates are NaN or infinite (the trained flow overflows). Try a lower --lr (this run: ${cfg.lr})`, cfg.steps, []);
      const target = data.targetSamples(nShow);
      let density: Evaluation['density'];
      // A conditional flow has a density per context: no single density picture.
      if (data.dim === 2 && !config.condition) {
        const bounds = boundsOf(target);
        density = { values: await densityGrid(flow, bounds, opts.grid, opts.grid, data.standardize), gw: opts.grid, gh: opts.grid, bounds };
      }
      let w2: number | null = null;
      if (opts.w2) {
        const k = Math.min(samples.n, target.n);
        w2 = wassersteinW2(samples.data.subarray(0, k * data.dim), target.data.subarray(0, k * data.dim), k, data.dim);
      }
      // Labels: the test rows (original units) with their labels against the samples drawn for them.
      const cm = data.testLabels && config.condition?.kind === 'labels' ? conditionalMetrics(samples.data, data.testLabels.subarray(0, samples.n), testRawOf(data, samples.n), data.testLabels.subarray(0, samples.n), config.condition.numClasses, data.dim, 1) : null;
      return { metrics: { w2, npe: null, nll, ...(cm ? { conditional: cm } : {}) }, samples, target, density };
    },
    dispose() {
      opt.dispose();
      lossRing.dispose();
      flow.dispose();
    },
  };
}

/** The normalizing-flow family for the training driver (train/driver.ts). */
export const flowTrainer: FamilyTrainer = {
  family: 'flow',
  resolveConfig: (cfg) => resolveFlow(cfg).config as unknown as Record<string, unknown>,
  prepare,
};
