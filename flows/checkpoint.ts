/**
 * A trained flow on its own: log-density in chunks (test NLL, the density picture), samples in the
 * data's units, and `wgflow sample` / `wgflow eval` on a checkpoint (rebuilt from its stored
 * FlowRunConfig and parameters).
 */
import { GpuRng, noGrad, scope, tensor, type LrSchedule } from '../engine';
import { Rng } from '../engine/philox';
import type { Condition, DataMatrix, TrainState } from '../train/contract';
import { oneHot } from '../cfm/conditional';
import { conditionalMetrics } from '../cfm/conditional-eval';
import type { EvalOptions, EvalResult, ModelCheckpoint, SampleOptions, SampleResult } from '../train/methods';
import { getDataset } from '../datasets/toy2d';
import { wassersteinW2 } from '../cfm/metrics/w2';
import { buildFlow, resolveArch, type FlowArch } from './build';
import { GPU_SAMPLE_SEED_OFFSET, STREAM, logStdSum, standardizeInPlace, unstandardizeInPlace, validateData, type Standardize } from './data';
import type { Flow } from './flow';

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
  schedule: LrSchedule;
  testSize: number;
  testFraction: number;
  arch: FlowArch;
  standardize: Standardize | null;
  options: Record<string, unknown>;
  /** What the flow is conditioned on (absent or null: unconditional). */
  condition?: Condition | null;
}

/** Rows per evaluation chunk (test NLL, density grid): one shape, so one set of compiled kernels. */
export const EVAL_ROWS = 4096;

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

/** The resolved run configuration stored in a checkpoint, checked. */
export function readRunConfig(config: Record<string, unknown>): FlowRunConfig {
  const c = config as unknown as FlowRunConfig;
  if (!c || c.family !== 'flow' || !c.arch || typeof c.arch !== 'object') {
    throw new Error('checkpoint config is not a flow configuration (no "arch"): was it written by a flow run (flows/train.ts)?');
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
