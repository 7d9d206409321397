/**
 * Conditional flow matching (issue 13 item 3): a label or a context vector as input to the vector
 * field v(x, t, c), trained with classifier-free guidance and OT couplings that respect labels.
 *
 *  - Context: a label y of K classes enters as its one-hot (K context columns after t: the network
 *    sees [x, t, onehot(y)]); a context vector enters as given. The context belongs to the target
 *    point x1 and is constant along a trajectory.
 *  - Classifier-free guidance (Ho & Salimans 2022; flow_matching's and torchcfm's practice): during
 *    training each row's context is dropped with probability p (option labelDropout, default 0.1)
 *    and replaced by the null context ∅ = all zeros (a one-hot of no class), so one network learns
 *    v(x, t, c) and v(x, t, ∅). At sampling ṽ = v(x, t, ∅) + w·(v(x, t, c) − v(x, t, ∅)): w = 1 (the
 *    default) is the conditional field, w = 0 the unconditional one, w > 1 sharpens (kernels/ode.ts).
 *  - Couplings within a class: the target batch is drawn with its labels; source row b is given
 *    target row b's label (for an unlabelled source — N(0, I), fm's ε, any unlabelled set — the
 *    label follows the target point, and source points are i.i.d., so each class keeps the source
 *    distribution); when the source set has labels of the same K classes, source row b is drawn
 *    from class y1[b] (rejection from the labelled sampler). Exact OT and Sinkhorn are then solved
 *    per class block (torchcfm's guided OT sampler restricted to pairs of one class), so no pair
 *    ever crosses classes; independent couplings (icfm, fm, vpcfm) pair row b with row b. Per-class
 *    Sinkhorn runs in float64 on the CPU (blocks of ~B/K points; the batch is drawn there anyway),
 *    not on the GPU kernel: a block-diagonal plan is K small problems.
 *  - Context vectors (condition 'context', user data only): rows carry their context; the whole
 *    batch is one block (there are no classes), so an OT coupling may pair across contexts.
 *
 * The batch goes to the GPU as one upload: x0 rows, x1 rows, then the B context rows (cfm/step.ts,
 * cfm/fused-step.ts read it there).
 */
import type { Condition, DataMatrix, LabelSet } from '../train/contract';
import type { Rng } from '../engine/philox';
import { getDataset } from '../datasets/toy2d';
import { exactPairs, sinkhornLogF64, type OtSolver, type Pairing, type Pairs } from './ot';

/** A target draw: points, and (by the condition) their labels or context rows. */
export interface CondDraw {
  points: Float32Array;
  labels: Int32Array | null;
  context: Float32Array | null;
}

export interface CondSampler {
  dim: number;
  sample(n: number, rng: Rng): CondDraw;
}

/** The target sampler of a conditional run: a labelled built-in set, or user data with its labels / context rows. */
export function condTargetSampler(cond: Condition, target: string | null, data?: DataMatrix, labels?: LabelSet, context?: DataMatrix): CondSampler {
  if (data) {
    if (cond.kind === 'labels' && !labels) throw new RangeError('conditional data: the labels of the rows are needed');
    if (cond.kind === 'context' && !context) throw new RangeError('conditional data: the context rows are needed');
    const d = data.dim;
    const cols = cond.kind === 'context' ? cond.cols : 0;
    return {
      dim: d,
      sample: (n, rng) => {
        const points = new Float32Array(n * d);
        const ys = cond.kind === 'labels' ? new Int32Array(n) : null;
        const cs = cols > 0 ? new Float32Array(n * cols) : null;
        for (let i = 0; i < n; i++) {
          const r = rng.int(data.n);
          points.set(data.data.subarray(r * d, (r + 1) * d), i * d);
          if (ys) ys[i] = labels!.labels[r]!;
          if (cs) cs.set(context!.data.subarray(r * cols, (r + 1) * cols), i * cols);
        }
        return { points, labels: ys, context: cs };
      },
    };
  }
  if (cond.kind !== 'labels' || !target) throw new RangeError('a conditional built-in target is conditioned on its labels');
  const lab = getDataset(target).labels;
  if (!lab) throw new RangeError(`target "${target}" has no labels`);
  return { dim: 2, sample: (n, rng) => ({ ...lab.sample(n, rng), context: null }) };
}

/** A source set's labelling when it can be drawn per class of `cond` (same K), else null (the label follows the target). */
export function labelledSource(cond: Condition, source: string | null): ((n: number, rng: Rng) => { points: Float32Array; labels: Int32Array }) | null {
  if (cond.kind !== 'labels' || !source || source === 'gaussian') return null;
  const lab = getDataset(source).labels;
  return lab && lab.classes === cond.numClasses ? lab.sample : null;
}

/**
 * Source points of the given classes, in order (row b of class want[b]), drawn from a labelled
 * sampler by rejection in chunks; throws if a class does not turn up in 10 000 chunks.
 */
export function drawByClass(sample: (n: number, rng: Rng) => { points: Float32Array; labels: Int32Array }, want: ArrayLike<number>, d: number, rng: Rng): Float32Array {
  const n = want.length;
  const out = new Float32Array(n * d);
  const slots = new Map<number, number[]>();
  for (let b = n - 1; b >= 0; b--) (slots.get(want[b]!) ?? slots.set(want[b]!, []).get(want[b]!)!).push(b);
  let left = n;
  for (let chunk = 0; left > 0; chunk++) {
    if (chunk >= 10_000) throw new Error(`source: class ${[...slots.keys()].find((k) => slots.get(k)!.length)} did not turn up in 10 000 draws of ${Math.max(64, n)} points`);
    const s = sample(Math.max(64, n), rng);
    for (let r = 0; r < s.labels.length && left > 0; r++) {
      const free = slots.get(s.labels[r]!);
      const b = free?.pop();
      if (b === undefined) continue;
      out.set(s.points.subarray(r * d, (r + 1) * d), b * d);
      left--;
    }
  }
  return out;
}

/** Row indices of each class: groups[k] = { b : y[b] = k } in increasing order. */
export function classGroups(y: ArrayLike<number>, K: number): number[][] {
  const g: number[][] = Array.from({ length: K }, () => []);
  for (let b = 0; b < y.length; b++) g[y[b]!]!.push(b);
  return g;
}

export interface ClassPairing {
  coupling: 'independent' | OtSolver;
  pairing: Pairing;
  /** Sinkhorn's ε, normalisation and stopping rule (cfm/train.ts CfmConfig). */
  reg: number | null;
  normalizeCost: boolean;
  sinkhornMaxIter: number;
  sinkhornTol: number;
}

function sqCost(x0: Float32Array, x1: Float32Array, I: number[], d: number): Float64Array {
  const m = I.length;
  const C = new Float64Array(m * m);
  for (let a = 0; a < m; a++) {
    for (let b = 0; b < m; b++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        const v = x0[I[a]! * d + k]! - x1[I[b]! * d + k]!;
        s += v * v;
      }
      C[a * m + b] = s;
    }
  }
  return C;
}

/** Draws one index from weights w[off .. off+len) (unnormalised) with one uniform. */
function drawFrom(w: Float64Array, off: number, len: number, rng: Rng): number {
  let tot = 0;
  for (let k = 0; k < len; k++) tot += w[off + k]!;
  let u = rng.uniform() * tot;
  for (let k = 0; k < len; k++) {
    u -= w[off + k]!;
    if (u < 0) return k;
  }
  return len - 1;
}

/**
 * Pairs within each class (see the header): rows b of x0 and x1 both carry label y[b]; within the
 * block I_k of class k the coupling pairs x0[I_k] with x1[I_k]. Returns pair indices into the
 * batch, group by group, with as many pairs per class as the class has rows.
 */
export function pairWithinClasses(x0: Float32Array, x1: Float32Array, y: ArrayLike<number>, K: number, d: number, p: ClassPairing, rng: Rng): Pairs {
  const B = y.length;
  const i = new Int32Array(B);
  const j = new Int32Array(B);
  let o = 0;
  for (const I of classGroups(y, K)) {
    const m = I.length;
    if (m === 0) continue;
    if (p.coupling === 'independent' || m === 1) {
      for (const b of I) {
        i[o] = b;
        j[o++] = b;
      }
    } else if (p.coupling === 'exact') {
      const a0 = new Float32Array(m * d);
      const a1 = new Float32Array(m * d);
      I.forEach((b, r) => {
        a0.set(x0.subarray(b * d, (b + 1) * d), r * d);
        a1.set(x1.subarray(b * d, (b + 1) * d), r * d);
      });
      const q = exactPairs(a0, a1, m, d, p.pairing, rng);
      for (let r = 0; r < m; r++) {
        i[o] = I[q.i[r]!]!;
        j[o++] = I[q.j[r]!]!;
      }
    } else {
      const { plan } = sinkhornLogF64(sqCost(x0, x1, I, d), m, m, p.reg!, { maxIter: p.sinkhornMaxIter, tol: p.sinkhornTol, normalize: p.normalizeCost });
      for (let r = 0; r < m; r++) {
        if (p.pairing === 'permutation') {
          // Each source point once, its partner drawn from its row of the plan.
          i[o] = I[r]!;
          j[o++] = I[drawFrom(plan, r * m, m, rng)]!;
        } else {
          const f = drawFrom(plan, 0, m * m, rng);
          i[o] = I[Math.floor(f / m)]!;
          j[o++] = I[f % m]!;
        }
      }
    }
  }
  return { i, j };
}

/**
 * The context rows [n, K] of labels: one-hot, or all zeros (∅) where `drop` says so.
 * `labels` entries < 0 also give ∅ (an unconditional row).
 */
export function oneHot(labels: ArrayLike<number>, K: number, drop?: (b: number) => boolean): Float32Array {
  const out = new Float32Array(labels.length * K);
  for (let b = 0; b < labels.length; b++) {
    const y = labels[b]!;
    if (y >= 0 && !(drop && drop(b))) out[b * K + y] = 1;
  }
  return out;
}

export interface CondBatchInput extends ClassPairing {
  cond: Condition;
  batch: number;
  dim: number;
  labelDropout: number;
  /** x0 rows (zeros for fm), or null to draw them by class with `byClass`. */
  x0: Float32Array | null;
  byClass: ((n: number, rng: Rng) => { points: Float32Array; labels: Int32Array }) | null;
  target: CondDraw;
  rngs: { source: Rng; pairing: Rng; dropout: Rng };
}

/** The step's upload: x0 rows, x1 rows (paired as above), then B context rows (dropped with p → ∅). */
export function conditionalBatch(a: CondBatchInput): Float32Array {
  const { batch: B, dim: d, cond } = a;
  const C = cond.kind === 'labels' ? cond.numClasses : cond.cols;
  const x1 = a.target.points;
  const y = a.target.labels;
  const x0 = a.x0 ?? drawByClass(a.byClass!, y!, d, a.rngs.source);
  // Context vectors have no classes: one block, the whole batch.
  const pairs = cond.kind === 'labels' ? pairWithinClasses(x0, x1, y!, cond.numClasses, d, a, a.rngs.pairing) : pairWithinClasses(x0, x1, new Int32Array(B), 1, d, a, a.rngs.pairing);
  const out = new Float32Array(2 * B * d + B * C);
  const ctxAt = 2 * B * d;
  for (let b = 0; b < B; b++) {
    const s = pairs.i[b]!;
    const t = pairs.j[b]!;
    out.set(x0.subarray(s * d, (s + 1) * d), b * d);
    out.set(x1.subarray(t * d, (t + 1) * d), (B + b) * d);
    const dropped = a.labelDropout > 0 && a.rngs.dropout.uniform() < a.labelDropout;
    if (dropped) continue;
    if (y) out[ctxAt + b * C + y[t]!] = 1;
    else out.set(a.target.context!.subarray(t * C, (t + 1) * C), ctxAt + b * C);
  }
  return out;
}
