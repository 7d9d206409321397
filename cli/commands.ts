/** `wgflow sample`, `eval`, `info` and `bench` (SPEC §4). */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DATASETS } from '../datasets/toy2d';
import { encodeCsv, encodeNpy } from '../datasets/files';
import { IMAGE_DATASETS, isImageDataset } from '../datasets/image-names';
import { IMAGE_EVAL, checkImageSolver, evaluateImageModel, imageSamplesToPixels, translateImages, type ImageSolver } from '../train/images';
import type { AdapterReport } from '../engine/backend';
import { adapterSummary } from '../engine/runtime';
import { writeFileAtomic } from '../io/atomic';
import { UsageError, parseFlags, type FlagSpec } from './args';
import { readCheckpoint, type DecodedCheckpoint } from '../train/checkpoint';
import { BROWSER_FLAGS, checkDataset, loadData, loadLabelledData } from './config';
import { parseLabelList } from '../datasets/labels';
import { ALL_METHODS, MAX_POINTS, MAX_SOLVER_STEPS } from './flags';
import { checkOutFile } from './paths';
import { checkTrainConfig, firstNonFinite, type StoredTrainConfig } from './stored-config';
import { quote } from '../io/quote';
import { BENCH_HELP, EVAL_HELP, INFO_HELP, SAMPLE_HELP } from './help';
import { modelWeights, type Condition, type ConditionalMetrics, type Method } from '../train/contract';
import { SOLVERS, familyOf, type ModelCheckpoint, type Solver } from '../train/methods';
import { fmtNum } from './report';
import { loadJobs, resolveChromium, runTaskIn } from './runner';
import type { EvalTaskArgs, EvalTaskResult, InfoTaskResult, SampleTaskArgs, SampleTaskResult, TaskMessage } from './tasks';
import { type CliContext, displayPath, gpuOption, onInterrupt } from './util';

const RUNTIME_NODE_FIRST: FlagSpec = { name: 'runtime', kind: { type: 'enum', values: ['node', 'browser'] } };

export const SAMPLE_FLAGS: FlagSpec[] = [
  { name: 'checkpoint', kind: { type: 'string', meta: 'a model.safetensors file' } },
  { name: 'n', kind: { type: 'int', min: 1, max: MAX_POINTS } },
  { name: 'solver', kind: { type: 'enum', values: SOLVERS } },
  { name: 'solver-steps', kind: { type: 'int', min: 1, max: MAX_SOLVER_STEPS } },
  { name: 'seed', kind: { type: 'int', min: 0, max: 2 ** 32 - 1 } },
  { name: 'out', kind: { type: 'string', meta: 'a .npy or .csv file name' } },
  // Conditional models: the labels to sample (one, a list cycled through, or all) and the guidance scale.
  { name: 'label', kind: { type: 'string', meta: 'a label, a comma-separated list of labels, or all' } },
  { name: 'guidance', kind: { type: 'number' } },
  RUNTIME_NODE_FIRST,
  ...BROWSER_FLAGS,
  { name: 'json', kind: { type: 'bool' } },
];

export const EVAL_FLAGS: FlagSpec[] = [
  { name: 'checkpoint', kind: { type: 'string', meta: 'a model.safetensors file' } },
  { name: 'target', kind: { type: 'string', meta: 'a dataset name' } },
  { name: 'data', kind: { type: 'string', meta: 'a .npy or .csv file' } },
  { name: 'n', kind: { type: 'int', min: 2, max: MAX_POINTS } },
  { name: 'seed', kind: { type: 'int', min: 0, max: 2 ** 32 - 1 } },
  { name: 'solver', kind: { type: 'enum', values: SOLVERS } },
  { name: 'solver-steps', kind: { type: 'int', min: 1, max: MAX_SOLVER_STEPS } },
  { name: 'label-column', kind: { type: 'int', min: 1 } },
  { name: 'guidance', kind: { type: 'number' } },
  RUNTIME_NODE_FIRST,
  ...BROWSER_FLAGS,
  { name: 'json', kind: { type: 'bool' } },
];

export const INFO_FLAGS: FlagSpec[] = [
  { name: 'runtime', kind: { type: 'enum', values: ['all', 'node', 'browser'] } },
  ...BROWSER_FLAGS,
  { name: 'datasets', kind: { type: 'bool' } },
  { name: 'json', kind: { type: 'bool' } },
];


/**
 * Reads --checkpoint and checks it once, before any work: its format, its stored configurations
 * (cli/stored-config.ts, through the method's checkConfig) against its parameters, and that every
 * parameter is finite (a NaN model would write NaN samples with exit status 0). Every problem with
 * the file is a UsageError naming it (exit 2).
 */
async function loadModel(checkpoint: unknown): Promise<{ ck: DecodedCheckpoint; method: Method; model: ModelCheckpoint; trainConfig: StoredTrainConfig | null }> {
  if (typeof checkpoint !== 'string') throw new UsageError('--checkpoint: required (the model.safetensors of a run, e.g. runs/otcfm-8gaussians-moons-0/model.safetensors)');
  const bad = (msg: string) => new UsageError(`--checkpoint: ${checkpoint}: ${msg}`);
  let ck: DecodedCheckpoint;
  try {
    ck = readCheckpoint(checkpoint);
  } catch (e) {
    throw new UsageError(`--checkpoint: ${(e as Error).message}`);
  }
  const method = ck.config.method as Method;
  if (typeof method !== 'string' || !ALL_METHODS.includes(method)) {
    throw bad(`metadata "config" field "method" is ${method === undefined ? 'missing' : quote(method, 40)}; accepted: one of ${ALL_METHODS.join(', ')}`);
  }
  try {
    // The command line's part is checked when it is there (library-written checkpoints may lack it).
    const trainConfig = ck.metadata.train_config !== undefined ? checkTrainConfig(ck.trainConfig) : null;
    if (trainConfig && trainConfig.method !== method) throw new UsageError(`metadata "train_config" field "method" is ${quote(trainConfig.method)} but "config" says ${quote(method)}`);
    const impl = (await loadJobs()).getMethod(method);
    const config = typeof impl !== 'string' && impl.checkConfig ? impl.checkConfig(ck.config, ck.state.params) : { ...ck.trainConfig, ...ck.config };
    const nonFinite = firstNonFinite(ck.state.params);
    if (nonFinite) {
      throw new UsageError(`parameter ${quote(nonFinite.name)} holds ${nonFinite.value} at index ${nonFinite.index}: the model is not finite (the run diverged); sample or evaluate an earlier checkpoint, or retrain with a smaller --lr`);
    }
    // A run that kept a moving average of its weights is sampled with the average.
    let weights: ModelCheckpoint['params'];
    try {
      weights = modelWeights(ck.state);
    } catch (e) {
      throw new UsageError(`tensor "optimizer.ema": ${(e as Error).message}`);
    }
    const badAverage = weights === ck.state.params ? null : firstNonFinite(weights);
    if (badAverage) throw new UsageError(`tensor "optimizer.ema" holds ${badAverage.value} for parameter ${quote(badAverage.name)} at index ${badAverage.index}: the moving average of the weights is not finite`);
    return { ck, method, trainConfig, model: { config, params: weights, step: ck.state.step } };
  } catch (e) {
    if (e instanceof UsageError) throw bad(e.message);
    throw e;
  }
}

function solverFlags(v: Record<string, unknown>, given: Set<string>, method: Method): { solver?: Solver; solverSteps?: number } {
  if (familyOf(method) === 'flow') {
    for (const f of ['solver', 'solver-steps']) if (given.has(f)) throw new UsageError(`--${f}: the normalizing flow ${method} samples without an ODE solver; leave --${f} out`);
    return {};
  }
  if (v.solver === 'sde' && method !== 'sf2m') throw new UsageError(`--solver sde: the SDE needs a score network, which only sf2m trains (the checkpoint is ${method}); use rk4, euler, midpoint or dopri5`);
  return { solver: (v.solver as Solver | undefined) ?? 'rk4', solverSteps: (v['solver-steps'] as number | undefined) ?? 100 };
}

/**
 * The conditioning flags of sample / eval against the checkpoint's condition (cfm/conditional.ts):
 * --label (sample) and --guidance only for conditional models; guidance for flow-matching ones.
 */
function conditionFlags(v: Record<string, unknown>, given: Set<string>, method: Method, config: Record<string, unknown>): { cond: Condition | null; labels?: number[]; guidance?: number } {
  const cond = (config.condition as Condition | null | undefined) ?? null;
  const flags = ['label', 'guidance', 'label-column'].filter((f) => given.has(f));
  if (!cond && flags.length) throw new UsageError(`--${flags[0]}: the checkpoint is an unconditional model (trained without --condition)`);
  if (!cond) return { cond };
  if (given.has('guidance') && familyOf(method) === 'flow') throw new UsageError(`--guidance: classifier-free guidance is for flow-matching models; ${method} samples its conditional density directly`);
  const g = v.guidance as number | undefined;
  if (g !== undefined && !(Math.abs(g) <= 100)) throw new UsageError(`--guidance: ${g} is not accepted; accepted: a number from -100 to 100 (1 = the conditional field, 0 = unconditional)`);
  if (cond.kind === 'context' && given.has('label')) throw new UsageError('--label: the model is conditioned on context vectors, not labels');
  const labels = typeof v.label === 'string' && cond.kind === 'labels' ? (() => {
    try {
      return parseLabelList(v.label as string, cond.numClasses);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  })() : undefined;
  return { cond, ...(labels ? { labels } : {}), ...(g !== undefined ? { guidance: g } : {}) };
}

/** Per-label lines of a conditional evaluation. */
function conditionalLines(c: ConditionalMetrics): string {
  return `  accuracy ${fmtNum(c.accuracy)} (1-NN label of each sample = the label asked for; guidance ${c.guidance})\n${c.perLabel.map((q) => `    label ${String(q.label).padEnd(4)} n ${String(q.n).padEnd(6)} accuracy ${fmtNum(q.accuracy)}  W2 ${fmtNum(q.w2)}`).join('\n')}\n`;
}

async function availableOr(method: Method, ctx: CliContext, command: string): Promise<boolean> {
  const impl = (await loadJobs()).getMethod(method);
  if (typeof impl === 'string') {
    ctx.stderr.write(`wgflow ${command}: ${impl}\n`);
    return false;
  }
  return true;
}

function browserOpts(v: Record<string, unknown>, ctx: CliContext, json: boolean) {
  return {
    chromium: v.chromium as string | undefined,
    gpu: gpuOption(v.gpu),
    onLog: (line: string) => ctx.stderr.write(`page: ${line}\n`),
    onBrowserStart: json ? undefined : (exe: string, gpu: boolean) => ctx.stderr.write(`browser: ${exe} (headless${gpu ? ', GPU flags' : ', SwiftShader'})\n`),
  };
}

function withInterrupt<T>(ctx: CliContext, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const remove = onInterrupt(() => {
    controller.abort(new Error('interrupted (Ctrl-C)'));
    ctx.stderr.write('\ninterrupted (Ctrl-C again quits at once)\n');
  });
  return run(controller.signal).finally(remove);
}

/** A sample or eval task as the command builds it; the runtime comes from --runtime. */
type CheckpointTask = Omit<SampleTaskArgs, 'runtime'> | Omit<EvalTaskArgs, 'runtime'>;

interface CheckpointRun<R> {
  result: R;
  runtime: 'node' | 'browser';
  json: boolean;
  /** The adapter the task reported (null if it reported none). */
  adapter: AdapterReport | null;
  /** performance.now() when the task started (each command times its own end). */
  startedAt: number;
}

/**
 * What `sample` and `eval` do alike once their own flags are checked: resolve Chromium for
 * --runtime browser, check the method can run here (null when not: the reason is on stderr and the
 * command exits 1), then run the task under Ctrl-C handling, reporting the adapter on stderr unless
 * --json. One place, so both commands keep the same runtime handling and output.
 */
async function runCheckpointTask<R>(v: Record<string, unknown>, ctx: CliContext, task: CheckpointTask): Promise<CheckpointRun<R> | null> {
  const runtime = (v.runtime as 'node' | 'browser' | undefined) ?? 'node';
  const json = v.json === true;
  if (runtime === 'browser') await resolveChromium(v.chromium as string | undefined);
  if (!(await availableOr(task.method, ctx, task.command))) return null;
  let adapter: AdapterReport | null = null;
  const startedAt = performance.now();
  const { result } = await withInterrupt(ctx, (signal) =>
    runTaskIn<R>(
      ctx,
      { ...task, runtime },
      {
        ...browserOpts(v, ctx, json),
        signal,
        onMessage: (m: TaskMessage) => {
          if (m.type === 'adapter') {
            adapter = m.adapter;
            if (!json) ctx.stderr.write(`adapter: ${adapterSummary(m.adapter)}\n`);
          }
        },
      },
    ),
  );
  return { result, runtime, json, adapter, startedAt };
}

export async function sampleCommand(argv: string[], ctx: CliContext): Promise<number> {
  const p = parseFlags('sample', argv, SAMPLE_FLAGS);
  if (p.help) {
    ctx.stdout.write(SAMPLE_HELP);
    return 0;
  }
  const v = p.values;
  const { method, model, ck, trainConfig } = await loadModel(v.checkpoint);
  const solver = solverFlags(v, p.given, method);
  const ckptPath = v.checkpoint as string;
  const out = path.resolve(ctx.cwd, (v.out as string | undefined) ?? path.join(path.dirname(ckptPath), 'samples.npy'));
  const ext = path.extname(out).toLowerCase();
  if (ext !== '.npy' && ext !== '.csv') throw new UsageError(`--out: expected a file name ending in .npy or .csv, got ${JSON.stringify(v.out)}`);
  checkOutFile('--out', out);
  const n = (v.n as number | undefined) ?? 10000;
  const seed = (v.seed as number | undefined) ?? 0;
  // An unpaired translation (trained from an image class): its map applied to that class's test images.
  if (trainConfig?.target && trainConfig.source && isImageDataset(trainConfig.source)) {
    for (const flag of ['solver', 'solver-steps', 'label', 'guidance', 'runtime']) if (p.given.has(flag)) throw new UsageError(`--${flag}: a translation model (${trainConfig.source} → ${trainConfig.target}) translates test images with RK4 (20 steps) in Node; accepted flags: --checkpoint, --n, --out, --json`);
    const t0 = performance.now();
    let tr;
    try {
      tr = await translateImages(model.config, model.params, { target: trainConfig.target, source: trainConfig.source, n: p.given.has('n') ? n : Math.min(n, 500) });
    } catch (e) {
      // translateImages names its argument n (--n here); its other refusals are about the checkpoint.
      if (e instanceof RangeError) throw new UsageError(e.message.startsWith('n: ') ? `--${e.message}` : e.message);
      throw e;
    }
    const D = tr.side * tr.side;
    writeFileAtomic(out, ext === '.npy' ? encodeNpy(tr.translations, [tr.n, D]) : encodeCsv(tr.translations, tr.n, D));
    const shown = displayPath(ctx.cwd, out);
    const seconds = (performance.now() - t0) / 1000;
    if (v.json) ctx.stdout.write(`${JSON.stringify({ type: 'sample', method, checkpoint: ckptPath, step: ck.state.step, n: tr.n, dim: D, translated_from: trainConfig.source, solver: 'rk4', solver_steps: 20, runtime: 'node', out: shown, seconds: +seconds.toFixed(3) })}\n`);
    else ctx.stdout.write(`wrote ${tr.n} × ${D} pixels to ${shown}: the first ${tr.n} test images of ${trainConfig.source} translated to ${trainConfig.target} (${method}, step ${ck.state.step}, ${seconds.toFixed(1)} s)\n`);
    return 0;
  }
  const cf = conditionFlags(v, p.given, method, model.config);
  if (cf.cond?.kind === 'context') throw new UsageError('sample: the model is conditioned on context vectors; sample it through the library (sample with context rows)');
  const condOpts = { ...(cf.labels ? { labels: cf.labels } : {}), ...(cf.guidance !== undefined ? { guidance: cf.guidance } : {}) };
  const run = await runCheckpointTask<SampleTaskResult>(v, ctx, { command: 'sample', method, checkpoint: model, options: { n, seed, ...solver, ...condOpts } });
  if (!run) return 1;
  const { result, runtime, json, adapter } = run;
  // A conditional model's samples carry their label as one more, last column (read back with --label-column).
  let s = result.labels ? withLabelColumn(result.samples, result.labels) : result.samples;
  // An image model's samples as pixels in [−1, 1] (train/images.ts; the PCA basis from the dataset's name).
  if (trainConfig?.target && isImageDataset(trainConfig.target)) s = imageSamplesToPixels(trainConfig.target, s, result.samples.dim);
  writeFileAtomic(out, ext === '.npy' ? encodeNpy(s.data, [s.n, s.dim]) : encodeCsv(s.data, s.n, s.dim));
  const shown = displayPath(ctx.cwd, out);
  const seconds = (performance.now() - run.startedAt) / 1000;
  if (json) {
    ctx.stdout.write(
      `${JSON.stringify({ type: 'sample', method, checkpoint: ckptPath, step: ck.state.step, n: s.n, dim: s.dim, ...(result.labels ? { label_column: s.dim, guidance: cf.guidance ?? 1 } : {}), solver: solver.solver ?? null, solver_steps: solver.solverSteps ?? null, nfe: result.nfe, seed, runtime, adapter: adapter ? adapterSummary(adapter) : null, out: shown, seconds: +seconds.toFixed(3) })}\n`,
    );
  } else {
    ctx.stdout.write(`wrote ${s.n} × ${s.dim} samples to ${shown} (${method}, step ${ck.state.step}${solver.solver ? `, ${solver.solver} ${solver.solverSteps} steps` : ''}${result.labels ? `; column ${s.dim} is each sample's label, guidance ${cf.guidance ?? 1}` : ''}, ${seconds.toFixed(1)} s)\n`);
  }
  return 0;
}

/**
 * `wgflow eval` of a model trained on an image dataset: the run's own image metrics again
 * (train/images.ts evaluateImageModel: the evaluator's Fréchet distance, class fractions, the
 * conditional accuracy, or the translation's fraction and pixel distances), in this process on
 * Node's WebGPU, keyed by --seed. W2 between PCA codes says little about images, so it is not given.
 */
async function evalImageModel(v: Record<string, unknown>, given: Set<string>, ctx: CliContext, m: { method: Method; model: ModelCheckpoint; step: number; target: string; source: string | null }): Promise<number> {
  for (const flag of ['target', 'n', 'guidance', 'label-column']) {
    if (given.has(flag)) throw new UsageError(`--${flag}: an image model (trained on ${m.target}) is evaluated with its own image metrics (1 000 samples, RK4 20 steps); accepted flags: --checkpoint, --seed, --solver, --solver-steps, --json`);
  }
  let solver: ImageSolver;
  try {
    solver = checkImageSolver({ solver: (v.solver as ImageSolver['solver'] | undefined) ?? 'rk4', steps: (v['solver-steps'] as number | undefined) ?? IMAGE_EVAL.solverSteps });
  } catch (e) {
    // checkImageSolver names its fields 'solver' and 'solver steps': the flags --solver and --solver-steps.
    if (e instanceof RangeError) throw new UsageError(`--${e.message.replace(/^solver steps/, 'solver-steps')}`);
    throw e;
  }
  const { target, source } = m;
  const seed = (v.seed as number | undefined) ?? 0;
  const json = !!v.json;
  const t0 = performance.now();
  const { metrics } = await evaluateImageModel(m.model.config, m.model.params, { target, source, seed, solver, note: (line) => ctx.stderr.write(`wgflow: ${line}\n`) });
  const seconds = (performance.now() - t0) / 1000;
  const out = { type: 'eval', method: m.method, checkpoint: v.checkpoint, step: m.step, source, target, seed, images: metrics, runtime: 'node', seconds: +seconds.toFixed(3) };
  if (json) {
    ctx.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  }
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const lines = [`${m.method} at step ${m.step}, ${target}${source && isImageDataset(source) ? ` from ${source}` : ''} (${metrics.model_space}; ${metrics.evaluator.solver}; ${seconds.toFixed(1)} s; evaluator ${pct(metrics.evaluator.test_accuracy)} test accuracy)`];
  const g = metrics.generation;
  if (g) {
    lines.push(`  Fréchet (classifier features, not Inception FID)  ${fmtNum(g.frechet)}  (floor ${fmtNum(g.frechet_floor)}, ${g.samples} samples)`);
    if (g.conditional_accuracy !== undefined) lines.push(`  conditional accuracy  ${pct(g.conditional_accuracy)}`);
  }
  const tr = metrics.translation;
  if (tr) {
    lines.push(`  translated ${tr.source_class} → ${tr.target_class}: ${pct(tr.target_class_fraction)} classified as ${tr.target_class} (sources: ${pct(tr.source_images_target_fraction)}), ${tr.images} test images`);
    lines.push(`  mean pixel distance  ${fmtNum(tr.mean_distance)}  (random pairing ${fmtNum(tr.random_pairing_distance)})`);
  }
  ctx.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

export async function evalCommand(argv: string[], ctx: CliContext): Promise<number> {
  const p = parseFlags('eval', argv, EVAL_FLAGS);
  if (p.help) {
    ctx.stdout.write(EVAL_HELP);
    return 0;
  }
  const v = p.values;
  const { method, model, ck, trainConfig } = await loadModel(v.checkpoint);
  const solver = solverFlags(v, p.given, method);
  if (p.given.has('data') && p.given.has('target')) throw new UsageError('--data and --target: give one of them');
  const dataFile = v.data as string | undefined;
  const cf = conditionFlags(v, p.given, method, model.config);
  if (cf.cond?.kind === 'context') throw new UsageError('eval: the model is conditioned on context vectors; evaluate it through the library');
  if (p.given.has('label-column') && !dataFile) throw new UsageError('--label-column: needs --data FILE');
  if (cf.cond && dataFile && !p.given.has('label-column')) throw new UsageError('--data: the model is conditional; give --label-column N, the column (from 1) of each row\'s label');
  const labelled = dataFile && p.given.has('label-column') ? loadLabelledData(dataFile, v['label-column'] as number) : null;
  if (labelled && cf.cond?.kind === 'labels' && labelled.labels.numClasses > cf.cond.numClasses) throw new UsageError(`--label-column: ${dataFile} has labels up to ${labelled.labels.numClasses - 1}; the model knows labels 0..${cf.cond.numClasses - 1}`);
  if (labelled && cf.cond?.kind === 'labels') labelled.labels.numClasses = cf.cond.numClasses;
  const data = labelled ? labelled.data : dataFile ? loadData(dataFile) : undefined;
  // An image run trains on its images' rows as data; the checkpoint's train_config names the dataset.
  if (!dataFile && trainConfig?.target && isImageDataset(trainConfig.target)) return evalImageModel(v, p.given, ctx, { method, model, step: ck.state.step, target: trainConfig.target, source: trainConfig.source });
  const target = dataFile ? null : typeof v.target === 'string' ? checkDataset('target', v.target) : ((model.config.target as string | null | undefined) ?? null);
  if (!dataFile && target === null) {
    const trainedOn = trainConfig?.data_file;
    if (!trainedOn) throw new UsageError('--target: the checkpoint names no target; pass --target NAME or --data FILE');
    throw new UsageError(`--data: the model was trained on the data file ${trainedOn}; pass --data FILE (or --target NAME)`);
  }
  const trainedDim = model.config.dim;
  if (typeof trainedDim === 'number') {
    if (data && data.dim !== trainedDim) throw new UsageError(`--data: ${dataFile} has ${data.dim} columns; the model was trained on dimension ${trainedDim}`);
    if (!data && target !== null && trainedDim !== 2) throw new UsageError(`--target: the datasets are 2-D; the model was trained on dimension ${trainedDim} (pass --data FILE with ${trainedDim} columns)`);
  }
  const n = (v.n as number | undefined) ?? 2048;
  const seed = (v.seed as number | undefined) ?? 0;
  const source = (model.config.source as string | null | undefined) ?? null;
  const run = await runCheckpointTask<EvalTaskResult>(v, ctx, { command: 'eval', method, checkpoint: model, options: { target, data, n, seed, source, ...solver, ...(labelled ? { labels: labelled.labels } : {}), ...(cf.guidance !== undefined ? { guidance: cf.guidance } : {}) } });
  if (!run) return 1;
  const { result, runtime, json, adapter } = run;
  const seconds = (performance.now() - run.startedAt) / 1000;
  const out = {
    type: 'eval',
    method,
    checkpoint: v.checkpoint,
    step: ck.state.step,
    source,
    target: target ?? dataFile ?? null,
    n,
    seed,
    w2: result.w2 ?? null,
    npe: result.npe ?? null,
    nll: result.nll ?? null,
    nfe: result.nfe ?? null,
    ...(result.conditional ? { conditional: result.conditional } : {}),
    runtime,
    adapter: adapter ? adapterSummary(adapter) : null,
    seconds: +seconds.toFixed(3),
  };
  if (json) ctx.stdout.write(`${JSON.stringify(out)}\n`);
  else {
    ctx.stdout.write(
      `${method} at step ${ck.state.step}, target ${out.target}, ${n} points (${seconds.toFixed(1)} s)\n` +
        `  W2   ${fmtNum(out.w2)}\n  NPE  ${fmtNum(out.npe)}\n  NLL  ${fmtNum(out.nll)}${out.nll !== null ? ' nats' : ''}\n` +
        (result.conditional ? conditionalLines(result.conditional) : ''),
    );
  }
  return 0;
}

function adapterLines(a: AdapterReport, userAgent?: string): string {
  const lim = a.limits;
  const key = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage'];
  const lines = [
    `  adapter        ${adapterSummary(a)}`,
    `  vendor         ${a.vendor}`,
    `  architecture   ${a.architecture}`,
    ...(a.device ? [`  device         ${a.device}`] : []),
    ...(a.description ? [`  description    ${a.description}`] : []),
    `  kind           ${a.kind}${a.kind === 'software' ? ' (WebGPU on the CPU: correct but slow)' : ''}`,
    ...(userAgent ? [`  browser        ${userAgent}`] : []),
    `  features       ${a.features.join(', ') || '(none)'}`,
    '  limits',
    ...Object.keys(lim)
      .sort((x, y) => (key.includes(x) ? key.indexOf(x) : 99) - (key.includes(y) ? key.indexOf(y) : 99) || x.localeCompare(y))
      .map((k) => `    ${k.padEnd(42)} ${lim[k]}`),
  ];
  return `${lines.join('\n')}\n`;
}

export async function infoCommand(argv: string[], ctx: CliContext): Promise<number> {
  const p = parseFlags('info', argv, INFO_FLAGS);
  if (p.help) {
    ctx.stdout.write(INFO_HELP);
    return 0;
  }
  const v = p.values;
  const json = v.json === true;
  if (v.datasets) {
    if (json) for (const [name, d] of Object.entries(DATASETS)) ctx.stdout.write(`${JSON.stringify({ type: 'dataset', name, dim: d.dim, description: d.description, entropy: d.entropy ?? null })}\n`);
    else {
      ctx.stdout.write('datasets (for --source and --target):\n');
      for (const [name, d] of Object.entries(DATASETS)) ctx.stdout.write(`  ${name.padEnd(22)} ${d.description}\n`);
      for (const [name, d] of Object.entries(IMAGE_DATASETS)) ctx.stdout.write(`  ${name.padEnd(22)} ${d.description} (flow matching; @pcaK or @pixels picks the model space, default PCA 64)\n`);
    }
    return 0;
  }
  const which = (v.runtime as string | undefined) ?? 'all';
  const runtimes: ('node' | 'browser')[] = which === 'all' ? ['node', 'browser'] : [which as 'node' | 'browser'];
  let ok = 0;
  if (!json) ctx.stdout.write(`wgflow ${ctx.version}, Node ${process.version}, ${process.platform}-${process.arch}\n`);
  for (const runtime of runtimes) {
    try {
      const { result } = await runTaskIn<InfoTaskResult>(ctx, { command: 'info', runtime }, { ...browserOpts(v, ctx, true), onMessage: () => {} });
      ok++;
      if (json) ctx.stdout.write(`${JSON.stringify({ type: 'info', ...result.adapter, summary: adapterSummary(result.adapter), user_agent: result.userAgent ?? null })}\n`);
      else ctx.stdout.write(`\n${runtime === 'node' ? 'node (Dawn)' : 'browser (headless Chromium)'}\n${adapterLines(result.adapter, result.userAgent)}`);
    } catch (e) {
      const msg = (e as Error).message;
      if (json) ctx.stdout.write(`${JSON.stringify({ type: 'info', runtime, error: msg })}\n`);
      else ctx.stdout.write(`\n${runtime}: no adapter: ${msg}\n`);
    }
  }
  return ok > 0 ? 0 : 1;
}

export async function benchCommand(argv: string[], ctx: CliContext): Promise<number> {
  // The suite owns its flags (it validates them and exits 2 on bad ones): pass them through.
  if (argv.includes('--help') || argv.includes('-h')) {
    ctx.stdout.write(BENCH_HELP);
    return 0;
  }
  const entry = path.join(ctx.root, 'bench', 'run.ts');
  if (!existsSync(entry)) {
    // An installed package ships no bench/ (the peers it measures against are devDependencies).
    ctx.stderr.write(`wgflow bench: the benchmark suite (bench/run.ts) runs from a checkout of wgflow with its devDependencies (git clone, npm ci); ${ctx.root} has none. Nothing was run\n`);
    return 1;
  }
  // The suite parses the same flags; run it as its own process (it manages its own browser).
  const child = spawn(process.execPath, [path.join(ctx.root, 'scripts', 'run-ts.mjs'), entry, ...argv], { stdio: 'inherit', cwd: ctx.cwd });
  // Ctrl-C reaches the child through the terminal's process group: wait for it to wind down.
  // SIGTERM (sent to us alone) is passed on.
  const ignore = () => {};
  const forward = () => child.kill('SIGTERM');
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' ? 130 : 1)));
    });
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', forward);
  }
}

/** Samples with their labels appended as the last column. */
function withLabelColumn(s: { data: Float32Array; n: number; dim: number }, labels: Int32Array): { data: Float32Array; n: number; dim: number } {
  const dim = s.dim + 1;
  const data = new Float32Array(s.n * dim);
  for (let i = 0; i < s.n; i++) {
    data.set(s.data.subarray(i * s.dim, (i + 1) * s.dim), i * dim);
    data[i * dim + s.dim] = labels[i]!;
  }
  return { data, n: s.n, dim };
}
