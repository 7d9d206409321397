/**
 * The bijection interface every flow layer implements. Conventions (as zuko and nflows):
 *
 *  - tensors are batches of row vectors: x is [B, D]; an optional context is [B, C];
 *  - `forward` is the NORMALIZING direction, data x → base z, the direction log-probabilities are
 *    evaluated in: it returns y = f(x) and log|det ∂f/∂x| per row ([B]);
 *  - `inverse` is the generative direction: it returns x = f⁻¹(y) and log|det ∂f⁻¹/∂y| per row,
 *    which equals −log|det ∂f/∂x| at x = f⁻¹(y);
 *  - both are compositions of engine ops, so they are differentiable through the tape (in the
 *    inputs, the context and every parameter). Where a layer needs a numerical solve (planar's
 *    root, a matrix inverse), the solve runs outside the tape and one Newton step inside it makes
 *    the value and the first derivatives exact (implicit-function theorem);
 *  - layers with a conditioner network take the context (`contextDim > 0`); the others ignore it.
 *
 * A layer may own constant GPU tensors (masks, permutation matrices): `dispose()` frees them.
 */
import { broadcastTo, zeros } from '../engine';
import { fmt } from '../engine/shape';
import type { Tensor } from '../engine';

export interface Forward {
  /** f(x), [B, D]. */
  y: Tensor;
  /** log|det ∂f/∂x| per row, [B]. */
  logDet: Tensor;
}

export interface Inverse {
  /** f⁻¹(y), [B, D]. */
  x: Tensor;
  /** log|det ∂f⁻¹/∂y| per row, [B]. */
  logDet: Tensor;
}

export interface Bijection {
  /** Layer kind, e.g. 'affine-coupling'. */
  readonly kind: string;
  readonly dim: number;
  /** Width of the conditioning input (0: unconditional or no conditioner). */
  readonly contextDim: number;
  forward(x: Tensor, context?: Tensor): Forward;
  inverse(y: Tensor, context?: Tensor): Inverse;
  /** Data-dependent initialisation from a batch (ActNorm); `x` is this layer's input. */
  dataInit?(x: Tensor, context?: Tensor): Promise<void>;
  /** Frees constant tensors the layer owns (not its parameters, which the ParamStore owns). */
  dispose(): void;
}

/** Checks x is [B, dim] and returns B. */
export function checkRows(kind: string, x: Tensor, dim: number, what = 'input'): number {
  if (!x || typeof (x as Tensor).shape === 'undefined') throw new TypeError(`${kind}: ${what} must be a Tensor [batch, ${dim}]`);
  if (x.rank !== 2 || x.shape[1] !== dim) {
    throw new Error(`${kind}: ${what} must have shape [batch, ${dim}] (dimension ${dim}), got ${fmt(x.shape)}`);
  }
  return x.shape[0]!;
}

/** Checks the context of a conditional layer: [B, contextDim] when contextDim > 0, absent otherwise. */
export function checkContext(kind: string, context: Tensor | undefined, contextDim: number, rows: number): Tensor | undefined {
  if (contextDim === 0) {
    if (context) throw new Error(`${kind}: this layer is unconditional (contextDim 0) but a context ${fmt(context.shape)} was given`);
    return undefined;
  }
  if (!context) throw new Error(`${kind}: this layer is conditional: a context of shape [${rows}, ${contextDim}] is required`);
  if (context.rank !== 2 || context.shape[0] !== rows || context.shape[1] !== contextDim) {
    throw new Error(`${kind}: context must have shape [${rows}, ${contextDim}], got ${fmt(context.shape)}`);
  }
  return context;
}

/** A per-row log-determinant that is the same for every row (a scalar tensor broadcast to [B]). */
export function perRow(scalar: Tensor, rows: number): Tensor {
  return broadcastTo(scalar, [rows]);
}

/** Zero log-determinant for volume-preserving layers. */
export function zeroLogDet(rows: number): Tensor {
  return zeros([rows]);
}
