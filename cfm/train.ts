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
 * Options (TrainConfig.options; numbers may come as strings from the command line): sigma, ot
 * ('exact' | 'sinkhorn'), reg, normalizeCost, sinkhornMaxIter, sinkhornTol, sinkhornEpsScaling
 * (defaults: cfm/ot.ts SINKHORN_DEFAULTS), pairing ('replacement' | 'permutation'), hidden
 * ("64,64,64"), activation, solver, solverSteps, step ('fused' | 'tape'), weightDecay, evalPoints,
 * trajectoryPoints, trajectoryTimes, nllPoints, nllSteps; condition ('none' | 'labels' | 'context',
 * train/options.ts), labelDropout (classifier-free guidance's p, default 0.1 when conditional) and
 * guidance (the evaluation's scale w, default 1): cfm/conditional.ts. Unknown options are an error
 * naming the accepted ones. The shared fields (steps, batch, lr, seed, datasets) are checked by
 * train/options.ts.
 */
import type { CfmMethod, Condition, ConditionalMetrics, DataMatrix, Evaluation, FamilyTrainer, TrainConfig, TrainingRun, TrainState } from '../train/contract';
import type { EvalOptions, EvalResult, ModelCheckpoint, SampleOptions, SampleResult } from '../train/methods';
import { conditionCols, resolveCondition, TRAIN_DEFAULTS } from '../train/options';
import { conditionalBatch, condTargetSampler, labelledSource } from './conditional';
import { evaluateConditional, sampleConditional } from './conditional-eval';
import { FUSION_LEVELS, NonFiniteError, tensor, type FusionLevel, type RingRead } from '../engine';
import { Rng } from '../engine/philox';
import { getDataset } from '../datasets/toy2d';
import { isImageDataset } from '../datasets/image-names';
import { logLikelihood } from './likelihood';
import { getMatcher, MATCHERS } from './matchers';
import { meanOf, normalizedPathEnergy, w2 } from './metrics';
import { MLP_ACTIVATIONS, mlpLayout, mlpShapes, offsetOf, paramCount, VectorField, type MlpConfig } from './mlp';
import { odeSolve, SOLVERS, type Solver } from './ode';
import { exactPairs, SINKHORN_DEFAULTS, type OtSolver, type Pairing, type SinkhornOptions } from './ot';
import { CfmStepper, type AdamState, type StepMode } from './step';
import type { MlpActivation } from '../kernels/ode';

/** Everything a CFM run is defined by, defaults filled in (stored in the checkpoint). */
export interface CfmConfig {
  method: CfmMethod;
  /** Source dataset (null for fm: its source is N(0, I) drawn as eps). */
  source: string | null;
  /** Target dataset name, or null with user data. */
  target: string | null;
  /** User data used as the target: its name for the record (the data itself is not stored). */
  dataName: string | null;
  dim: number;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  sigma: number;
  /** Coupling: 'independent', or an OT plan by the exact solver or Sinkhorn. */
  coupling: 'independent' | OtSolver;
  /** Sinkhorn ε (otcfm default 0.05; sbcfm 2σ²). */
  reg: number | null;
  normalizeCost: boolean;
  sinkhornMaxIter: number;
  sinkhornTol: number;
  /** ε-scaling stage length in iterations (0: off, as POT; default 20). */
  sinkhornEpsScaling: number;
  pairing: Pairing;
  hidden: number[];
  activation: MlpActivation;
  solver: Solver;
  solverSteps: number;
  stepMode: StepMode;
  /** The fusion level (engine FUSION_LEVELS), only when the options name it; else stepMode decides. */
  fusion?: FusionLevel;
  weightDecay: number;
  evalPoints: number;
  trajectoryPoints: number;
  trajectoryTimes: number;
  /** NLL points (0: skip) and RK4 steps for the CNF. */
  nllPoints: number;
  nllSteps: number;
  /** What the field is conditioned on (absent or null: unconditional; cfm/conditional.ts). */
  condition?: Condition | null;
  /** Probability of dropping a row's context to ∅ in training (classifier-free guidance). */
  labelDropout?: number;
  /** The evaluation's guidance scale w. */
  guidance?: number;
}

const KNOWN_OPTIONS = ['sigma', 'ot', 'reg', 'normalizeCost', 'sinkhornMaxIter', 'sinkhornTol', 'sinkhornEpsScaling', 'pairing', 'hidden', 'activation', 'solver', 'solverSteps', 'step', 'fusion', 'weightDecay', 'evalPoints', 'trajectoryPoints', 'trajectoryTimes', 'nllPoints', 'nllSteps', 'condition', 'labelDropout', 'guidance'];

function num(opts: Record<string, unknown>, key: string, dflt: number, ok: (x: number) => boolean, what: string): number {
  const v = opts[key];
  if (v === undefined || v === null) return dflt;
  const x = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) throw new RangeError(`option ${key}: ${JSON.stringify(v)} is not ${what}`);
  return x;
}

function choice<T extends string>(opts: Record<string, unknown>, key: string, dflt: T, accepted: readonly T[]): T {
  const v = opts[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string' || !accepted.includes(v as T)) throw new RangeError(`option ${key}: ${JSON.stringify(v)} is not one of ${accepted.join(', ')}`);
  return v as T;
}

function bool(opts: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = opts[key];
  if (v === undefined || v === null) return dflt;
  if (v === true || v === 'true' || v === '1' || v === 1) return true;
  if (v === false || v === 'false' || v === '0' || v === 0) return false;
  throw new RangeError(`option ${key}: ${JSON.stringify(v)} is not a boolean`);
}

function widths(opts: Record<string, unknown>): number[] {
  const v = opts.hidden;
  if (v === undefined || v === null) return [64, 64, 64];
  const list = Array.isArray(v) ? v.map(Number) : typeof v === 'number' ? [v] : String(v).split(/[,x ]+/).filter(Boolean).map(Number);
  if (list.length === 0 || list.some((h) => !Number.isInteger(h) || h < 1 || h > 1024)) throw new RangeError(`option hidden: ${JSON.stringify(v)} is not a list of widths in 1..1024 (e.g. "64,64,64")`);
  return list;
}

const isInt = (x: number) => Number.isInteger(x);

/** Resolves a TrainConfig into a CfmConfig with SPEC §3's defaults; throws on bad values, naming them. */
export function resolveConfig(cfg: TrainConfig): CfmConfig {
  const matcher = getMatcher(cfg.method);
  const o = cfg.options ?? {};
  for (const k of Object.keys(o)) if (!KNOWN_OPTIONS.includes(k)) throw new RangeError(`unknown CFM option "${k}"; accepted: ${KNOWN_OPTIONS.join(', ')}`);
  const dim = cfg.data ? cfg.data.dim : 2;
  if (cfg.data && (cfg.data.n < 1 || cfg.data.data.length !== cfg.data.n * cfg.data.dim)) throw new RangeError(`data: ${cfg.data.data.length} values do not make ${cfg.data.n} rows of ${cfg.data.dim}`);
  if (!cfg.data && !cfg.target) throw new RangeError('CFM training needs a target dataset or data');
  if (cfg.target && !cfg.data) getDataset(cfg.target);
  const source = matcher.usesSource ? cfg.source ?? TRAIN_DEFAULTS.source : null;
  if (!matcher.usesSource && cfg.source && cfg.source !== 'gaussian') throw new RangeError(`source: fm starts from N(0, I); got "${cfg.source}"`);
  // An image source (translation, issue 14) is drawn from cfg.sourceData, which the caller loads.
  const imageSource = source !== null && isImageDataset(source);
  if (source && !imageSource) getDataset(source);
  if (source && !imageSource && dim !== 2 && source !== 'gaussian') throw new RangeError(`source "${source}" is 2-D but the data has dimension ${dim}; use gaussian`);
  // Flow matching's own bound (the shared ones are train/options.ts's): the loss is a batch mean
  // over paired rows, and an OT plan of one point is no coupling.
  if (cfg.batch < 2) throw new RangeError(`batch: ${cfg.batch} is not accepted by flow matching; accepted: 2 or more`);
  // sbcfm's bridge and sf2m's λ(t) = 2σ_t/σ² need σ > 0.
  const positiveSigma = cfg.method === 'sbcfm' || cfg.method === 'sf2m';
  const sigma = num(o, 'sigma', matcher.sigma, (x) => x >= 0 && (!positiveSigma || x > 0), positiveSigma ? 'a positive number' : 'a non-negative number');
  let coupling: CfmConfig['coupling'] = 'independent';
  if (matcher.coupling === 'ot') coupling = choice<OtSolver>(o, 'ot', 'exact', ['exact', 'sinkhorn']);
  else if (matcher.coupling === 'entropic') coupling = choice<OtSolver>(o, 'ot', 'sinkhorn', ['exact', 'sinkhorn']);
  else if (o.ot !== undefined) throw new RangeError(`option ot: ${cfg.method} uses independent pairs (only otcfm, sbcfm and sf2m use an OT plan)`);
  const reg = coupling === 'sinkhorn' ? num(o, 'reg', matcher.coupling === 'entropic' || cfg.method === 'sf2m' ? 2 * sigma * sigma : SINKHORN_DEFAULTS.reg, (x) => x > 0, 'a positive number') : null;
  const pairing = choice<Pairing>(o, 'pairing', 'replacement', ['replacement', 'permutation']);
  if (coupling === 'sinkhorn' && cfg.batch > 2048) throw new RangeError(`batch ${cfg.batch}: the GPU Sinkhorn kernel holds at most 2048 points per side`);
  const hidden = widths(o);
  const activation = choice<MlpActivation>(o, 'activation', 'selu', MLP_ACTIVATIONS);
  const solver = choice<Solver>(o, 'solver', 'rk4', SOLVERS);
  const solverSteps = num(o, 'solverSteps', 100, (x) => isInt(x) && x >= 1, 'a positive integer');
  const gaussianSource = cfg.method === 'fm' || source === 'gaussian';
  const condition = resolveCondition(cfg);
  if (!condition && (o.labelDropout !== undefined || o.guidance !== undefined)) throw new RangeError(`option ${o.labelDropout !== undefined ? 'labelDropout' : 'guidance'}: only a conditional model takes it (set condition = "labels" or "context")`);
  const cond = condition
    ? {
        condition,
        labelDropout: num(o, 'labelDropout', 0.1, (x) => x >= 0 && x < 1, 'a probability in [0, 1)'),
        guidance: num(o, 'guidance', 1, (x) => Math.abs(x) <= 100, 'a number in [−100, 100]'),
      }
    : {};
  return {
    method: cfg.method as CfmMethod,
    source,
    target: cfg.data ? null : cfg.target,
    dataName: cfg.data ? (cfg.target ?? 'data') : null,
    dim,
    steps: cfg.steps,
    batch: cfg.batch,
    lr: cfg.lr,
    seed: cfg.seed,
    sigma,
    coupling,
    reg,
    normalizeCost: bool(o, 'normalizeCost', false),
    sinkhornMaxIter: num(o, 'sinkhornMaxIter', SINKHORN_DEFAULTS.maxIter, (x) => isInt(x) && x >= 1, 'a positive integer'),
    sinkhornTol: num(o, 'sinkhornTol', SINKHORN_DEFAULTS.tol, (x) => x > 0, 'a positive number'),
    sinkhornEpsScaling: num(o, 'sinkhornEpsScaling', SINKHORN_DEFAULTS.epsScaling, (x) => isInt(x) && x >= 0, 'a non-negative integer'),
    pairing,
    hidden,
    activation,
    solver,
    solverSteps,
    stepMode: choice<StepMode>(o, 'step', 'fused', ['fused', 'tape']),
    ...(o.fusion !== undefined ? { fusion: choice<FusionLevel>(o, 'fusion', 'step', FUSION_LEVELS) } : {}),
    weightDecay: num(o, 'weightDecay', 0, (x) => x >= 0, 'a non-negative number'),
    evalPoints: num(o, 'evalPoints', 2048, (x) => isInt(x) && x >= 2, 'an integer ≥ 2'),
    trajectoryPoints: num(o, 'trajectoryPoints', 256, (x) => isInt(x) && x >= 0, 'a non-negative integer'),
    trajectoryTimes: num(o, 'trajectoryTimes', 9, (x) => isInt(x) && x >= 2, 'an integer ≥ 2'),
    // The CNF likelihood is not computed for conditional models (cfm/conditional-eval.ts).
    nllPoints: gaussianSource && !condition ? num(o, 'nllPoints', 512, (x) => isInt(x) && x >= 0, 'a non-negative integer') : 0,
    nllSteps: num(o, 'nllSteps', 50, (x) => isInt(x) && x >= 1, 'a positive integer'),
    ...cond,
  };
}

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

/** The flat parameter vector (layout order) from named parameters (a checkpoint's state dict). */
export function paramsToFlat(c: Pick<CfmConfig, 'dim' | 'hidden' | 'activation' | 'condition'>, params: TrainState['params']): Float32Array {
  const mc: MlpConfig = mlpConfigOf(c);
  const layout = mlpLayout(mc);
  const flat = new Float32Array(paramCount(mc));
  mlpShapes(mc).forEach((s, i) => {
    const p = params[s.name];
    const size = s.shape.reduce((a, b) => a * b, 1);
    if (!p || p.data.length !== size) throw new Error(`checkpoint: parameter "${s.name}" is missing or has ${p?.data.length ?? 0} values (need ${size} for shape [${s.shape}])`);
    flat.set(p.data, offsetOf(layout, i));
  });
  return flat;
}

/** The network of a configuration (a conditional one takes its context columns after t). */
export function mlpConfigOf(c: Pick<CfmConfig, 'dim' | 'hidden' | 'activation' | 'condition'>): MlpConfig {
  const ctx = conditionCols(c.condition ?? null);
  return ctx > 0 ? { dim: c.dim, hidden: c.hidden, activation: c.activation, context: ctx } : { dim: c.dim, hidden: c.hidden, activation: c.activation };
}

function modelFrom(c: CfmConfig, params: TrainState['params']): VectorField {
  return new VectorField(mlpConfigOf(c), paramsToFlat(c, params));
}

/** A CfmConfig from a checkpoint's stored config (what resolveConfig returned). */
export function configFrom(stored: Record<string, unknown>): CfmConfig {
  const c = stored as unknown as CfmConfig;
  if (!c || typeof c.method !== 'string' || !MATCHERS[c.method as CfmMethod] || !Array.isArray(c.hidden) || typeof c.dim !== 'number') {
    throw new Error('checkpoint: the stored config is not a CFM config (method, dim, hidden, activation needed)');
  }
  return c;
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
  step(batch: Float32Array, step: number): void;
  readRing(from: number, to: number): Promise<RingRead>;
  adamState(): Promise<AdamState>;
  loadAdamState(s: AdamState): void;
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
  /** The fusion level asked for (the run's option, else the stepper's default). */
  asked: FusionLevel;
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
      st.step(parts.batch(step), step);
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
    fusion: { asked: parts.asked, used: st.fusion, fallback: st.fallback },
    evaluate: () => parts.evaluate(model),
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
    asked: c.fusion ?? (c.stepMode === 'tape' ? 'layer' : 'step'),
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
        adam: { lr: c.lr, weightDecay: c.weightDecay },
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
    const samples = await sol.x.data();
    const trajectories: Float32Array[] = [];
    for (const t of sol.trajectory) {
      trajectories.push(await t.data());
      t.dispose();
    }
    sol.x.dispose();
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

