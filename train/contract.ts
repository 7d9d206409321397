/**
 * The contract between the command line (and the browser page) and the trainers: cfm/ and flows/
 * each export a TrainJob; the CLI parses flags into a TrainConfig, runs the job in Node or in the
 * page, streams Progress, writes checkpoints and pictures from TrainOutcome. Nothing here touches
 * the GPU, so it bundles for both runtimes.
 */

export type CfmMethod = 'otcfm' | 'icfm' | 'fm' | 'sbcfm' | 'vpcfm';
export type FlowMethod = 'realnvp' | 'nice' | 'glow' | 'planar' | 'radial' | 'maf';
export type Method = CfmMethod | FlowMethod;
export const CFM_METHODS: readonly CfmMethod[] = ['otcfm', 'icfm', 'fm', 'sbcfm', 'vpcfm'];
export const FLOW_METHODS: readonly FlowMethod[] = ['realnvp', 'nice', 'glow', 'planar', 'radial', 'maf'];

/** A data matrix (row-major n × dim), e.g. from --data FILE. */
export interface DataMatrix {
  data: Float32Array;
  n: number;
  dim: number;
}

export interface TrainConfig {
  method: Method;
  /** CFM source dataset name (SPEC §2); null for flows (the base is N(0, I)) and for `fm`. */
  source: string | null;
  /** Target dataset name, or null when `data` is given. */
  target: string | null;
  /** User data (--data FILE) used as the target. */
  data?: DataMatrix;
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
  elapsedMs: number;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainState {
  step: number;
  params: Record<string, { data: Float32Array; shape: number[] }>;
  adam: { t: number; m: Float32Array; v: Float32Array };
  /** Trainer-specific counters (RNG draws, ...) as JSON-safe values. */
  extra: Record<string, unknown>;
  losses: { step: number; loss: number }[];
}

export interface TrainHooks {
  onProgress?: (p: Progress) => void;
  /** Report progress about this often (ms; default 500). Each report is one small readback. */
  progressIntervalMs?: number;
  /** Called every `checkpointEvery` steps and at the end with the full state. */
  onCheckpoint?: (s: TrainState) => void | Promise<void>;
  checkpointEvery?: number;
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
    loss: number;
    ms_per_step: number;
    dispatches_per_step: number;
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
