/**
 * A method as its callers use it: training (train/contract.ts TrainJob, served by the one driver)
 * plus sampling from and evaluating a trained model given its checkpoint. train/registry.ts builds
 * one MethodImpl per method from the model families. Browser-safe (no Node imports): the page runs
 * these too.
 */
import type { ConditionalMetrics, DataMatrix, LabelSet, Method, TrainConfig, TrainJob, TrainState } from './contract';

/** The model part of a checkpoint: what sampling and evaluation need. */
export interface ModelCheckpoint {
  /** The training configuration as resolved by the trainer (metadata "config"). */
  config: Record<string, unknown>;
  params: TrainState['params'];
  step: number;
}

/** ODE solvers of every CFM model, and 'sde' (Euler–Maruyama; [SF]2M only: it needs the score network). */
export type Solver = 'rk4' | 'euler' | 'midpoint' | 'dopri5' | 'sde';
export const SOLVERS: readonly Solver[] = ['rk4', 'euler', 'midpoint', 'dopri5', 'sde'];

export interface SampleOptions {
  n: number;
  seed: number;
  /** CFM only. */
  solver?: Solver;
  solverSteps?: number;
  /** CFM: also return positions at this many evenly spaced times (including t = 0 and 1). */
  trajectoryTimes?: number;
  /**
   * Conditional models (options.condition 'labels'): the label of each sample (length n), or the
   * labels to cycle through (sample i gets labels[i mod length]); default every class in turn.
   */
  labels?: ArrayLike<number>;
  /** Conditional models ('context'): the context rows (n × cols). */
  context?: Float32Array;
  /** Conditional CFM: classifier-free guidance scale w (default 1; 0 = unconditional). */
  guidance?: number;
}

export interface SampleResult {
  samples: DataMatrix;
  trajectories?: Float32Array[];
  /** Number of vector-field evaluations (CFM). */
  nfe?: number | null;
  /** Conditional models with labels: each sample's label. */
  labels?: Int32Array;
}

export interface EvalOptions {
  /** Target dataset name (default: the checkpoint's), or data. */
  target: string | null;
  data?: DataMatrix;
  /** CFM source (default: the checkpoint's). */
  source?: string | null;
  /** Points for W2 (SPEC §3: 2 048). */
  n: number;
  seed: number;
  solver?: Solver;
  solverSteps?: number;
  /** Labels of `data`'s rows, for a conditional model (per-label evaluation). */
  labels?: LabelSet;
  /** Conditional CFM: classifier-free guidance scale w (default 1). */
  guidance?: number;
}

export interface EvalResult {
  w2: number | null;
  npe: number | null;
  nll: number | null;
  nfe?: number | null;
  /** Conditional models with labels: accuracy and W2 per label. */
  conditional?: ConditionalMetrics;
}

export interface MethodImpl {
  family: 'cfm' | 'flow';
  job: TrainJob;
  /**
   * The configuration the trainer will resolve from `cfg` (defaults filled in), when it can say so
   * before training: stored in intermediate checkpoints so that they can be sampled from.
   */
  resolveConfig?(cfg: TrainConfig): Record<string, unknown>;
  /**
   * Checks a checkpoint's stored `config` against its parameters before any work is done, and
   * returns it typed; throws an Error naming the field and what is accepted. The CLI adds it
   * (cli/jobs.ts: cli/stored-config.ts, the flags' rules); a registry without it (the library's,
   * the CLI tests' fake) gets the generic checks only.
   */
  checkConfig?(config: Record<string, unknown>, params: TrainState['params']): Record<string, unknown>;
  sample(ckpt: ModelCheckpoint, opts: SampleOptions): Promise<SampleResult>;
  evaluate(ckpt: ModelCheckpoint, opts: EvalOptions): Promise<EvalResult>;
}

/** What train/registry.ts, cli/jobs.ts (or a WGFLOW_JOBS replacement) export. */
export interface JobsModule {
  /** The implementation of `method`, or a string saying why it is not available. */
  getMethod(method: Method): MethodImpl | string;
}

export { familyOf } from './contract';
