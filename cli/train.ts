/** `wgflow train` (SPEC §4). */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { adapterSummary } from '../engine/runtime';
import type { AdapterReport } from '../engine/backend';
import { UsageError, parseFlags, type FlagSpec } from './args';
import { readCheckpoint, writeCheckpoint } from '../train/checkpoint';
import { checkOutDir } from './paths';
import { removeLeftovers } from './leftovers';
import { checkMemoryBound, estimateTraining } from './resources';
import { checkResumableState, checkTrainConfig } from './stored-config';
import { BROWSER_FLAGS, MODEL_FLAGS, OPTION_FLAGS, defaultOutDir, mergeResume, resolveModel, type StoredTrainConfig } from './config';
import { DEFAULT_STEPS_GPU, DEFAULT_STEPS_SOFTWARE, TRAIN_HELP } from './help';
import { modelWeights, type TrainState } from '../train/contract';
import { ProgressView } from './progress';
import { checkPictures, outputPath, writeOutput } from './outputs';
import { isImageDataset } from '../datasets/image-names';
import { evaluateImageRun } from './images';
import { METHOD_NAMES, renderReport, type RunResult } from './report';
import { loadJobs, resolveChromium, runTaskIn } from './runner';
import type { TaskMessage, TrainFailure, TrainTaskFailure, TrainTaskResult } from './tasks';
import { type CliContext, displayPath, gpuOption, onInterrupt, shellQuote } from './util';

export const TRAIN_FLAGS: FlagSpec[] = [
  ...MODEL_FLAGS,
  { name: 'checkpoint-every', kind: { type: 'int', min: 1 } },
  { name: 'resume', kind: { type: 'bool' } },
  { name: 'runtime', kind: { type: 'enum', values: ['browser', 'node'] } },
  ...BROWSER_FLAGS,
  { name: 'out', kind: { type: 'string', meta: 'a directory' } },
  { name: 'json', kind: { type: 'bool' } },
];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The command line that reproduces a run (resolved values, so defaults are visible). */
function reproduceCommand(s: StoredTrainConfig, runtime: string, out: string, outGiven: boolean): string {
  const parts = ['wgflow', 'train', '--method', s.method];
  if (s.source) parts.push('--source', s.source);
  if (s.data_file) parts.push('--data', s.data_file);
  else if (s.target) parts.push('--target', s.target);
  parts.push('--steps', String(s.steps), '--batch', String(s.batch), '--lr', String(s.lr), '--seed', String(s.seed), '--runtime', runtime);
  for (const [k, v] of Object.entries(s.options)) {
    if ((OPTION_FLAGS as readonly string[]).includes(k)) parts.push(`--${k}`, String(v));
    else parts.push('--option', `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  if (outGiven) parts.push('--out', out);
  return parts.map(shellQuote).join(' ');
}

export async function trainCommand(argv: string[], ctx: CliContext): Promise<number> {
  const p = parseFlags('train', argv, TRAIN_FLAGS);
  if (p.help) {
    ctx.stdout.write(TRAIN_HELP);
    return 0;
  }
  const v = p.values;
  const json = v.json === true;
  const runtime = (v.runtime as 'browser' | 'node' | undefined) ?? 'browser';
  const { gpuDetected } = await import('../browser/chromium');
  const gpuMachine = gpuDetected();
  const defaultSteps = gpuMachine ? DEFAULT_STEPS_GPU : DEFAULT_STEPS_SOFTWARE;
  if (runtime === 'node' && p.given.has('chromium')) throw new UsageError('--chromium: only used with --runtime browser');
  const chromium = runtime === 'browser' ? await resolveChromium(v.chromium as string | undefined) : undefined;

  // Configuration (and, with --resume, the checkpoint it continues).
  let resolved = resolveModel(p, (v.steps as number | undefined) ?? defaultSteps);
  const outGiven = p.given.has('out');
  const out = path.resolve(ctx.cwd, (v.out as string | undefined) ?? defaultOutDir(resolved.stored));
  const outShown = displayPath(ctx.cwd, out);
  // Before anything is read from or written to --out: a folder, or creatable, writable, on a disk.
  checkOutDir('--out', out);
  const ckptPath = path.join(out, 'model.safetensors');
  let resume: TrainState | undefined;
  if (v.resume) {
    if (!existsSync(ckptPath)) {
      throw new UsageError(`--resume: no checkpoint at ${displayPath(ctx.cwd, ckptPath)} (train without --resume first, or pass the --out of the run to continue)`);
    }
    let ck;
    let prev: StoredTrainConfig;
    try {
      ck = readCheckpoint(ckptPath);
      if (ck.metadata.train_config === undefined) throw new UsageError('metadata "train_config" is missing (it was not written by wgflow train, so there is no run to continue)');
      prev = checkTrainConfig(ck.trainConfig);
      checkResumableState(ck.state, ck.config);
    } catch (e) {
      throw new UsageError(`--resume: ${e instanceof UsageError ? `${displayPath(ctx.cwd, ckptPath)}: ` : ''}${(e as Error).message}`);
    }
    resolved = mergeResume(p, prev, ck.state.step, outShown);
    resume = ck.state;
  } else if (existsSync(ckptPath) && !json) {
    ctx.stderr.write(`note: ${displayPath(ctx.cwd, ckptPath)} exists and will be replaced (use --resume to continue that run instead)\n`);
  }
  const { config, stored } = resolved;

  // Is the trainer there? (Checked in Node before a browser is started for nothing.)
  const impl = (await loadJobs()).getMethod(config.method);
  if (typeof impl === 'string') {
    ctx.stderr.write(`wgflow train: ${impl}\n`);
    return 1;
  }

  // What intermediate checkpoints store as their config: the trainer's resolved configuration
  // when it can give it up front (so they can be sampled from), else the command line's.
  let checkpointConfig: Record<string, unknown> = stored as unknown as Record<string, unknown>;
  try {
    checkpointConfig = impl.resolveConfig?.(config) ?? checkpointConfig;
  } catch (e) {
    // The trainer rejects this configuration: say so now, before a browser starts (exit 2).
    throw new UsageError(`${config.method}: ${(e as Error).message}`);
  }
  // The checkpoint continued must hold this model's parameters (checked where the trainer says what its model is).
  if (resume && impl.resolveConfig && impl.checkConfig) {
    try {
      impl.checkConfig(checkpointConfig, resume.params);
    } catch (e) {
      throw new UsageError(`--resume: ${displayPath(ctx.cwd, ckptPath)}: ${(e as Error).message}`);
    }
  }
  // Resource bounds before any work: estimated memory against the stated bound (cli/resources.ts).
  checkMemoryBound(estimateTraining(config, config.data?.dim ?? 2));

  mkdirSync(out, { recursive: true });
  removeLeftovers(out); // killed runs' temporary checkpoints in --out, their runtime and profile folders
  const checkpointEvery = (v['checkpoint-every'] as number | undefined) ?? Math.max(1, Math.ceil(config.steps / 10));
  const mode = json ? 'json' : ctx.stdout.isTTY ? 'tty' : 'plain';
  const startStep = resume?.step ?? 0;
  const view = new ProgressView(mode, ctx.stdout, startStep);
  const emit = (o: Record<string, unknown>) => json && ctx.stdout.write(`${JSON.stringify(o)}\n`);
  const say = (line: string) => view.note(line);

  const what = `${METHOD_NAMES[config.method] ?? config.method}: ${stored.source ? `${stored.source} → ` : ''}${stored.target ?? stored.data_file}`;
  emit({ type: 'start', method: stored.method, source: stored.source, target: stored.target ?? stored.data_file, steps: config.steps, batch: config.batch, lr: config.lr, seed: config.seed, runtime, options: config.options, out: outShown, resume_from: resume ? startStep : null });
  say(`wgflow train  ${what}, ${config.steps} steps${p.given.has('steps') || resume ? '' : ` (default ${gpuMachine ? 'with a GPU' : 'for software WebGPU'})`}, batch ${config.batch}, lr ${config.lr}, seed ${config.seed}`);
  if (resume) say(`resuming from step ${startStep} (${displayPath(ctx.cwd, ckptPath)})`);
  say(`output: ${outShown}/`);

  let adapter: AdapterReport | null = null;
  let userAgent: string | undefined;
  let lastCheckpointStep = startStep;
  let evaluating = false;
  const adapterText = () => (adapter ? adapterSummary(adapter) : 'unknown');
  const trainConfigJson = stored as unknown as Record<string, unknown>;
  const onMessage = (m: TaskMessage) => {
    switch (m.type) {
      case 'adapter':
        adapter = m.adapter;
        userAgent = m.userAgent;
        emit({ type: 'adapter', ...m.adapter, summary: adapterSummary(m.adapter), user_agent: m.userAgent ?? null });
        say(`adapter: ${adapterSummary(m.adapter)}`);
        break;
      case 'progress':
        if (evaluating) break;
        view.update(m);
        // The trainer evaluates after its last step (test metrics, samples, pictures): on software
        // WebGPU that takes from seconds to a minute, so say so instead of sitting on a full bar.
        if (m.step >= m.steps) {
          evaluating = true;
          view.finish();
          say('evaluating the trained model (test metrics, samples, pictures)…');
        }
        break;
      case 'checkpoint':
        // A trainer may also put its resolved configuration in state.extra.config.
        writeCheckpoint(outputPath(out, 'model.safetensors'), { config: isObject(m.state.extra?.config) ? m.state.extra.config : checkpointConfig, trainConfig: trainConfigJson, state: m.state, runtime, adapter: adapterText() });
        lastCheckpointStep = m.state.step;
        emit({ type: 'checkpoint', step: m.state.step, path: displayPath(ctx.cwd, ckptPath) });
        break;
    }
  };

  const controller = new AbortController();
  let interrupted = false;
  const removeInterrupt = onInterrupt(() => {
    interrupted = true;
    controller.abort(new Error('interrupted (Ctrl-C)'));
    view.finish();
    ctx.stderr.write(`\ninterrupted: stopping${runtime === 'browser' ? ' and closing the browser' : ''} (Ctrl-C again quits at once)\n`);
  });

  const started = new Date();
  const t0 = performance.now();
  let res: TrainTaskResult | TrainTaskFailure;
  try {
    ({ result: res } = await runTaskIn<TrainTaskResult | TrainTaskFailure>(
      ctx,
      { command: 'train', runtime, config, resume, checkpointEvery },
      {
        onMessage,
        signal: controller.signal,
        chromium,
        gpu: gpuOption(v.gpu),
        onLog: (line) => {
          view.note(`page: ${line}`);
          if (json) ctx.stderr.write(`page: ${line}\n`);
        },
        onBrowserStart: (exe, gpu) => say(`browser: ${exe} (headless${gpu ? ', GPU flags' : ', SwiftShader'})`),
      },
    ));
  } catch (e) {
    view.finish();
    if (interrupted) {
      ctx.stderr.write(
        lastCheckpointStep > startStep || resume
          ? `stopped. The last checkpoint (step ${lastCheckpointStep}) is in ${displayPath(ctx.cwd, ckptPath)}; continue with the same command and --resume\n`
          : 'stopped before the first checkpoint.\n',
      );
      return 130;
    }
    throw e;
  } finally {
    removeInterrupt();
  }
  view.finish();
  const wall = (performance.now() - t0) / 1000;
  const finished = new Date();
  // What metrics.json records about every run, finished or failed.
  const runRecord = {
    lr: stored.lr,
    data_file: stored.data_file,
    options: stored.options,
    resumed_from: resume ? startStep : null,
    wall_s: +wall.toFixed(3),
    started_at: started.toISOString(),
    finished_at: finished.toISOString(),
  };
  const lossRecord = (losses: { step: number; loss: number }[]) => losses.map((l) => [l.step, Number.isFinite(l.loss) ? l.loss : null]);

  if ('failure' in res) {
    // Training stopped (NaN/Inf, device lost): no evaluation, no model written over the last
    // checkpoint; metrics.json says what happened and the message says what to do (exit 1).
    const f: TrainFailure = res.failure;
    const checkpointStep = lastCheckpointStep > startStep || resume ? lastCheckpointStep : null;
    const failed = {
      method: stored.method,
      source: stored.source,
      target: stored.target ?? stored.data_file,
      batch: stored.batch,
      seed: stored.seed,
      runtime,
      adapter: adapterSummary(res.adapter),
      failure: { kind: f.kind, step: f.step, message: f.message },
      checkpoint_step: checkpointStep,
      ...runRecord,
      losses: lossRecord(f.losses),
    };
    writeOutput(out, 'metrics.json', `${JSON.stringify(failed, null, 2)}\n`);
    const ckpt = displayPath(ctx.cwd, ckptPath);
    const kept = checkpointStep !== null ? `the last checkpoint (step ${checkpointStep}) is kept in ${ckpt}` : 'no checkpoint was written by this run';
    const text =
      f.kind === 'nonfinite'
        ? `${f.message}.\n  Stopped; ${kept} (a non-finite state is never written).`
        : `the GPU device was lost during training, after step ${f.step} (${f.message}).\n  ${
            checkpointStep !== null ? `${kept[0]!.toUpperCase()}${kept.slice(1)}; continue with the same command and --resume.` : 'No checkpoint was written by this run; run the command again.'
          }`;
    emit({ type: 'failed', kind: f.kind, step: f.step, message: f.message, checkpoint_step: checkpointStep, metrics: displayPath(ctx.cwd, path.join(out, 'metrics.json')) });
    ctx.stderr.write(`wgflow train: ${text}\n  Details: ${displayPath(ctx.cwd, path.join(out, 'metrics.json'))}\n`);
    return 1;
  }

  // Files: final checkpoint (the trainer's resolved config), pictures, metrics, report.
  // What the task reported is data (from a page, for the browser runtime): only our own picture
  // names are written, and only inside --out (cli/outputs.ts).
  let pictures = checkPictures(res.pictures);
  // Image runs: the model sampled and judged by the engine-trained evaluator (train/images.ts);
  // image grids replace the 2-D scatter plots (cli/images.ts).
  let images: Record<string, unknown> | null = null;
  if (stored.target && isImageDataset(stored.target)) {
    say('sampling and judging images (evaluator trained by wgflow; train/images.ts)…');
    const r = await evaluateImageRun(res.config, modelWeights(res.state), stored.target, stored.source, stored.seed, say);
    pictures = { ...pictures, ...checkPictures(r.pictures) };
    images = r.metrics;
  }
  writeCheckpoint(outputPath(out, 'model.safetensors'), { config: res.config, trainConfig: trainConfigJson, state: res.state, runtime, adapter: adapterSummary(res.adapter) });
  for (const [file, bytes] of Object.entries(pictures)) writeOutput(out, file as keyof typeof pictures, bytes);
  const m = res.metrics;
  const result: RunResult = {
    type: 'result',
    method: stored.method,
    source: stored.source,
    target: stored.target ?? stored.data_file,
    steps: res.state.step,
    batch: stored.batch,
    seed: stored.seed,
    runtime,
    adapter: adapterSummary(res.adapter),
    w2: m.w2 ?? null,
    npe: m.npe ?? null,
    nll: m.nll ?? null,
    loss: Number.isFinite(m.loss) ? m.loss : null,
    ms_per_step: Number.isFinite(m.ms_per_step) ? m.ms_per_step : null,
    dispatches_per_step: Number.isFinite(m.dispatches_per_step) ? m.dispatches_per_step : null,
    out: outShown,
  };
  const { type: _type, ...resultFields } = result;
  const metrics = {
    ...resultFields,
    ...runRecord,
    // Conditional models with labels: accuracy and W2 per label (cfm/conditional-eval.ts).
    ...(m.conditional ? { conditional: m.conditional } : {}),
    // The fusion level the step ran at, and why it fell below the one asked for (train/contract.ts FusionReport).
    ...(m.fusion ? { fusion: m.fusion } : {}),
    ...(images ? { images } : {}),
    config: res.config,
    adapter_info: { ...res.adapter, user_agent: userAgent ?? null },
    samples: res.samples,
    losses: lossRecord(res.state.losses),
    files: ['metrics.json', 'model.safetensors', ...Object.keys(pictures), 'report.html'],
  };
  writeOutput(out, 'metrics.json', `${JSON.stringify(metrics, null, 2)}\n`);
  const html = renderReport({
    result,
    config: res.config,
    adapter: res.adapter,
    userAgent,
    pictures,
    wallSeconds: wall,
    startedAt: started,
    finishedAt: finished,
    command: reproduceCommand(stored, runtime, outShown, outGiven),
    resumedFrom: resume ? startStep : null,
    fusion: m.fusion ?? null,
    lr: stored.lr,
    dataFile: stored.data_file,
    version: ctx.version,
    images,
  });
  writeOutput(out, 'report.html', html);

  if (interrupted) {
    // The trainer honoured the abort by stopping early and evaluating what it had: keep the files.
    ctx.stderr.write(`stopped at step ${res.state.step} of ${config.steps}; the files in ${outShown}/ describe that state. Continue with the same command and --resume\n`);
  }
  if (json) {
    ctx.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    const f = (x: number | null, d = 4) => (x === null ? '–' : Number(x.toPrecision(d)).toString());
    ctx.stdout.write(
      `done: ${res.state.step - startStep} steps in ${wall.toFixed(1)} s (${f(result.ms_per_step, 3)} ms/step, ${f(result.dispatches_per_step, 3)} dispatches/step)\n` +
        `  W2 ${f(result.w2)}   NPE ${f(result.npe)}   NLL ${f(result.nll)}   loss ${f(result.loss)}\n` +
        (m.conditional ? `  label accuracy ${f(m.conditional.accuracy)} (lowest label ${f(Math.min(...m.conditional.perLabel.map((q) => q.accuracy)))}; guidance ${m.conditional.guidance})\n` : '') +
        `  wrote ${outShown}/: ${metrics.files.join(', ')}\n` +
        `  report: ${path.join(outShown, 'report.html')}\n`,
    );
  }
  return interrupted ? 130 : 0;
}
