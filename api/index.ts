/**
 * wgflow as a library (`import { train, sample, evaluate } from 'wgflow'`): the face for Node
 * scripts and web pages, as cli/ is the face for the terminal. Everything here is the training
 * layer's (train/) and the model families' own code under a small, typed surface; nothing is
 * reimplemented, so `train({...})` resolves and trains exactly as `wgflow train` with the same
 * values does (tests/train-options.test.ts).
 *
 * Runs wherever WebGPU does: in a page (navigator.gpu) or in Node (Dawn, the `webgpu` package).
 * The first call acquires a device unless the caller did (`init()` from 'wgflow/engine').
 * Browser-safe: Node-only helpers (readCheckpoint, writeCheckpoint, and the image datasets: train
 * on `fashion-mnist`, evaluateImages, imagePixels) reach Node's fs only when called.
 */
import { getBackend, init } from '../engine';
import type { RuntimeOptions } from '../engine';
import { Rng } from '../engine/philox';
import { DATASETS, getDataset } from '../datasets/toy2d';
import { decodeCheckpoint, encodeCheckpoint, readCheckpoint as readCheckpointFile, writeCheckpoint as writeCheckpointFile, type DecodedCheckpoint } from '../train/checkpoint';
import { modelWeights, type DataMatrix, type LabelSet, type Method, type Progress, type TrainOutcome, type TrainState } from '../train/contract';
import type { EvalResult, Solver } from '../train/methods';
import { trainConfig, type TrainSpec } from '../train/options';
import { getMethod } from '../train/registry';
import { DEFAULT_IMAGE_SOLVER, evaluateImageModel, imageSamplesToPixels, imageTrainSpec, translateImages as translateRows, type ImageEvaluation, type ImageSolver } from '../train/images';
import { isImageDataset } from '../datasets/image-names';

export { CFM_METHODS, FLOW_METHODS, modelWeights, type CfmMethod, type Condition, type ConditionalMetrics, type LabelSet, type DataMatrix, type FlowMethod, type Method, type Progress, type TrainConfig, type TrainOutcome, type TrainState } from '../train/contract';
export { SOLVERS, type EvalResult, type Solver } from '../train/methods';
export { ALL_METHODS, MAX_BATCH, TRAIN_DEFAULTS, trainConfig, type TrainSpec } from '../train/options';
export { CHECKPOINT_FORMAT, NonFiniteCheckpointError, decodeCheckpoint, encodeCheckpoint, type CheckpointContents, type DecodedCheckpoint } from '../train/checkpoint';
export { DeviceLostError, NonFiniteError, type AdapterReport, type RuntimeOptions } from '../engine';
export { DATASETS, type DatasetInfo } from '../datasets/toy2d';
export { parseCsv, parseNpy, encodeCsv, encodeNpy } from '../datasets/files';
export { splitLabelColumn } from '../datasets/labels';
export { IMAGE_EVAL, IMAGE_OPTION_DEFAULTS, IMAGE_SOLVERS, type ImageEvaluation, type ImageMetrics, type ImagePixels, type ImageSolver } from '../train/images';
export { FASHION_MNIST_CLASSES, IMAGE_DATASETS, IMAGE_DATASET_NAMES } from '../datasets/image-names';

/** A trained model: what sampling and evaluation need (also what a checkpoint holds). */
export interface Model {
  method: Method;
  /** The configuration the trainer resolved (defaults filled in). */
  config: Record<string, unknown>;
  params: TrainState['params'];
  step: number;
}

export interface TrainOptions extends TrainSpec {
  /** Called with the mean loss of the steps since the last call, at most every progressIntervalMs. */
  onProgress?: (p: Progress) => void;
  /** Default 500 ms; each report is one small GPU readback. */
  progressIntervalMs?: number;
  /** Called every checkpointEvery steps, at the end of training and on abort, with the full state. */
  onCheckpoint?: (state: TrainState) => void | Promise<void>;
  checkpointEvery?: number;
  /** Aborting stops before the next step: onCheckpoint gets the state reached, then train() rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Continue a run from its state (a checkpoint's `state`); the configuration must be the same run's. */
  resume?: TrainState;
  /** Where to get WebGPU when no device was acquired yet (default 'auto': the page's, else Node's Dawn). */
  runtime?: RuntimeOptions['runtime'];
}

export interface TrainResult extends TrainOutcome {
  model: Model;
  /** The shared fields as resolved (the checkpoint's "train_config", as `wgflow train` writes it: `--resume` and `wgflow sample` read it). */
  trainConfig: Record<string, unknown>;
}

/**
 * The configuration a training run of `spec` will resolve (defaults filled in, every option checked):
 * what a checkpoint stores and what sample() needs with a mid-run state, e.g. in onCheckpoint:
 * `sample({ method, config, params: state.params, step: state.step }, …)`. No GPU work (an image
 * target's rows are read, in Node, to resolve it as train() does).
 */
export function resolvedConfig(spec: TrainSpec): Record<string, unknown> {
  const cfg = trainConfig(imageTrainSpec(spec) ?? spec);
  return getMethod(cfg.method).resolveConfig!(cfg);
}

/** Makes sure a WebGPU device is the engine's backend (acquires one on first use). */
export async function ensureDevice(runtime: RuntimeOptions['runtime'] = 'auto'): Promise<void> {
  try {
    getBackend();
  } catch {
    await init({ runtime });
  }
}

/**
 * Trains a flow-matching model (otcfm, icfm, fm, sbcfm, vpcfm, sf2m) or a normalizing flow (realnvp,
 * nice, glow, planar, radial, maf, nsf), then evaluates it (W2, NPE, NLL as the method has them).
 * Defaults and checks are train/options.ts's and the family's: a bad value is a RangeError naming
 * it and what is accepted.
 *
 * An image target (`fashion-mnist`, `fashion-mnist:7,9`, `fashion-mnist@pixels`; Node only: the
 * images are files) trains on the images' PCA codes (or pixels) with the command line's image
 * defaults (train/images.ts): `source: 'fashion-mnist:7'` translates one class into another,
 * `options: { condition: 'labels' }` conditions on the classes. Judge it with evaluateImages().
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { onProgress, progressIntervalMs, onCheckpoint, checkpointEvery, signal, resume, runtime, ...given } = options;
  const spec = imageTrainSpec(given) ?? given;
  const cfg = trainConfig(spec);
  const impl = getMethod(cfg.method);
  impl.resolveConfig?.(cfg); // a bad option fails here, before a device is acquired
  await ensureDevice(runtime);
  const outcome = await impl.job.run(cfg, { onProgress, progressIntervalMs, onCheckpoint, checkpointEvery, signal }, resume);
  const stored = { method: cfg.method, source: cfg.source, target: cfg.target, data_file: null, steps: cfg.steps, batch: cfg.batch, lr: cfg.lr, seed: cfg.seed, options: cfg.options };
  return { ...outcome, trainConfig: stored, model: { method: cfg.method, config: outcome.config, params: modelWeights(outcome.state), step: outcome.state.step } };
}

export interface SampleOptions {
  n: number;
  seed?: number;
  /** Flow matching: the ODE solver (default rk4) and its steps (default 100). */
  solver?: Solver;
  solverSteps?: number;
  /** Conditional models (options.condition 'labels'): each sample's label, or labels cycled through (default: every class in turn). */
  labels?: ArrayLike<number>;
  /** Conditional models ('context'): n context rows. */
  context?: Float32Array;
  /** Conditional flow matching: classifier-free guidance scale (default 1; 0 = unconditional). */
  guidance?: number;
}

/** n samples of a trained model (n × dim, in the data's units); a conditional model's with each sample's `labels`. */
export async function sample(model: Model, opts: SampleOptions): Promise<DataMatrix & { labels?: Int32Array }> {
  await ensureDevice();
  const r = await getMethod(model.method).sample({ config: model.config, params: model.params, step: model.step }, { n: opts.n, seed: opts.seed ?? 0, solver: opts.solver, solverSteps: opts.solverSteps, labels: opts.labels, context: opts.context, guidance: opts.guidance });
  return r.labels ? { ...r.samples, labels: r.labels } : r.samples;
}

export interface EvaluateOptions {
  /** Target dataset (default: the one trained on), or data. */
  target?: string;
  data?: DataMatrix;
  /** Points for W2 (default 2 048, SPEC §3). */
  n?: number;
  seed?: number;
  solver?: Solver;
  solverSteps?: number;
  /** A conditional model evaluated on data: the rows' labels. */
  labels?: LabelSet;
  /** Conditional flow matching: classifier-free guidance scale (default 1). */
  guidance?: number;
}

/** W2 against the target, NPE (flow matching) and NLL of a trained model; per-label accuracy and W2 of a conditional one. */
export async function evaluate(model: Model, opts: EvaluateOptions = {}): Promise<EvalResult> {
  await ensureDevice();
  return getMethod(model.method).evaluate({ config: model.config, params: model.params, step: model.step }, { target: opts.target ?? null, data: opts.data, n: opts.n ?? 2048, seed: opts.seed ?? 0, solver: opts.solver, solverSteps: opts.solverSteps, labels: opts.labels, guidance: opts.guidance });
}

export interface EvaluateImagesOptions {
  /** Keys the generation's starting points (default: the model's training seed, as `wgflow train`). */
  seed?: number;
  /** Hears about the evaluator: trained by wgflow on first use (minutes on a software GPU), then cached. */
  onNote?: (line: string) => void;
  /** The ODE solver the images are drawn with: euler, midpoint or rk4 (default rk4), and its steps (default 20). */
  solver?: ImageSolver['solver'];
  solverSteps?: number;
}

/**
 * The image dataset a model was trained on (its config's dataName: the trainer records the rows it
 * was given under the target's name), or a RangeError naming what it was trained on.
 */
function imageTargetOf(model: Model, what: string): string {
  const t = model.config?.target ?? model.config?.dataName ?? null;
  if (typeof t !== 'string' || !isImageDataset(t)) throw new RangeError(`${what}: the model was trained on ${JSON.stringify(t)}, not an image dataset; accepted: a model trained with target fashion-mnist[:CLASSES][@pcaK|@pixels]`);
  return t;
}

/**
 * Judges a model trained on an image dataset as `wgflow train` does (metrics.json's `images` block):
 * samples drawn with RK4 (20 steps; opts.solver/solverSteps choose another) and classified by the evaluator wgflow trains itself — Fréchet
 * distance of its features to the test images' ‖μ−μ'‖² + tr(Σ + Σ' − 2(ΣΣ')^½) (FID-style, not
 * Inception FID) and its model-space floor, per-class accuracy of a conditional model, target-class
 * fraction and pixel distance of a translation. Returns the metrics and the pixels they were
 * computed from (samples, per-class rows, translation pairs, trajectory frames). Node only.
 */
export async function evaluateImages(model: Model, opts: EvaluateImagesOptions = {}): Promise<ImageEvaluation> {
  const target = imageTargetOf(model, 'evaluateImages');
  await ensureDevice();
  const source = typeof model.config.source === 'string' ? model.config.source : null;
  return evaluateImageModel(model.config, model.params, { target, source, seed: opts.seed ?? Number(model.config.seed ?? 0), note: opts.onNote, solver: { solver: opts.solver ?? DEFAULT_IMAGE_SOLVER.solver, steps: opts.solverSteps ?? DEFAULT_IMAGE_SOLVER.steps } });
}

/**
 * An unpaired translation model (trained with `source: 'fashion-mnist:7'`, `target:
 * 'fashion-mnist:9'`) applied to the first n test images of its source class (RK4, 20 steps): the
 * sources as the model sees them (their model-space round trip) and their translations, n × side²
 * pixels each, row-aligned. Node only.
 */
export async function translateImages(model: Model, n = 500): Promise<{ sources: Float32Array; translations: Float32Array; n: number; side: number }> {
  const target = imageTargetOf(model, 'translateImages');
  const source = model.config.source;
  if (typeof source !== 'string' || !isImageDataset(source)) throw new RangeError(`translateImages: the model was trained from ${JSON.stringify(source)}, not an image class; accepted: a model trained with source fashion-mnist:CLASS`);
  await ensureDevice();
  return translateRows(model.config, model.params, { target, source, n });
}

/**
 * An image model's samples (sample()'s model-space rows, n × dim) as images: n × side² pixels in
 * [−1, 1] (1 is ink), x = μ + zW for a PCA model (the basis comes back from the dataset's name).
 * Node only.
 */
export function imagePixels(model: Model, samples: DataMatrix): DataMatrix {
  return imageSamplesToPixels(imageTargetOf(model, 'imagePixels'), samples, Number(model.config.dim));
}

/** n points of a toy dataset (SPEC §2), as the trainers draw them (Philox, keyed by seed). */
export function sampleDataset(name: string, n: number, seed = 0): DataMatrix {
  return { data: getDataset(name).sample(n, new Rng(seed)), n, dim: 2 };
}

/** The names of the toy datasets. */
export const datasetNames = (): string[] => Object.keys(DATASETS);

/** A checkpoint's bytes for a training result (safetensors; PyTorch's safetensors reads the parameters). */
export function checkpointBytes(result: TrainResult): Uint8Array {
  return encodeCheckpoint({ config: result.config, trainConfig: result.trainConfig, state: result.state, runtime: 'library' });
}

/** The model held by a checkpoint's bytes or decoded contents. */
export function modelFromCheckpoint(ck: Uint8Array | DecodedCheckpoint): Model {
  const d = ck instanceof Uint8Array ? decodeCheckpoint(ck) : ck;
  return { method: d.config.method as Method, config: d.config, params: modelWeights(d.state), step: d.state.step };
}

/** Writes a training result's checkpoint to a file, atomically. Node only. */
export function writeCheckpoint(path: string, result: TrainResult): void {
  writeCheckpointFile(path, { config: result.config, trainConfig: result.trainConfig, state: result.state, runtime: 'library' });
}

/** Reads a checkpoint file (any wgflow checkpoint: the CLI's or the library's). Node only. */
export function readCheckpoint(path: string): DecodedCheckpoint {
  return readCheckpointFile(path);
}
