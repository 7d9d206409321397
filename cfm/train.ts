/**
 * Conditional flow matching training (SPEC §3; torchcfm 1.0.7's recipe): the flow-matching family
 * of the training driver (`cfmTrainer`: config resolution, the step, evaluation; the loop, loss
 * readback, guard, checkpoints and timing are train/driver.ts), plus sampling and evaluation of a
 * trained model (`sampleCfm`, `evalCfm`, and the checkpoint-level `cfmSample` / `cfmEvaluate` in
 * the shape of train/methods.ts).
 *
 * A step: the source and target batches are drawn on the CPU from per-step Philox streams (so a
 * resumed run draws exactly what the uninterrupted one would), paired by exact OT on the CPU when
 * asked (cfm/ot.ts), uploaded once, and trained on by the fused GPU step (cfm/step.ts; GPU
 * Sinkhorn for entropic couplings), its loss into the step's loss ring.
 *
 * Evaluation: RK4 (100 steps) from 2 048 fresh source points with the path energy; W2 against 2 048
 * fresh target samples; NPE = |E∫‖v‖² − W2²(source, target)| / W2²(source, target); trajectories
 * of 256 points at 9 times; NLL of 512 fresh target points by the CNF (exact divergence, RK4 with
 * 50 steps) when the source is N(0, I) (fm included), else null.
 *
 * The configuration (options, defaults, checks) is cfm/config.ts.
 */
import type { ConditionalMetrics, DataMatrix, Evaluation, FamilyTrainer, TrainConfig, TrainingRun, TrainState } from '../train/contract';
import type { EvalOptions, EvalResult, ModelCheckpoint, SampleOptions, SampleResult } from '../train/methods';
import { conditionalBatch, condTargetSampler, labelledSource } from './conditional';
import { evaluateConditional, sampleConditional } from './conditional-eval';
import { learningRate, NonFiniteError, tensor, type FusionLevel, type RingRead } from '../engine';
import { Rng } from '../engine/philox';
import { getDataset } from '../datasets/toy2d';
import { isImageDataset } from '../datasets/image-names';
import { logLikelihood } from './likelihood';
import { meanOf, normalizedPathEnergy, w2 } from './metrics';
import { VectorField } from './mlp';
import { odeSolve, readSolution, SOLVERS, type Solver } from './ode';
import { exactPairs, type Pairing, type SinkhornOptions } from './ot';
import { CfmStepper, type AdamState } from './step';
import { configFrom, mlpConfigOf, paramsToFlat, resolveConfig, type CfmConfig } from './config';

// ---- samplers ----

/** Random-number streams: disjoint Philox streams per purpose (and per training step). */
export const STREAM = { init: 1, evalSource: 2, evalTarget: 3, trajectories: 4, nll: 5, sample: 6 } as const;
export const stepStream = (step: number, purpose: number) => (0x10000000 + step * 4 + purpose) >>> 0;

export interface PointSampler {
  dim: number;
  sample(n: number, rng: Rng): Float32Array;
}

function gaussianSampler(dim: number): PointSampler {
  return { dim, sample: (n, rng) => Float32Array.from({ length: n * dim }, () => rng.normal()) };
}

export function sourceSampler(c: Pick<CfmConfig, 'source' | 'dim'>, data?: DataMatrix): PointSampler {
  if (!c.source || c.source === 'gaussian') return gaussianSampler(c.dim);
  if (isImageDataset(c.source)) {
    if (!data) throw new RangeError(`source "${c.source}" is an image dataset: its rows must be given (sourceData; datasets/images.ts imageData)`);
    return targetSampler({ target: null, dim: c.dim }, data);
  }
  const ds = getDataset(c.source);
  return { dim: 2, sample: (n, rng) => ds.sample(n, rng) };
}

export function targetSampler(c: Pick<CfmConfig, 'target' | 'dim'>, data?: DataMatrix): PointSampler {
  if (data) {
    return {
      dim: data.dim,
      sample: (n, rng) => {
        const out = new Float32Array(n * data.dim);
        for (let i = 0; i < n; i++) {
          const r = rng.int(data.n);
          out.set(data.data.subarray(r * data.dim, (r + 1) * data.dim), i * data.dim);
        }
        return out;
      },
    };
  }
  if (!c.target) throw new Error('no target: give a target dataset name or data');
  if (c.target === 'gaussian' && c.dim !== 2) return gaussianSampler(c.dim);
  const ds = getDataset(c.target);
  return { dim: 2, sample: (n, rng) => ds.sample(n, rng) };
}

/** The step's batch, paired as the coupling asks: x0 rows then x1 rows (2B × d). */
export function stepBatch(c: CfmConfig, step: number, src: PointSampler, tgt: PointSampler): Float32Array {
  const B = c.batch;
  const d = c.dim;
  const x1 = tgt.sample(B, new Rng(c.seed, stepStream(step, 1)));
  const x0 = c.source ? src.sample(B, new Rng(c.seed, stepStream(step, 0))) : new Float32Array(B * d);
  const xy = new Float32Array(2 * B * d);
  if (c.coupling === 'exact') {
    const p = exactPairs(x0, x1, B, d, c.pairing, new Rng(c.seed, stepStream(step, 2)));
    for (let b = 0; b < B; b++) {
      for (let k = 0; k < d; k++) {
        xy[b * d + k] = x0[p.i[b]! * d + k]!;
        xy[(B + b) * d + k] = x1[p.j[b]! * d + k]!;
      }
    }
  } else {
    xy.set(x0, 0);
    xy.set(x1, B * d);
  }
  return xy;
}

// ---- parameters ----

function modelFrom(c: CfmConfig, params: TrainState['params']): VectorField {
  return new VectorField(mlpConfigOf(c), paramsToFlat(c, params));
}

// ---- evaluation ----

export interface EvalOutput {
  w2: number;
  npe: number;
  nll: number | null;
  nfe: number;
  samples: Float32Array;
  targetSamples: Float32Array;
  trajectories: Float32Array[];
}

/** The evaluation of SPEC §3 with fresh samples from the eval streams of `seed`. */
export async function evaluateModel(vf: VectorField, c: CfmConfig, opts: { data?: DataMatrix; sourceData?: DataMatrix; seed?: number; solver?: Solver; solverSteps?: number; n?: number; trajectories?: boolean; nll?: boolean } = {}): Promise<EvalOutput> {
  const seed = opts.seed ?? c.seed;
  const d = c.dim;
  const n = opts.n ?? c.evalPoints;
  const src = sourceSampler(c, opts.sourceData);
  const tgt = targetSampler(c, opts.data);
  const x0 = src.sample(n, new Rng(seed, STREAM.evalSource));
  const xt = tgt.sample(n, new Rng(seed, STREAM.evalTarget));
  const x0t = tensor(x0, [n, d]);
  const sol = await odeSolve(vf, x0t, { solver: opts.solver ?? c.solver, steps: opts.solverSteps ?? c.solverSteps, energy: true, fusion: c.fusion });
  const samples = await sol.x.data();
  const energy = await sol.energy!.data();
  sol.x.dispose();
  sol.energy!.dispose();
  x0t.dispose();
  const bad = samples.reduce((k, x) => k + (Number.isFinite(x) ? 0 : 1), 0);
  if (bad > 0) throw new NonFiniteError(`evaluation: ${bad} of ${samples.length} sample coordinates are NaN or infinite (the learned vector field overflows when integrated). Try a lower --lr`, c.steps, []);
  const w2gen = w2(samples, xt, d);
  const w2st = w2(x0, xt, d);
  const npe = normalizedPathEnergy(meanOf(energy), w2st * w2st);
  const trajectories: Float32Array[] = [];
  if (opts.trajectories !== false && c.trajectoryPoints > 0) {
    const m = c.trajectoryPoints;
    const tr0 = tensor(src.sample(m, new Rng(seed, STREAM.trajectories)), [m, d]);
    const times = Array.from({ length: c.trajectoryTimes }, (_, i) => i / (c.trajectoryTimes - 1));
    const tr = await odeSolve(vf, tr0, { solver: c.solver === 'dopri5' ? 'rk4' : c.solver, steps: c.solverSteps, times, fusion: c.fusion });
    for (const t of tr.trajectory) {
      trajectories.push(await t.data());
      t.dispose();
    }
    tr.x.dispose();
    tr0.dispose();
  }
  let nllValue: number | null = null;
  if (opts.nll !== false && c.nllPoints > 0) {
    const m = c.nllPoints;
    const pts = tensor(tgt.sample(m, new Rng(seed, STREAM.nll)), [m, d]);
    const { logp } = await logLikelihood(vf, pts, { steps: c.nllSteps, divergence: d <= 8 ? 'exact' : 'hutchinson', seed });
    pts.dispose();
    nllValue = -meanOf(logp);
  }
  return { w2: w2gen, npe, nll: nllValue, nfe: sol.nfe, samples, targetSamples: xt, trajectories };
}

// ---- training (the loop is train/driver.ts; this is the CFM part of it) ----

/** What cfmRun needs of a CFM-family model: VectorField, or [SF]2M's two networks (cfm/sf2m.ts). */
interface RunModel {
  params: { read(): Promise<TrainState['params']>; load(p: TrainState['params']): void };
  dispose(): void;
}

/** What cfmRun needs of its stepper: CfmStepper (cfm/step.ts) or Sf2mStepper (cfm/sf2m-step.ts). */
interface RunStepper {
  /** The level the step runs at, and why it is below the one asked for (a network too wide for the fused kernels). */
  readonly fusion: FusionLevel;
  readonly fallback: string | null;
  step(batch: Float32Array, step: number, lr: number): void;
  readRing(from: number, to: number): Promise<RingRead>;
  adamState(): Promise<AdamState>;
  loadAdamState(s: AdamState): void;
  /** The moving average of the weights, named as the model's parameters, or null when none is kept. */
  averagedWeights?(): Promise<TrainState['params'] | null>;
  dispose(): void;
}

/** An evaluation's output (evaluateModel, or a conditional model's) as the driver's Evaluation. */
export function asEvaluation(ev: Omit<EvalOutput, 'nfe'> & { conditional?: ConditionalMetrics | null }, dim: number): Evaluation {
  return {
    metrics: { w2: ev.w2, npe: ev.npe, nll: ev.nll, ...(ev.conditional ? { conditional: ev.conditional } : {}) },
    samples: { data: ev.samples, n: ev.samples.length / dim, dim },
    target: { data: ev.targetSamples, n: ev.targetSamples.length / dim, dim },
    trajectories: ev.trajectories,
  };
}

/** The fusion level a run asks its step for: the `fusion` option, else the older `step` option's (fused → step, tape → layer). */
export function askedFusion(c: CfmConfig): FusionLevel {
  return c.fusion ?? (c.stepMode === 'tape' ? 'layer' : 'step');
}

/** The GPU Sinkhorn of a Sinkhorn-coupled run (cfm/ot.ts), or undefined for the CPU's couplings. */
export function sinkhornOf(c: CfmConfig): { opts: SinkhornOptions; pairing: Pairing } | undefined {
  if (c.coupling !== 'sinkhorn') return undefined;
  return { opts: { reg: c.reg!, normalize: c.normalizeCost, maxIter: c.sinkhornMaxIter, tol: c.sinkhornTol, epsScaling: c.sinkhornEpsScaling }, pairing: c.pairing };
}

/**
 * The driver's TrainingRun (train/contract.ts) for a CFM-family model: one shell for the five
 * matchers (prepare below) and [SF]2M (cfm/sf2m-train.ts), which differ only in the model, its
 * stepper, the step's batch and the evaluation. Ownership: `model` is the run's from here on; the
 * stepper is built here, a resumed state loaded into both, and both are disposed with the run (or
 * here, when building fails). Every random draw is a function of (seed, step) — batches from
 * per-step Philox streams, the GPU matcher and Sinkhorn sampling with draw = step — so the snapshot
 * records those counters, which is all a resume needs.
 */
export function cfmRun<M extends RunModel>(c: CfmConfig, model: M, resume: TrainState | undefined, parts: {
  stepper: (model: M) => RunStepper;
  batch: (step: number) => Float32Array;
  evaluate: (model: M) => Promise<Evaluation>;
  divergenceAdvice: string;
}): TrainingRun {
  let stepper: RunStepper | null = null;
  try {
    stepper = parts.stepper(model);
    if (resume) {
      model.params.load(resume.params);
      stepper.loadAdamState(resume.adam);
    }
  } catch (e) {
    stepper?.dispose();
    model.dispose();
    throw e;
  }
  const st = stepper;
  let at = resume?.step ?? 0;
  return {
    step(step) {
      st.step(parts.batch(step), step, learningRate(c.schedule ?? 'constant', c.lr, step, c.steps));
      at = step + 1;
    },
    readLosses: (from, to) => st.readRing(from, to),
    async snapshot() {
      return {
        params: await model.params.read(),
        adam: await st.adamState(),
        extra: { rng: 'philox-per-step', dataStreams: { source: stepStream(at, 0), target: stepStream(at, 1), pairing: stepStream(at, 2) }, gpuDraw: at, sinkhornDraw: c.coupling === 'sinkhorn' ? at : null },
      };
    },
    divergenceAdvice: parts.divergenceAdvice,
    fusion: { asked: askedFusion(c), used: st.fusion, fallback: st.fallback },
    // A run that keeps a moving average of the weights is judged with it (as sampling from its
    // checkpoint is, train/contract.ts modelWeights); the raw weights come back after, for the
    // snapshots and a resume.
    async evaluate() {
      const avg = st.averagedWeights ? await st.averagedWeights() : null;
      if (!avg) return parts.evaluate(model);
      const raw = await model.params.read();
      model.params.load(avg);
      try {
        return await parts.evaluate(model);
      } finally {
        model.params.load(raw);
      }
    },
    dispose() {
      st.dispose();
      model.dispose();
    },
  };
}

async function prepare(cfg: TrainConfig, resolved: Record<string, unknown>, resume?: TrainState): Promise<TrainingRun> {
  const c = resolved as unknown as CfmConfig;
  if (c.method === 'sf2m') throw new Error('sf2m trains a flow and a score network: its trainer is cfm/sf2m-train.ts sf2mTrainer (train/registry.ts trainerOf)');
  const src = sourceSampler(c, cfg.sourceData);
  const tgt = targetSampler(c, cfg.data);
  if (tgt.dim !== c.dim || (c.source && src.dim !== c.dim)) throw new RangeError(`source and target dimensions differ (${src.dim} vs ${tgt.dim})`);
  const condBatch = c.condition ? conditionalStepBatch(c, cfg, src) : null;
  return cfmRun(c, new VectorField(mlpConfigOf(c), new Rng(c.seed, STREAM.init)), resume, {
    stepper: (vf) =>
      new CfmStepper(vf, {
        method: c.method,
        sigma: c.sigma,
        batch: c.batch,
        seed: c.seed,
        mode: c.stepMode,
        fusion: c.fusion,
        // A conditional run pairs within classes on the CPU (cfm/conditional.ts), Sinkhorn included.
        sinkhorn: c.condition ? undefined : sinkhornOf(c),
        adam: { lr: c.lr, weightDecay: c.weightDecay, emaDecay: c.ema ?? 0 },
      }),
    batch: (step) => (condBatch ? condBatch(step) : stepBatch(c, step, src, tgt)),
    divergenceAdvice: `Try a lower --lr (this run: ${c.lr}), or check the data for very large values`,
    async evaluate(vf) {
      return asEvaluation(c.condition ? await evaluateCond(vf, c, { data: cfg.data, labels: cfg.labels, context: cfg.context }) : await evaluateModel(vf, c, { data: cfg.data, sourceData: cfg.sourceData }), c.dim);
    },
  });
}

/**
 * A conditional run's step batch (cfm/conditional.ts): the target with its labels or context rows
 * from the step's target stream (the same points an unconditional run draws), the source from its
 * stream (by class when the source set has the target's classes), pairs within classes from the
 * pairing stream, label dropout from a fourth stream.
 */
function conditionalStepBatch(c: CfmConfig, cfg: TrainConfig, src: PointSampler): (step: number) => Float32Array {
  const cond = c.condition!;
  const tgt = condTargetSampler(cond, c.target, cfg.data, cfg.labels, cfg.context);
  const byClass = labelledSource(cond, c.source);
  return (step) => {
    const target = tgt.sample(c.batch, new Rng(c.seed, stepStream(step, 1)));
    const srcRng = new Rng(c.seed, stepStream(step, 0));
    const x0 = byClass ? null : c.source ? src.sample(c.batch, srcRng) : new Float32Array(c.batch * c.dim);
    return conditionalBatch({
      cond, batch: c.batch, dim: c.dim, labelDropout: c.labelDropout ?? 0, x0, byClass, target,
      coupling: c.coupling, pairing: c.pairing, reg: c.reg, normalizeCost: c.normalizeCost, sinkhornMaxIter: c.sinkhornMaxIter, sinkhornTol: c.sinkhornTol,
      rngs: { source: srcRng, pairing: new Rng(c.seed, stepStream(step, 2)), dropout: new Rng(c.seed, stepStream(step, 3)) },
    });
  };
}

/** evaluateModel's conditional counterpart (cfm/conditional-eval.ts), on the same streams. */
async function evaluateCond(vf: VectorField, c: CfmConfig, opts: { data?: DataMatrix; labels?: TrainConfig['labels']; context?: DataMatrix; seed?: number; solver?: Solver; solverSteps?: number; n?: number; guidance?: number; trajectories?: boolean }) {
  const seed = opts.seed ?? c.seed;
  const ev = await evaluateConditional({
    vf, cond: c.condition!, target: c.target, source: c.source, src: sourceSampler(c), data: opts.data, labels: opts.labels, context: opts.context,
    n: opts.n ?? c.evalPoints, solver: opts.solver ?? c.solver, solverSteps: opts.solverSteps ?? c.solverSteps, guidance: opts.guidance ?? c.guidance ?? 1,
    streams: { source: new Rng(seed, STREAM.evalSource), target: new Rng(seed, STREAM.evalTarget), trajectories: new Rng(seed, STREAM.trajectories) },
    trajectoryPoints: opts.trajectories === false ? 0 : c.trajectoryPoints, trajectoryTimes: c.trajectoryTimes, fusion: c.fusion,
  });
  return { ...ev, nll: null };
}

/** The flow-matching family for the training driver (train/driver.ts). */
export const cfmTrainer: FamilyTrainer = {
  family: 'cfm',
  resolveConfig: (cfg) => ({ ...resolveConfig(cfg) }),
  prepare,
};

// ---- sample / eval (the CLI's `sample` and `eval`) ----

/** n samples from a trained model: fresh source points integrated to t = 1 (NFE counted). */
export async function sampleCfm(config: Record<string, unknown>, params: TrainState['params'], n: number, solver: Solver = 'rk4', steps = 100, seed = 0, trajectoryTimes = 0, cond: { labels?: ArrayLike<number>; context?: Float32Array; guidance?: number } = {}): Promise<{ samples: Float32Array; nfe: number; trajectories: Float32Array[]; labels?: Int32Array | null }> {
  const c = configFrom(config);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`sample: n must be a positive integer, got ${n}`);
  if (!SOLVERS.includes(solver)) throw new RangeError(`sample: unknown solver "${solver}"; accepted: ${SOLVERS.join(', ')}`);
  if (!c.condition && (cond.labels || cond.context || cond.guidance !== undefined)) throw new RangeError('sample: labels, context and guidance are for conditional models; this checkpoint is unconditional');
  const vf = modelFrom(c, params);
  try {
    if (c.condition) {
      return await sampleConditional({ vf, cond: c.condition, source: c.source, src: sourceSampler(c), n, solver, solverSteps: steps, guidance: cond.guidance ?? 1, rng: new Rng(seed, STREAM.sample), trajectoryTimes, labels: cond.labels, context: cond.context });
    }
    const x0 = tensor(sourceSampler(c).sample(n, new Rng(seed, STREAM.sample)), [n, c.dim]);
    const times = trajectoryTimes >= 2 ? Array.from({ length: trajectoryTimes }, (_, i) => i / (trajectoryTimes - 1)) : [];
    const sol = await odeSolve(vf, x0, { solver, steps, times });
    const { x: samples, trajectory: trajectories } = await readSolution(sol);
    x0.dispose();
    return { samples, nfe: sol.nfe, trajectories };
  } finally {
    vf.dispose();
  }
}

/** W2, NPE and NLL of a trained model against `targetName` (default: the training target). */
export async function evalCfm(config: Record<string, unknown>, params: TrainState['params'], targetName?: string | null, opts: { data?: DataMatrix; n?: number; seed?: number; solver?: Solver; solverSteps?: number; source?: string | null; labels?: TrainConfig['labels']; guidance?: number } = {}): Promise<{ w2: number; npe: number; nll: number | null; nfe: number; conditional?: ConditionalMetrics }> {
  const base = configFrom(config);
  const c: CfmConfig = { ...base, target: opts.data ? null : (targetName ?? base.target), source: opts.source !== undefined && base.method !== 'fm' ? opts.source : base.source };
  if (!opts.data && !c.target) throw new RangeError('eval: the model was trained on user data; pass the data (or a target dataset name)');
  if (c.target) getDataset(c.target);
  c.nllPoints = (c.method === 'fm' || c.source === 'gaussian') && !c.condition ? c.nllPoints || 512 : 0;
  if (c.condition?.kind === 'context') throw new RangeError('eval: a model conditioned on context vectors is evaluated with its training run (the CLI has no context input)');
  if (c.condition && opts.data && !opts.labels) throw new RangeError('eval: a conditional model needs the labels of the data rows (--label-column N)');
  if (!c.condition && (opts.labels || opts.guidance !== undefined)) throw new RangeError('eval: labels and guidance are for conditional models; this checkpoint is unconditional');
  const vf = modelFrom(c, params);
  try {
    if (c.condition) {
      const ev = await evaluateCond(vf, c, { data: opts.data, labels: opts.labels, n: opts.n, seed: opts.seed, solver: opts.solver, solverSteps: opts.solverSteps, guidance: opts.guidance, trajectories: false });
      return { w2: ev.w2, npe: ev.npe, nll: null, nfe: ev.nfe, ...(ev.conditional ? { conditional: ev.conditional } : {}) };
    }
    const ev = await evaluateModel(vf, c, { data: opts.data, n: opts.n, seed: opts.seed, solver: opts.solver, solverSteps: opts.solverSteps, trajectories: false });
    return { w2: ev.w2, npe: ev.npe, nll: ev.nll, nfe: ev.nfe };
  } finally {
    vf.dispose();
  }
}

/** Why `--solver sde` is refused: the SDE needs the score network only [SF]2M trains. */
export const sdeRefusal = (method: string) => `solver: "sde" needs a score network, which only sf2m trains (this checkpoint is ${method}); accepted: ${SOLVERS.join(', ')}`;

/** train/methods.ts MethodImpl.sample for CFM checkpoints. */
export async function cfmSample(ckpt: ModelCheckpoint, opts: SampleOptions): Promise<SampleResult> {
  const c = configFrom(ckpt.config);
  if (opts.solver === 'sde') throw new RangeError(sdeRefusal(c.method));
  const r = await sampleCfm(ckpt.config, ckpt.params, opts.n, opts.solver ?? 'rk4', opts.solverSteps ?? 100, opts.seed, opts.trajectoryTimes ?? 0, { labels: opts.labels, context: opts.context, guidance: opts.guidance });
  return { samples: { data: r.samples, n: opts.n, dim: c.dim }, trajectories: r.trajectories.length ? r.trajectories : undefined, nfe: r.nfe, ...(r.labels ? { labels: r.labels } : {}) };
}

/** train/methods.ts MethodImpl.evaluate for CFM checkpoints. */
export async function cfmEvaluate(ckpt: ModelCheckpoint, opts: EvalOptions): Promise<EvalResult> {
  if (opts.solver === 'sde') throw new RangeError(sdeRefusal(configFrom(ckpt.config).method));
  const r = await evalCfm(ckpt.config, ckpt.params, opts.target, { data: opts.data, n: opts.n, seed: opts.seed, solver: opts.solver, solverSteps: opts.solverSteps, source: opts.source, labels: opts.labels, guidance: opts.guidance });
  return { w2: r.w2, npe: r.npe, nll: r.nll, nfe: r.nfe, ...(r.conditional ? { conditional: r.conditional } : {}) };
}

