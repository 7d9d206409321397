/**
 * Neural spline flow layers (Durkan, Bekasov, Murray, Papamakarios 2019, "Neural Spline Flows"):
 * each transformed coordinate goes through its own monotonic rational-quadratic spline with K bins
 * on [−B, B] and identity tails (the engine's `rqspline` primitive, kernels/spline.ts), whose 3K − 1
 * parameters (K widths, K heights, K − 1 interior derivatives, unnormalised) come from a network:
 *
 *   coupling (RQ-NSF (C)):         y_A = x_A,  y_B = RQS(x_B; θ(x_A, c))        log|det| = Σ_B log RQS′
 *   autoregressive (RQ-NSF (AR)):  z_i = RQS(x_i; θ_i(x_<i, c)) with a MADE    log|det| = Σ_i log RQS′
 *
 * Splines rather than affine maps because a spline can bend a coordinate's density into sharp
 * features (checkerboard's edges) in one layer; the tails keep the map a bijection of ℝ.
 *
 * Initialisation: the conditioner's last layer starts near zero (MLPOptions.lastGain), so widths and
 * heights start equal, and the derivatives are shifted by c = log(e^{1−m} − 1) (m the minimum
 * derivative) so softplus(0 + c) + m = 1: every layer starts as the identity (as nflows pads its
 * boundary derivatives).
 *
 * The autoregressive inverse (sampling) runs D passes of the MADE (as MAFLayer): after pass k every
 * coordinate of degree ≤ k is exact.
 */
import { affine, concat, reshape, rqspline, slice, sum, transpose, type Tensor } from '../engine';
import type { Rng } from '../engine/philox';
import { SPLINE_MINIMA } from '../engine/spline';
import { checkContext, checkRows, type Bijection, type Forward, type Inverse } from './bijection';
import { MADE, MLP, type MLPOptions } from './nets';
import type { ParamStore } from './params';

export interface SplineOptions extends MLPOptions {
  /** Bins K (default 8). */
  bins?: number;
  /** The splines act on [−bound, bound] (default 3). */
  bound?: number;
  contextDim?: number;
}

/** The derivative shift that makes a zero output a derivative of exactly 1. */
const DERIV_SHIFT = Math.log(Math.expm1(1 - SPLINE_MINIMA.minDerivative));

/** Splines of x [rows, n] from conditioner output p [rows, n·(3K − 1)] laid out per coordinate. */
function applySplines(x: Tensor, p: Tensor, K: number, bound: number, inverse: boolean): { y: Tensor; lad: Tensor } {
  const [rows, n] = x.shape as [number, number];
  const q = reshape(p, [rows, n, 3 * K - 1]);
  const w = slice(q, [0, 0, 0], [rows, n, K]);
  const h = slice(q, [0, 0, K], [rows, n, K]);
  const d = K > 1 ? affine(slice(q, [0, 0, 2 * K], [rows, n, K - 1]), 1, DERIV_SHIFT) : null;
  const { y, logDet } = rqspline(x, w, h, d, { bound, inverse });
  return { y, lad: sum(logDet, 1) };
}

function checkBins(kind: string, K: number, bound: number): void {
  if (!Number.isInteger(K) || K < 1 || K > 64) throw new RangeError(`${kind}: bins must be an integer from 1 to 64, got ${K}`);
  if (!(bound > 0) || !Number.isFinite(bound)) throw new RangeError(`${kind}: bound must be a positive number, got ${bound}`);
}

/**
 * Coupling: the coordinates split into two contiguous blocks (the first ⌊D/2⌋ and the rest); `flip`
 * false keeps the first block and transforms the second, true the other way round.
 */
export class SplineCoupling implements Bijection {
  readonly kind = 'spline-coupling';
  readonly contextDim: number;
  readonly bins: number;
  readonly bound: number;
  private readonly net: MLP;
  /** [start, size] of the kept and transformed blocks. */
  private readonly keepBlock: [number, number];
  private readonly trBlock: [number, number];

  constructor(store: ParamStore, prefix: string, readonly dim: number, opts: SplineOptions & { flip: boolean }, rng: Rng) {
    if (!Number.isInteger(dim) || dim < 2) throw new Error(`spline coupling needs at least 2 dimensions (the data has ${dim}); use the autoregressive variant for 1-D data`);
    this.bins = opts.bins ?? 8;
    this.bound = opts.bound ?? 3;
    checkBins(this.kind, this.bins, this.bound);
    this.contextDim = opts.contextDim ?? 0;
    const half = Math.floor(dim / 2);
    const first: [number, number] = [0, half];
    const second: [number, number] = [half, dim - half];
    [this.keepBlock, this.trBlock] = opts.flip ? [second, first] : [first, second];
    this.net = new MLP(store, `${prefix}.net`, this.keepBlock[1] + this.contextDim, this.trBlock[1] * (3 * this.bins - 1), opts, rng);
  }

  private run(x: Tensor, context: Tensor | undefined, inverse: boolean): { y: Tensor; lad: Tensor } {
    const rows = checkRows(this.kind, x, this.dim);
    const ctx = checkContext(this.kind, context, this.contextDim, rows);
    const kept = slice(x, [0, this.keepBlock[0]], [rows, this.keepBlock[1]]);
    const moved = slice(x, [0, this.trBlock[0]], [rows, this.trBlock[1]]);
    const { y, lad } = applySplines(moved, this.net.apply(kept, ctx), this.bins, this.bound, inverse);
    return { y: this.keepBlock[0] === 0 ? concat([kept, y], 1) : concat([y, kept], 1), lad };
  }

  forward(x: Tensor, context?: Tensor): Forward {
    const { y, lad } = this.run(x, context, false);
    return { y, logDet: lad };
  }

  inverse(y: Tensor, context?: Tensor): Inverse {
    const { y: x, lad } = this.run(y, context, true);
    return { x, logDet: lad };
  }

  dispose(): void {}
}

export interface SplineAROptions extends SplineOptions {
  /** Degrees of the coordinates (default natural 1..D; 'reverse' flips it). */
  order?: readonly number[] | 'natural' | 'reverse';
}

/** Autoregressive: a MADE gives coordinate i's spline parameters from the coordinates before it. */
export class SplineAutoregressive implements Bijection {
  readonly kind = 'spline-autoregressive';
  readonly contextDim: number;
  readonly bins: number;
  readonly bound: number;
  readonly made: MADE;

  constructor(store: ParamStore, prefix: string, readonly dim: number, opts: SplineAROptions, rng: Rng) {
    this.bins = opts.bins ?? 8;
    this.bound = opts.bound ?? 3;
    checkBins(this.kind, this.bins, this.bound);
    this.contextDim = opts.contextDim ?? 0;
    const o = opts.order ?? 'natural';
    const order = o === 'natural' ? [...Array(dim).keys()].map((i) => i + 1) : o === 'reverse' ? [...Array(dim).keys()].map((i) => dim - i) : [...o];
    this.made = new MADE(store, `${prefix}.made`, dim, this.contextDim, order, 3 * this.bins - 1, opts, rng);
  }

  /** MADE output [rows, (3K − 1)·D] (block j, column i: parameter j of coordinate i) → [rows, D·(3K − 1)]. */
  private params(x: Tensor, ctx: Tensor | undefined, rows: number): Tensor {
    const h = this.made.apply(x, ctx);
    return reshape(transpose(reshape(h, [rows, 3 * this.bins - 1, this.dim]), [0, 2, 1]), [rows, this.dim * (3 * this.bins - 1)]);
  }

  forward(x: Tensor, context?: Tensor): Forward {
    const rows = checkRows(this.kind, x, this.dim);
    const ctx = checkContext(this.kind, context, this.contextDim, rows);
    const { y, lad } = applySplines(x, this.params(x, ctx, rows), this.bins, this.bound, false);
    return { y, logDet: lad };
  }

  inverse(z: Tensor, context?: Tensor): Inverse {
    const rows = checkRows(this.kind, z, this.dim);
    const ctx = checkContext(this.kind, context, this.contextDim, rows);
    let x = z;
    let lad: Tensor | null = null;
    for (let pass = 0; pass < this.dim; pass++) {
      const r = applySplines(z, this.params(x, ctx, rows), this.bins, this.bound, true);
      x = r.y;
      lad = r.lad;
    }
    return { x, logDet: lad! };
  }

  get degrees(): number[] {
    return this.made.degrees;
  }

  dispose(): void {
    this.made.dispose();
  }
}
