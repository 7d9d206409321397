/**
 * Sampling and evaluation of a conditional CFM model (cfm/conditional.ts says how it is trained):
 * every trajectory carries its context (a label's one-hot, or a context row) from t = 0 to 1, the
 * field guided with scale w (kernels/ode.ts: ṽ = v(x, t, ∅) + w·(v(x, t, c) − v(x, t, ∅))).
 *
 * Evaluation draws fresh target points with their labels, generates one sample per target point
 * with that point's label (so each label gets as many samples as the target has points of it), and
 * reports W2 and NPE over all of them as the unconditional evaluation does, plus per label:
 *  - accuracy: the fraction of samples whose nearest evaluation target point (1-NN, squared
 *    Euclidean) has the label asked for — a classifier that needs no training and works in any
 *    dimension (issue 14 brings a trained one for images);
 *  - W2 between the label's samples and the label's target points.
 * NLL is not computed for conditional models (null).
 */
import type { ConditionalMetrics, Condition, DataMatrix, LabelSet } from '../train/contract';
import { tensor, type Tensor } from '../engine';
import type { Rng } from '../engine/philox';
import { condTargetSampler, drawByClass, labelledSource, oneHot } from './conditional';
import { meanOf, normalizedPathEnergy, w2 } from './metrics';
import type { VectorField } from './mlp';
import { odeSolve, type Solver } from './ode';
import type { FusionLevel } from '../engine';

interface Source {
  dim: number;
  sample(n: number, rng: Rng): Float32Array;
}

/** Labels of each row of `pts` by its nearest row of `ref` (1-NN, squared Euclidean). */
export function nearestLabels(pts: Float32Array, ref: Float32Array, refLabels: ArrayLike<number>, d: number): Int32Array {
  const n = pts.length / d;
  const m = ref.length / d;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = Infinity;
    let lab = -1;
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        const v = pts[i * d + k]! - ref[j * d + k]!;
        s += v * v;
      }
      if (s < best) {
        best = s;
        lab = refLabels[j]!;
      }
    }
    out[i] = lab;
  }
  return out;
}

/** Rows of `x` (width d) whose label is k. */
function rowsOf(x: Float32Array, y: ArrayLike<number>, k: number, d: number): Float32Array {
  const idx: number[] = [];
  for (let b = 0; b < y.length; b++) if (y[b] === k) idx.push(b);
  const out = new Float32Array(idx.length * d);
  idx.forEach((b, r) => out.set(x.subarray(b * d, (b + 1) * d), r * d));
  return out;
}

/** Accuracy and W2 per label of samples generated for `asked` against target points `ref` with labels `refY`. */
export function conditionalMetrics(samples: Float32Array, asked: ArrayLike<number>, ref: Float32Array, refY: ArrayLike<number>, K: number, d: number, guidance: number): ConditionalMetrics {
  const got = nearestLabels(samples, ref, refY, d);
  let hit = 0;
  const perLabel: ConditionalMetrics['perLabel'] = [];
  for (let k = 0; k < K; k++) {
    let n = 0;
    let h = 0;
    for (let b = 0; b < asked.length; b++) {
      if (asked[b] !== k) continue;
      n++;
      if (got[b] === k) h++;
    }
    hit += h;
    if (n === 0) continue;
    const a = rowsOf(samples, asked, k, d);
    const r = rowsOf(ref, refY, k, d);
    perLabel.push({ label: k, n, accuracy: h / n, w2: a.length === r.length ? w2(a, r, d) : null });
  }
  return { accuracy: hit / asked.length, guidance, perLabel };
}

/** The context rows of n samples: labels' one-hots (label < 0 → ∅) or the given rows. */
export function contextRows(cond: Condition, n: number, labels: ArrayLike<number> | null, context: Float32Array | null): Float32Array {
  if (cond.kind === 'labels') return oneHot(labels!, cond.numClasses);
  if (!context || context.length !== n * cond.cols) throw new RangeError(`context: ${context?.length ?? 0} values for ${n} samples of ${cond.cols} context columns`);
  return context;
}

export interface CondEvalInput {
  vf: VectorField;
  cond: Condition;
  target: string | null;
  source: string | null;
  src: Source;
  data?: DataMatrix;
  labels?: LabelSet;
  context?: DataMatrix;
  n: number;
  solver: Solver;
  solverSteps: number;
  guidance: number;
  streams: { source: Rng; target: Rng; trajectories: Rng };
  trajectoryPoints: number;
  trajectoryTimes: number;
  /** The run's fusion level for the ODE (odeSolve's default, the fused kernel, when absent). */
  fusion?: FusionLevel;
}

/** Source points for rows of labels `y` (by class when the source set has the same classes). */
function sourceFor(a: Pick<CondEvalInput, 'cond' | 'source' | 'src'>, y: ArrayLike<number> | null, n: number, rng: Rng): Float32Array {
  const byClass = y ? labelledSource(a.cond, a.source) : null;
  return byClass ? drawByClass(byClass, y!, a.src.dim, rng) : a.src.sample(n, rng);
}

async function solve(vf: VectorField, x0: Float32Array, ctx: Float32Array, opts: { solver: Solver; steps: number; guidance: number; energy?: boolean; times?: number[]; fusion?: FusionLevel }) {
  const d = vf.cfg.dim;
  const n = x0.length / d;
  const xt = tensor(x0, [n, d]);
  const ct = tensor(ctx, [n, ctx.length / n]);
  try {
    return await odeSolve(vf, xt, { solver: opts.solver, steps: opts.steps, energy: opts.energy, times: opts.times, context: ct, guidance: opts.guidance, ...(opts.fusion ? { fusion: opts.fusion } : {}) });
  } finally {
    xt.dispose();
    ct.dispose();
  }
}

async function take(t: Tensor): Promise<Float32Array> {
  const v = await t.data();
  t.dispose();
  return v;
}

/** W2, NPE, per-label metrics, samples and trajectories of a conditional model (see the header). */
export async function evaluateConditional(a: CondEvalInput): Promise<{ w2: number; npe: number; nfe: number; samples: Float32Array; targetSamples: Float32Array; trajectories: Float32Array[]; conditional: ConditionalMetrics | null }> {
  const d = a.vf.cfg.dim;
  const draw = condTargetSampler(a.cond, a.target, a.data, a.labels, a.context).sample(a.n, a.streams.target);
  const x0 = sourceFor(a, draw.labels, a.n, a.streams.source);
  const sol = await solve(a.vf, x0, contextRows(a.cond, a.n, draw.labels, draw.context), { solver: a.solver, steps: a.solverSteps, guidance: a.guidance, energy: true, fusion: a.fusion });
  const samples = await take(sol.x);
  const energy = await take(sol.energy!);
  const bad = samples.reduce((k, x) => k + (Number.isFinite(x) ? 0 : 1), 0);
  if (bad > 0) throw new Error(`evaluation: ${bad} of ${samples.length} sample coordinates are NaN or infinite (the learned vector field overflows when integrated). Try a lower --lr`);
  const w2st = w2(x0, draw.points, d);
  const trajectories: Float32Array[] = [];
  if (a.trajectoryPoints > 0) {
    const m = a.trajectoryPoints;
    const cond = a.cond;
    // Trajectories cycle through the labels (or the drawn context rows).
    const y = cond.kind === 'labels' ? Int32Array.from({ length: m }, (_, b) => b % cond.numClasses) : null;
    const ctx = cond.kind === 'labels' ? oneHot(y!, cond.numClasses) : Float32Array.from({ length: m * cond.cols }, (_, k) => draw.context![k % draw.context!.length]!);
    const times = Array.from({ length: a.trajectoryTimes }, (_, i) => i / (a.trajectoryTimes - 1));
    const tr = await solve(a.vf, sourceFor(a, y, m, a.streams.trajectories), ctx, { solver: a.solver === 'dopri5' ? 'rk4' : a.solver, steps: a.solverSteps, guidance: a.guidance, times, fusion: a.fusion });
    for (const t of tr.trajectory) trajectories.push(await take(t));
    tr.x.dispose();
  }
  return {
    w2: w2(samples, draw.points, d),
    npe: normalizedPathEnergy(meanOf(energy), w2st * w2st),
    nfe: sol.nfe,
    samples,
    targetSamples: draw.points,
    trajectories,
    conditional: a.cond.kind === 'labels' ? conditionalMetrics(samples, draw.labels!, draw.points, draw.labels!, a.cond.numClasses, d, a.guidance) : null,
  };
}

/**
 * n samples of a conditional model: labels cycled from `labels` (default every class in turn) or
 * the given context rows; returns each sample's label.
 */
export async function sampleConditional(a: { vf: VectorField; cond: Condition; source: string | null; src: Source; n: number; solver: Solver; solverSteps: number; guidance: number; rng: Rng; trajectoryTimes: number; labels?: ArrayLike<number>; context?: Float32Array }): Promise<{ samples: Float32Array; labels: Int32Array | null; nfe: number; trajectories: Float32Array[] }> {
  let y: Int32Array | null = null;
  if (a.cond.kind === 'labels') {
    const K = a.cond.numClasses;
    const list = a.labels && a.labels.length ? Array.from(a.labels) : Array.from({ length: K }, (_, k) => k);
    for (const k of list) if (!Number.isInteger(k) || k < 0 || k >= K) throw new RangeError(`label ${k} is not a label of this model; accepted: integers 0..${K - 1}`);
    y = Int32Array.from({ length: a.n }, (_, b) => list[b % list.length]!);
  } else if (!a.context) throw new RangeError(`this model is conditioned on context vectors: give ${a.n} context rows of ${a.cond.cols} columns`);
  const times = a.trajectoryTimes >= 2 ? Array.from({ length: a.trajectoryTimes }, (_, i) => i / (a.trajectoryTimes - 1)) : [];
  const sol = await solve(a.vf, sourceFor(a, y, a.n, a.rng), contextRows(a.cond, a.n, y, a.context ?? null), { solver: a.solver, steps: a.solverSteps, guidance: a.guidance, times });
  const trajectories: Float32Array[] = [];
  for (const t of sol.trajectory) trajectories.push(await take(t));
  return { samples: await take(sol.x), labels: y, nfe: sol.nfe, trajectories };
}
