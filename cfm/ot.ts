/**
 * Minibatch OT couplings for OT-CFM and SB-CFM (torchcfm's OTPlanSampler):
 *  - exact: the optimal assignment (cfm/ot/assignment.ts, on the CPU: the batch is sampled on the
 *    CPU anyway, so it is permuted there before the one upload per step; no readback);
 *  - sinkhorn: entropic OT in the log domain on the GPU (kernels/sinkhorn.ts), the cost matrix
 *    through an inner-product kernel, pairs sampled from the plan inside the same dispatch.
 * Pairs are drawn from the plan with replacement (torchcfm parity: np.random.choice over the
 * flattened plan) or as a permutation (each point once). Optional labels ride along through the
 * pair indices (torchcfm's sample_plan_with_labels).
 * Also: float64 CPU references of log-domain and classical Sinkhorn (tests).
 */
import { gatherRows, getBackend, Tensor } from '../engine';
import { seedKey, type Rng } from '../engine/philox';
import { sinkhornKernel, sinkhornOutSize, sinkhornUniforms, sqEuclideanCostKernel, type PairSampling } from '../kernels/sinkhorn';
import { sinkhornMultiKernels, sinkhornResolveStyle, sinkhornStateSize } from '../kernels/sinkhorn-multi';
import { otPlanExact } from './ot/assignment';

export type OtSolver = 'exact' | 'sinkhorn';
export type Pairing = 'replacement' | 'permutation';

/**
 * Defaults of the Sinkhorn solver, the trainer's and a direct caller's alike (cfm/train.ts resolves
 * its options from these): torchcfm's ε 0.05 on raw costs, POT's 1 000-iteration cap, and
 * ε-scaling (20 iterations a stage) with a 1e-3 L1 marginal error, which took a training step
 * from 318 to 127 ms at reg 0.05 (gaussian→moons, batch 256, SwiftShader) with the same fixed point.
 */
export const SINKHORN_DEFAULTS = { reg: 0.05, maxIter: 1000, tol: 1e-3, epsScaling: 20, checkEvery: 10 } as const;

export interface SinkhornOptions {
  /** Entropic regularisation ε (torchcfm default 0.05; SB-CFM uses 2σ²). */
  reg: number;
  /** Divide the cost by its maximum first (torchcfm's normalize_cost). */
  normalize?: boolean;
  /** Iteration cap (default SINKHORN_DEFAULTS.maxIter, POT's numItermax). */
  maxIter?: number;
  /** Stop when the L1 marginal error Σ|P1 − a| ≤ tol (default SINKHORN_DEFAULTS.tol). */
  tol?: number;
  /** Check the error every this many iterations (default SINKHORN_DEFAULTS.checkEvery). */
  checkEvery?: number;
  /**
   * ε-scaling: start at ε0 = max C and halve ε every this many iterations down to reg (0: off,
   * plain iterations at reg from the start, as POT). Same fixed point, far fewer iterations at
   * small reg. Default SINKHORN_DEFAULTS.epsScaling.
   */
  epsScaling?: number;
  /**
   * Kernel code shape. 'unrolled' / 'loop': everything in one dispatch of one workgroup (no
   * per-iteration dispatch overhead; best up to 256 points per side). 'multi': one dispatch per
   * half-iteration with a thread per row / column over many workgroups (kernels/sinkhorn.ts
   * sinkhornMultiKernels), a fixed recorded sequence of 2·maxIter + maxIter/checkEvery + 6
   * dispatches that turn into no-ops once converged. Default 'auto': unrolled up to 256 points
   * per side (UNROLL_MAX), else multi.
   */
  style?: 'auto' | 'unrolled' | 'loop' | 'multi';
  /** Threads of the single-workgroup kernel (each owns ⌈n/threads⌉ rows; default 64 unrolled, 256 loop). */
  threads?: number;
}

/** Pair indices: x0[i[b]] ↔ x1[j[b]]. */
export interface Pairs {
  i: Int32Array;
  j: Int32Array;
}

/**
 * Exact OT pairs for equal-size batches (n × d each): with replacement, i ~ U{0..n−1} i.i.d. and
 * j = σ(i) (the exact plan is the permutation σ divided by n); as a permutation, (b, σ(b)).
 */
export function exactPairs(x0: Float32Array, x1: Float32Array, n: number, d: number, pairing: Pairing, rng: Rng, count = n): Pairs {
  const perm = otPlanExact(x0, x1, n, d);
  const i = new Int32Array(count);
  const j = new Int32Array(count);
  if (pairing === 'permutation') {
    if (count !== n) throw new Error(`exactPairs: a permutation pairs all ${n} points, ${count} requested`);
    for (let b = 0; b < n; b++) {
      i[b] = b;
      j[b] = perm[b]!;
    }
  } else {
    for (let b = 0; b < count; b++) {
      const r = rng.int(n);
      i[b] = r;
      j[b] = perm[r]!;
    }
  }
  return { i, j };
}

/** rows[idx[b]] for row-major rows of width d. */
export function gatherRowsCpu(rows: Float32Array, idx: Int32Array, d: number): Float32Array {
  const out = new Float32Array(idx.length * d);
  for (let b = 0; b < idx.length; b++) for (let k = 0; k < d; k++) out[b * d + k] = rows[idx[b]! * d + k]!;
  return out;
}

/** Labels carried through a coupling: y0[i[b]], y1[j[b]] (torchcfm sample_plan_with_labels). */
export function pairLabels<T extends ArrayLike<number>>(p: Pairs, y0?: T, y1?: T): { y0: Float64Array | null; y1: Float64Array | null } {
  return {
    y0: y0 ? Float64Array.from(p.i, (k) => y0[k]!) : null,
    y1: y1 ? Float64Array.from(p.j, (k) => y1[k]!) : null,
  };
}

/**
 * Rows (or labels: any [n, …] tensor, e.g. class ids as floats) picked by one side of GPU pair
 * indices (`pairs` = [i…, j…] from GpuSinkhorn.run): side 0 gathers by i (source), 1 by j (target).
 */
export function gatherPaired(x: Tensor, pairs: Tensor, side: 0 | 1, count: number): Tensor {
  const idx = Tensor.view(pairs, [count], pairs.offset + side * count);
  const out = gatherRows(x, idx);
  idx.dispose();
  return out;
}

/** Squared-Euclidean cost matrix on the GPU (one dispatch). */
export function costMatrix(x0: Tensor, x1: Tensor): Tensor {
  if (x0.rank !== 2 || x1.rank !== 2 || x0.shape[1] !== x1.shape[1]) throw new Error(`costMatrix: need [n, d] and [m, d], got [${x0.shape}] and [${x1.shape}]`);
  const [n, d] = x0.shape as [number, number];
  const m = x1.shape[0]!;
  const b = getBackend();
  const C = Tensor.empty([n, m]);
  b.dispatch(b.prepare(sqEuclideanCostKernel(n, m, d, x0.offset, x1.offset)), [x0.buffer, x1.buffer, C.buffer]);
  return C;
}

/**
 * Sinkhorn on the GPU with pair sampling, no readback: one dispatch per call (single-workgroup
 * styles) or a fixed recorded sequence (style 'multi', the default above 256 points per side). Keeps its own draw
 * counter (the Philox stream for the pair sampling) so a resumed run continues the same stream.
 */
export class GpuSinkhorn {
  draws = 0;
  private readonly key: [number, number];
  constructor(readonly n: number, readonly m: number, readonly pairs: number, readonly opts: SinkhornOptions, readonly seed: number) {
    if (!(opts.reg > 0)) throw new RangeError(`sinkhorn: reg must be positive, got ${opts.reg}`);
    this.key = seedKey(seed);
  }

  /**
   * Runs on cost C (n × m; centred in place, see kernels/sinkhorn.ts). Returns OUT = [F (n), G (m), row masses (n), stats (4)] and PAIRS =
   * [i (pairs), j (pairs)] as float indices (caller owns both).
   */
  run(C: Tensor, sampling: PairSampling): { out: Tensor; pairs: Tensor } {
    if (sampling === 'permutation' && (this.n !== this.m || this.pairs !== this.n)) throw new Error(`sinkhorn: permutation pairing needs n = m = pairs, got ${this.n}, ${this.m}, ${this.pairs}`);
    const b = getBackend();
    const out = Tensor.empty([sinkhornOutSize({ n: this.n, m: this.m, pairs: this.pairs })]);
    const pairs = Tensor.empty([Math.max(1, 2 * this.pairs)]);
    const u = sinkhornUniforms({
      reg: this.opts.reg,
      tol: this.opts.tol ?? SINKHORN_DEFAULTS.tol,
      maxIter: this.opts.maxIter ?? SINKHORN_DEFAULTS.maxIter,
      checkEvery: this.opts.checkEvery ?? SINKHORN_DEFAULTS.checkEvery,
      normalize: !!this.opts.normalize,
      key: this.key,
      draw: this.draws++,
      sampling,
      stageIters: this.opts.epsScaling ?? SINKHORN_DEFAULTS.epsScaling,
    });
    const shape = { n: this.n, m: this.m, pairs: this.pairs };
    const style = sinkhornResolveStyle(this.n, this.m, this.opts.style ?? 'auto');
    if (style !== 'multi') {
      b.dispatch(b.prepare(sinkhornKernel(shape, style, this.opts.threads)), [C.buffer, out.buffer, pairs.buffer], u);
      return { out, pairs };
    }
    // Multi-workgroup: a fixed sequence recorded into the open encoder (no readback); iteration
    // dispatches after convergence return at once on the GPU's DONE flag.
    const k = sinkhornMultiKernels(shape);
    const state = Tensor.empty([sinkhornStateSize(shape)]);
    const [cb, ob, sb] = [C.buffer, out.buffer, state.buffer];
    const row = b.prepare(k.row), col = b.prepare(k.col), check = b.prepare(k.check);
    b.dispatch(b.prepare(k.rowStats), [cb, sb]);
    b.dispatch(b.prepare(k.colMin), [cb, sb]);
    b.dispatch(b.prepare(k.centre), [cb, ob, sb]);
    b.dispatch(b.prepare(k.init), [sb], u);
    const maxIter = this.opts.maxIter ?? SINKHORN_DEFAULTS.maxIter;
    const checkEvery = Math.max(1, this.opts.checkEvery ?? SINKHORN_DEFAULTS.checkEvery);
    for (let it = 1; it <= maxIter; it++) {
      b.dispatch(row, [cb, ob, sb]);
      b.dispatch(col, [cb, ob, sb]);
      if (it % checkEvery === 0) b.dispatch(check, [sb]);
    }
    b.dispatch(b.prepare(k.finalRows), [cb, ob, sb]);
    b.dispatch(b.prepare(k.sample), [cb, ob, sb, pairs.buffer], u);
    state.dispose(); // the pool may hand it out again: later work runs after these dispatches
    return { out, pairs };
  }
}

export interface SinkhornReport {
  /** Plan P (n × m), from the potentials, float64 of the GPU's float32 potentials. */
  plan: Float64Array;
  iterations: number;
  /** L1 row-marginal error of the returned plan. */
  err: number;
  converged: boolean;
  pairs: Pairs;
}

/** Sinkhorn on the GPU with readback (tests, inspection): plan, stats and sampled pairs. */
export async function sinkhornPlan(x0: Tensor, x1: Tensor, opts: SinkhornOptions & { sampling?: PairSampling; pairs?: number; seed?: number }): Promise<SinkhornReport> {
  const n = x0.shape[0]!;
  const m = x1.shape[0]!;
  const C = costMatrix(x0, x1);
  const sampling = opts.sampling ?? 'replacement';
  const nPairs = sampling === 'none' ? 0 : (opts.pairs ?? n);
  const sk = new GpuSinkhorn(n, m, nPairs, opts, opts.seed ?? 0);
  const { out, pairs } = sk.run(C, sampling);
  const o = await out.data();
  const p = await pairs.data();
  const c = await C.data(); // the centred cost the potentials refer to
  for (const t of [C, out, pairs]) t.dispose();
  const kappa = o[2 * n + m + 2]!;
  const plan = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) plan[i * m + j] = Math.exp(o[i]! + o[n + j]! - kappa * c[i * m + j]!);
  const ii = new Int32Array(nPairs);
  const jj = new Int32Array(nPairs);
  for (let b = 0; b < nPairs; b++) {
    ii[b] = p[b]!;
    jj[b] = p[nPairs + b]!;
  }
  return { plan, iterations: o[2 * n + m]!, err: o[2 * n + m + 1]!, converged: o[2 * n + m + 3]! === 1, pairs: { i: ii, j: jj } };
}

// ---- float64 references ----

function logSumExp(v: Float64Array): number {
  let mx = -Infinity;
  for (const x of v) if (x > mx) mx = x;
  if (mx === -Infinity) return -Infinity;
  let s = 0;
  for (const x of v) s += Math.exp(x - mx);
  return mx + Math.log(s);
}

/**
 * Log-domain Sinkhorn in float64 with uniform marginals (reference): alternating exact LSE updates
 * until the L1 row-marginal error ≤ tol or maxIter. Returns the plan and potentials f, g (cost units).
 */
export function sinkhornLogF64(C: ArrayLike<number>, n: number, m: number, reg: number, opts: { maxIter?: number; tol?: number; normalize?: boolean } = {}): { plan: Float64Array; f: Float64Array; g: Float64Array; iterations: number; err: number } {
  let scale = 1;
  if (opts.normalize) {
    let mx = 0;
    for (let k = 0; k < n * m; k++) mx = Math.max(mx, C[k]!);
    scale = 1 / mx;
  }
  const eps = reg;
  const f = new Float64Array(n);
  const g = new Float64Array(m);
  const loga = -Math.log(n);
  const logb = -Math.log(m);
  const row = new Float64Array(m);
  const col = new Float64Array(n);
  const maxIter = opts.maxIter ?? 10_000;
  const tol = opts.tol ?? 1e-10;
  let it = 0;
  let err = Infinity;
  const rowErr = () => {
    let e = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) row[j] = (f[i]! + g[j]! - C[i * m + j]! * scale) / eps;
      e += Math.abs(Math.exp(logSumExp(row)) - 1 / n);
    }
    return e;
  };
  while (it < maxIter) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) row[j] = (g[j]! - C[i * m + j]! * scale) / eps;
      f[i] = eps * (loga - logSumExp(row));
    }
    for (let j = 0; j < m; j++) {
      for (let i = 0; i < n; i++) col[i] = (f[i]! - C[i * m + j]! * scale) / eps;
      g[j] = eps * (logb - logSumExp(col));
    }
    it++;
    if (it % 10 === 0 || it === maxIter) {
      err = rowErr();
      if (err <= tol) break;
    }
  }
  const plan = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) plan[i * m + j] = Math.exp((f[i]! + g[j]! - C[i * m + j]! * scale) / eps);
  return { plan, f, g, iterations: it, err: rowErr() };
}

/**
 * Classical (non-log) Sinkhorn with K = exp(−C/ε) (POT's `sinkhorn_knopp`; reference for the
 * underflow demonstration), in float64 or with every value rounded to float32 (`float32`): the plan
 * is NaN where a row or column of K underflowed to 0 (0/0).
 */
export function sinkhornClassicF64(C: ArrayLike<number>, n: number, m: number, reg: number, iters = 1000, float32 = false): Float64Array {
  const r = float32 ? Math.fround : (x: number) => x;
  const K = new Float64Array(n * m);
  for (let k = 0; k < n * m; k++) K[k] = r(Math.exp(-C[k]! / reg));
  const u = new Float64Array(n).fill(1 / n);
  const v = new Float64Array(m).fill(1 / m);
  for (let it = 0; it < iters; it++) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < m; j++) s = r(s + r(K[i * m + j]! * v[j]!));
      u[i] = r(1 / n / s);
    }
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) s = r(s + r(K[i * m + j]! * u[i]!));
      v[j] = r(1 / m / s);
    }
  }
  const plan = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) plan[i * m + j] = u[i]! * K[i * m + j]! * v[j]!;
  return plan;
}
