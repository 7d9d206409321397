/**
 * The flow-matching family's run configuration: `CfmConfig` (everything a CFM run is defined by,
 * defaults filled in, stored in every checkpoint), its resolution from a TrainConfig with SPEC §3's
 * defaults, and the map between a configuration and its network (mlpConfigOf, paramsToFlat).
 *
 * Options (TrainConfig.options; numbers may come as strings from the command line): sigma, ot
 * ('exact' | 'sinkhorn'), reg, normalizeCost, sinkhornMaxIter, sinkhornTol, sinkhornEpsScaling
 * (defaults: cfm/ot.ts SINKHORN_DEFAULTS), pairing ('replacement' | 'permutation'), hidden
 * ("64,64,64"), activation, solver, solverSteps, step ('fused' | 'tape'), weightDecay, evalPoints,
 * trajectoryPoints, trajectoryTimes, nllPoints, nllSteps; schedule ('constant', torchcfm's, or
 * 'cosine': lr decays to 0 over the run, engine/optim.ts learningRate); ema (decay of a moving
 * average of the weights, 0 = none; else sampling and evaluation use the average; engine/optim.ts);
 * condition ('none' | 'labels' | 'context', train/options.ts), labelDropout (classifier-free
 * guidance's p, default 0.1 when conditional) and guidance (the evaluation's scale w, default 1):
 * cfm/conditional.ts. Unknown options are an error naming the accepted ones. The shared fields
 * (steps, batch, lr, seed, datasets) are checked by train/options.ts.
 */
import type { CfmMethod, Condition, TrainConfig, TrainState } from '../train/contract';
import { conditionCols, resolveCondition, TRAIN_DEFAULTS } from '../train/options';
import { FUSION_LEVELS, LR_SCHEDULES, type FusionLevel, type LrSchedule } from '../engine';
import { getDataset } from '../datasets/toy2d';
import { isImageDataset } from '../datasets/image-names';
import { getMatcher, MATCHERS } from './matchers';
import { MLP_ACTIVATIONS, mlpLayout, mlpShapes, offsetOf, paramCount, type MlpConfig } from './mlp';
import { SOLVERS, type Solver } from './ode';
import { SINKHORN_DEFAULTS, type OtSolver, type Pairing } from './ot';
import type { StepMode } from './step';
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
  /**
   * Decay δ of the moving average of the weights kept beside them (engine/optim.ts); stored only
   * when > 0 (absent: none, as in checkpoints from before the option).
   */
  ema?: number;
  /** The learning-rate schedule; stored only when not constant (absent: constant, as before the option). */
  schedule?: LrSchedule;
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

const KNOWN_OPTIONS = ['sigma', 'ot', 'reg', 'normalizeCost', 'sinkhornMaxIter', 'sinkhornTol', 'sinkhornEpsScaling', 'pairing', 'hidden', 'activation', 'solver', 'solverSteps', 'step', 'fusion', 'weightDecay', 'ema', 'schedule', 'evalPoints', 'trajectoryPoints', 'trajectoryTimes', 'nllPoints', 'nllSteps', 'condition', 'labelDropout', 'guidance'];

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
  const ema = num(o, 'ema', 0, (x) => x >= 0 && x < 1, 'a decay in [0, 1) (0: no moving average)');
  const schedule = choice<LrSchedule>(o, 'schedule', 'constant', LR_SCHEDULES);
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
    ...(ema > 0 ? { ema } : {}),
    ...(schedule !== 'constant' ? { schedule } : {}),
    evalPoints: num(o, 'evalPoints', 2048, (x) => isInt(x) && x >= 2, 'an integer ≥ 2'),
    trajectoryPoints: num(o, 'trajectoryPoints', 256, (x) => isInt(x) && x >= 0, 'a non-negative integer'),
    trajectoryTimes: num(o, 'trajectoryTimes', 9, (x) => isInt(x) && x >= 2, 'an integer ≥ 2'),
    // The CNF likelihood is not computed for conditional models (cfm/conditional-eval.ts).
    nllPoints: gaussianSource && !condition ? num(o, 'nllPoints', 512, (x) => isInt(x) && x >= 0, 'a non-negative integer') : 0,
    nllSteps: num(o, 'nllSteps', 50, (x) => isInt(x) && x >= 1, 'a positive integer'),
    ...cond,
  };
}


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

/** A CfmConfig from a checkpoint's stored config (what resolveConfig returned). */
export function configFrom(stored: Record<string, unknown>): CfmConfig {
  const c = stored as unknown as CfmConfig;
  if (!c || typeof c.method !== 'string' || !MATCHERS[c.method as CfmMethod] || !Array.isArray(c.hidden) || typeof c.dim !== 'number') {
    throw new Error('checkpoint: the stored config is not a CFM config (method, dim, hidden, activation needed)');
  }
  return c;
}
