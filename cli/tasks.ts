/**
 * The work a command does on the GPU, written once for both runtimes: Node calls runTask() in
 * process; the browser page (page/entry.ts) calls it with ctx.post as `post`. Arguments and results
 * are plain data with typed arrays (they cross the page boundary as such). Browser-safe.
 */
import { DeviceLostError, init, NonFiniteError } from '../engine';
import type { AdapterReport } from '../engine';
import type { WebGPUBackend } from '../engine/webgpu-backend';
import type { DataMatrix, Method, Progress, TrainConfig, TrainOutcome, TrainState } from '../train/contract';
import type { EvalResult, JobsModule, MethodImpl, ModelCheckpoint, SampleOptions } from '../train/methods';
import { renderPictures, type Pictures } from './pictures';
import { checkAdapterLimits, estimateTraining } from './resources';

export interface TrainTaskArgs {
  command: 'train';
  runtime: 'node' | 'browser';
  config: TrainConfig;
  resume?: TrainState;
  checkpointEvery: number;
  progressIntervalMs?: number;
}

export interface SampleTaskArgs {
  command: 'sample';
  runtime: 'node' | 'browser';
  method: Method;
  checkpoint: ModelCheckpoint;
  options: SampleOptions;
}

export interface EvalTaskArgs {
  command: 'eval';
  runtime: 'node' | 'browser';
  method: Method;
  checkpoint: ModelCheckpoint;
  options: Parameters<MethodImpl['evaluate']>[1];
}

export interface InfoTaskArgs {
  command: 'info';
  runtime: 'node' | 'browser';
}

export type TaskArgs = TrainTaskArgs | SampleTaskArgs | EvalTaskArgs | InfoTaskArgs;

/** Messages a task posts while it runs, in order. */
export type TaskMessage =
  | { type: 'adapter'; adapter: AdapterReport; userAgent?: string }
  | ({ type: 'progress' } & Progress)
  | { type: 'checkpoint'; state: TrainState };

export interface TrainTaskResult {
  adapter: AdapterReport;
  config: TrainOutcome['config'];
  state: TrainState;
  metrics: TrainOutcome['metrics'];
  pictures: Pictures;
  /** Generated and target sample counts and dimension (the arrays stay where they were made). */
  samples: { n: number; dim: number };
  trajectories: number;
}

/** A training run that ended in a way the CLI reports without a stack (exit 1). */
export interface TrainFailure {
  /** 'nonfinite': the guard saw a NaN/Inf loss or parameter; 'device-lost': the GPU device was lost. */
  kind: 'nonfinite' | 'device-lost';
  message: string;
  /** nonfinite: the step (1-based) with the bad value; device-lost: the last step known done. */
  step: number;
  /** The losses recorded up to that point (device-lost: up to the last checkpoint). */
  losses: TrainState['losses'];
}

/** What a train task returns instead of TrainTaskResult when it failed (a plain value, so it crosses the page boundary). */
export interface TrainTaskFailure {
  adapter: AdapterReport;
  failure: TrainFailure;
}

/** The failure `e` stands for, or null for any other error (which then propagates with its stack). */
function trainFailure(e: unknown, backend: WebGPUBackend, lastStep: number, lastLosses: TrainState['losses']): TrainFailure | null {
  if (e instanceof NonFiniteError) return { kind: 'nonfinite', message: e.message, step: e.step, losses: e.losses };
  const lost = backend.lostReason;
  if (e instanceof DeviceLostError || lost) return { kind: 'device-lost', message: lost ?? (e as Error).message, step: lastStep, losses: lastLosses };
  return null;
}

export interface SampleTaskResult {
  adapter: AdapterReport;
  samples: DataMatrix;
  nfe: number | null;
  /** Conditional models: each sample's label. */
  labels?: Int32Array;
}

export interface EvalTaskResult extends EvalResult {
  adapter: AdapterReport;
}

export interface InfoTaskResult {
  adapter: AdapterReport;
  userAgent?: string;
}

function methodOrThrow(jobs: JobsModule, method: Method): MethodImpl {
  const impl = jobs.getMethod(method);
  if (typeof impl === 'string') throw new Error(impl);
  return impl;
}

const userAgent = (): string | undefined => (typeof navigator !== 'undefined' && typeof document !== 'undefined' ? navigator.userAgent : undefined);

export async function runTask(jobs: JobsModule, args: TaskArgs, post: (m: TaskMessage) => void, signal?: AbortSignal): Promise<unknown> {
  const backend = await init({ runtime: args.runtime });
  const adapter = backend.adapter;
  post({ type: 'adapter', adapter, userAgent: userAgent() });
  switch (args.command) {
    case 'info':
      return { adapter, userAgent: userAgent() } satisfies InfoTaskResult;
    case 'train': {
      const impl = methodOrThrow(jobs, args.config.method);
      // Now that the adapter is known: its buffer limits against the run's largest buffer (cli/resources.ts).
      checkAdapterLimits(estimateTraining(args.config, args.config.data?.dim ?? 2), adapter.limits);
      // What a failure report needs: the last step known done and the last checkpoint's losses.
      let lastStep = args.resume?.step ?? 0;
      let lastLosses = args.resume?.losses ?? [];
      let outcome;
      try {
        outcome = await impl.job.run(
          args.config,
          {
            onProgress: (p) => {
              lastStep = Math.max(lastStep, p.step);
              post({ type: 'progress', ...p });
            },
            progressIntervalMs: args.progressIntervalMs ?? 500,
            onCheckpoint: (state) => {
              post({ type: 'checkpoint', state });
              lastStep = Math.max(lastStep, state.step);
              lastLosses = state.losses;
            },
            checkpointEvery: args.checkpointEvery,
            signal,
          },
          args.resume,
        );
      } catch (e) {
        const failure = trainFailure(e, backend, lastStep, lastLosses);
        if (!failure) throw e;
        return { adapter, failure } satisfies TrainTaskFailure;
      }
      const pictures = await renderPictures(outcome);
      return {
        adapter,
        config: outcome.config,
        state: outcome.state,
        metrics: outcome.metrics,
        pictures,
        samples: { n: outcome.samples.n, dim: outcome.samples.dim },
        trajectories: outcome.trajectories?.length ?? 0,
      } satisfies TrainTaskResult;
    }
    case 'sample': {
      const impl = methodOrThrow(jobs, args.method);
      const r = await impl.sample(args.checkpoint, args.options);
      return { adapter, samples: r.samples, nfe: r.nfe ?? null, ...(r.labels ? { labels: r.labels } : {}) } satisfies SampleTaskResult;
    }
    case 'eval': {
      const impl = methodOrThrow(jobs, args.method);
      const r = await impl.evaluate(args.checkpoint, args.options);
      return { adapter, ...r } satisfies EvalTaskResult;
    }
  }
}
