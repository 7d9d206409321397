/**
 * The training contract: what a caller (the CLI, the browser page, a library user) gives a training
 * run (TrainConfig, TrainHooks, a TrainState to resume) and gets back (Progress, TrainState,
 * TrainOutcome), and what a model family (cfm/, flows/) supplies to the one driver in
 * train/driver.ts (FamilyTrainer: config resolution, a TrainingRun stepper, evaluation).
 *
 * Why the family-facing half is here, at the bottom of the training layer: cfm/ and flows/ implement
 * these interfaces, so they import this file (types and the method lists only) and nothing else of
 * train/; tests/import-graph.test.ts holds them to that. Nothing here touches the GPU or Node, so it
 * bundles for both runtimes.
 */
import type { LabelSet } from '../datasets/labels';

export type CfmMethod = 'otcfm' | 'icfm' | 'fm' | 'sbcfm' | 'vpcfm' | 'sf2m';
export type FlowMethod = 'realnvp' | 'nice' | 'glow' | 'planar' | 'radial' | 'maf' | 'nsf';
export type Method = CfmMethod | FlowMethod;
export const CFM_METHODS: readonly CfmMethod[] = ['otcfm', 'icfm', 'fm', 'sbcfm', 'vpcfm', 'sf2m'];
export const FLOW_METHODS: readonly FlowMethod[] = ['realnvp', 'nice', 'glow', 'planar', 'radial', 'maf', 'nsf'];

export function familyOf(method: Method): 'cfm' | 'flow' {
  return (CFM_METHODS as readonly string[]).includes(method) ? 'cfm' : 'flow';
}

/** A data matrix (row-major n × dim), e.g. from --data FILE. */
export interface DataMatrix {
  data: Float32Array;
  n: number;
  dim: number;
}

/** Class labels of a data matrix's rows (conditional generation; datasets/labels.ts checks them). */
export type { LabelSet };

/**
 * What a conditional model is conditioned on (options.condition; train/options.ts resolveCondition):
 * 'labels' = one-hot of numClasses context columns, 'context' = `cols` given columns per row.
 */
export type Condition = { kind: 'labels'; numClasses: number } | { kind: 'context'; cols: number };

export interface TrainConfig {
  method: Method;
  /** CFM source dataset name (SPEC §2); null for flows (the base is N(0, I)) and for `fm`. */
  source: string | null;
  /** Target dataset name, or null when `data` is given. */
  target: string | null;
  /** User data (--data FILE) used as the target. */
  data?: DataMatrix;
  /** Labels of `data`'s rows (options.condition 'labels' with user data). */
  labels?: LabelSet;
  /** Context vectors of `data`'s rows (n × cols; options.condition 'context'). */
  context?: DataMatrix;
  /**
   * Rows the source is drawn from, when the source is an image dataset (unpaired translation,
   * issue 14: `source` names it, e.g. "fashion-mnist:7"; datasets/images.ts loads it).
   */
  sourceData?: DataMatrix;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  /** Method-specific options (sigma, ot solver, sinkhorn reg, pairing, hidden widths, layers, ...). */
  options: Record<string, unknown>;
}

export interface Progress {
  step: number;
  steps: number;
  /** Mean loss over the steps since the last report. */
  loss: number;
  /** Since the run (this process's part of it, when resumed) started, compile time included. */
  elapsedMs: number;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainState {
  step: number;
  params: Record<string, { data: Float32Array; shape: number[] }>;
  /** Adam's step count and moments; `ema`: the moving average of the weights (flat, in the parameters' order) when the run keeps one. */
  adam: { t: number; m: Float32Array; v: Float32Array; ema?: Float32Array };
  /** Trainer-specific counters (RNG draws, ...) as JSON-safe values. */
  extra: Record<string, unknown>;
  losses: { step: number; loss: number }[];
}

/**
 * The weights a trained model is sampled and judged with: the moving average of the parameters when
 * the run kept one (`adam.ema`, flat in the parameters' order, split here by their shapes), else the
 * parameters themselves. Throws when the average does not match the parameters' size.
 */
export function modelWeights(state: Pick<TrainState, 'params' | 'adam'>): TrainState['params'] {
  const e = state.adam.ema;
  if (!e) return state.params;
  const total = Object.values(state.params).reduce((a, p) => a + p.data.length, 0);
  if (e.length !== total) throw new Error(`the moving average of the weights has ${e.length} values for ${total} parameters`);
  const out: TrainState['params'] = Object.create(null);
  let off = 0;
  for (const [name, p] of Object.entries(state.params)) {
    out[name] = { data: e.slice(off, off + p.data.length), shape: [...p.shape] };
    off += p.data.length;
  }
  return out;
}

export interface TrainHooks {
  onProgress?: (p: Progress) => void;
  /** Report progress about this often (ms; default 500). Each report is one small readback. */
  progressIntervalMs?: number;
  /**
   * Called every `checkpointEvery` steps, at the end of training (before evaluation), and when the
   * run is aborted, with the full state; never with a non-finite state.
   */
  onCheckpoint?: (s: TrainState) => void | Promise<void>;
  checkpointEvery?: number;
  /**
   * Aborting stops the run before its next step: the state reached is handed to onCheckpoint (so
   * it can be resumed) and the run rejects with `signal.reason` (no evaluation).
   */
  signal?: AbortSignal;
}

export interface TrainOutcome {
  /** Fully resolved configuration (defaults filled in), stored in the checkpoint's metadata. */
  config: Record<string, unknown>;
  state: TrainState;
  metrics: {
    w2: number | null;
    npe: number | null;
    nll: number | null;
    /** Conditional models with labels: accuracy per label (ConditionalMetrics). */
    conditional?: ConditionalMetrics;
    /** Mean of the last ≤ 100 per-step losses. */
    loss: number;
    /**
     * Wall time per step of this run, every method alike: from the end of its first step (whose
     * time is mostly pipeline compilation, so excluded) to the end of its last, loss readbacks and
     * checkpoints included, over the steps in between. NaN when the run made fewer than 2 steps.
     */
    ms_per_step: number;
    dispatches_per_step: number;
    /** The fusion level the training step ran at, and why it is below the one asked for (null: it is not). */
    fusion?: FusionReport;
  };
  /** Generated samples (n × dim) and fresh target samples for the samples picture. */
  samples: DataMatrix;
  target: DataMatrix;
  /** CFM: sample positions at a few times (each n × dim), for the trajectories picture. */
  trajectories?: Float32Array[];
  /** Flows (2-D): log-density on a grid for a density picture. */
  density?: { values: Float32Array; gw: number; gh: number; bounds: [number, number, number, number] };
}

export interface TrainJob {
  /**
   * Runs training (continuing from `resume` when given) then evaluation; the backend is already
   * initialised. Throws NonFiniteError (engine/loss-ring.ts) when a loss or parameter turns NaN/Inf
   * (before any checkpoint of that state), and DeviceLostError when the GPU device is lost; the
   * CLI reports both without a stack (cli/tasks.ts).
   */
  run(cfg: TrainConfig, hooks?: TrainHooks, resume?: TrainState): Promise<TrainOutcome>;
}

/** A model family's evaluation of a trained model (what TrainOutcome carries besides the state). */
export interface Evaluation {
  metrics: { w2: number | null; npe: number | null; nll: number | null; conditional?: ConditionalMetrics };
  samples: DataMatrix;
  target: DataMatrix;
  trajectories?: Float32Array[];
  density?: TrainOutcome['density'];
}

/**
 * A labelled conditional model's evaluation: samples generated for the evaluation target's labels;
 * accuracy = the fraction whose nearest target point (1-NN among the evaluation target points) has
 * the label asked for; per label also its W2 against that label's target points.
 */
export interface ConditionalMetrics {
  accuracy: number;
  guidance: number;
  perLabel: { label: number; n: number; accuracy: number; w2: number | null }[];
}

/** What the losses of steps [from, to) read back (engine/loss-ring.ts RingRead). */
export interface LossRead {
  losses: ArrayLike<number>;
  /** 0-based step whose guard was raised (NaN/Inf loss or parameter), or null. */
  firstBad: number | null;
}

/**
 * One training run of a model family, built by FamilyTrainer.prepare with the model initialised
 * (or loaded from the resumed state). The driver owns the loop; this owns the GPU work.
 */
/**
 * The engine fusion level a run's training step actually runs at (engine/config.ts), and why it
 * runs below the one asked for: a network wider than the whole-network kernels (kernels/mlp, 256)
 * runs at `layer` instead of `mlp`/`step` for that network. Reported in metrics.json and the report.
 */
export interface FusionReport {
  /** The level asked for (the run's `fusion` option, else the family's default). */
  asked: string;
  /** The level the step runs at. */
  used: string;
  /** Why `used` is below `asked`, or null. */
  fallback: string | null;
}

export interface TrainingRun {
  /** Queues step `step` (0-based) on the GPU, its loss into the loss ring: no readback. */
  step(step: number): void;
  /** Losses of steps [from, to) (to − from ≤ LOSS_SLOTS) and the guard: one readback. */
  readLosses(from: number, to: number): Promise<LossRead>;
  /** Parameters, Adam state and trainer counters now (the driver adds step and losses). */
  snapshot(): Promise<Pick<TrainState, 'params' | 'adam' | 'extra'>>;
  /** What to try when the guard is raised, appended to the driver's message. */
  divergenceAdvice: string;
  /** The fusion level of the step (see FusionReport). */
  fusion?: FusionReport;
  /** Evaluates the trained model (throws NonFiniteError when its samples are not finite). */
  evaluate(): Promise<Evaluation>;
  dispose(): void;
}

/** What a model family supplies to the driver (train/driver.ts). */
export interface FamilyTrainer {
  family: 'cfm' | 'flow';
  /**
   * The fully resolved configuration (defaults filled in, options checked; stored in every
   * checkpoint) or an Error naming the bad value and what is accepted. No GPU work.
   */
  resolveConfig(cfg: TrainConfig): Record<string, unknown>;
  /**
   * Builds the model, optimiser and loss ring for `cfg` (`resolved` is resolveConfig's answer for
   * it); loads `resume` or initialises the model. Needs the backend.
   */
  prepare(cfg: TrainConfig, resolved: Record<string, unknown>, resume?: TrainState): Promise<TrainingRun>;
}
