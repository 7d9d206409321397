/**
 * `flowLayer`: a normalizing-flow layer with its conditioner as one primitive (engine/flowlayer.ts;
 * the formulas are in kernels/mlp/heads.ts). Flows use it at fusion level 'mlp' and above (one
 * dispatch per layer forward, two for its gradients); below, they compose the same layer op by op.
 */
import { ACTIVATIONS, type Activation } from '../kernels/activations';
import { FLOW_HEADS, type FlowHead } from '../kernels/mlp/heads';
import { MLP_MAX_WIDTH } from '../kernels/mlp/emit';
import { apply } from './autodiff';
import { checkFlowLayer, type FlowLayerParams } from './flowlayer';
import type { MlpLayer } from './ops';
import { fmt } from './shape';
import { Tensor } from './tensor';

export interface FlowLayerOptions {
  head: FlowHead;
  /** D, the flow's dimension. */
  dim: number;
  /** Couplings: the mask, 1 = conditioning coordinate (passes through); none for maf. */
  keep?: ArrayLike<number> | null;
  /** The log-scale bound B of the tanh soft clamp (default 3). */
  scaleBound?: number;
  /** The conditioner's activation (default 'relu'). */
  activation?: Activation;
  context?: Tensor;
  /** 'state' (default): [B, D + 1]; 'normal': [B, 1] = log N(h'; 0, I) + log|det|. */
  tail?: 'state' | 'normal';
  /** An ActNorm folded in front: x ← x ⊙ exp(s) + b. */
  pre?: { s: Tensor; b: Tensor };
  /**
   * Per layer, whether its mask is all ones, which the kernel then skips. The caller vouches for it
   * (the masks are constants it built; the GPU values are not read back to check).
   */
  onesMasks?: readonly boolean[];
}

function need(t: unknown, what: string): Tensor {
  if (!(t instanceof Tensor)) throw new TypeError(`flowLayer: ${what} must be a Tensor, got ${t === null ? 'null' : typeof t}`);
  return t;
}

/** Whether a conditioner of these widths fits the fused kernels (else the flow composes op by op). */
export function flowLayerFits(dims: readonly number[]): boolean {
  return dims.every((d) => d <= MLP_MAX_WIDTH);
}

/**
 * One flow layer on the row state h = [x, log|det|] ([B, D + 1]; or [B, D], the log-det starting
 * at 0): the conditioner `layers` (with MADE masks for maf) and the bijection in one primitive.
 */
export function flowLayer(h: Tensor, layers: readonly MlpLayer[], o: FlowLayerOptions): Tensor {
  need(h, 'the state');
  if (!(FLOW_HEADS as readonly string[]).includes(o.head)) throw new Error(`flowLayer: unknown head "${o.head}"; accepted: ${FLOW_HEADS.join(', ')}`);
  const activation = o.activation ?? 'relu';
  if (!ACTIVATIONS.includes(activation)) throw new Error(`flowLayer: unknown activation "${activation}"; accepted: ${ACTIVATIONS.join(', ')}`);
  if (layers.length === 0) throw new Error('flowLayer: the conditioner needs at least one layer');
  const D = o.dim;
  if (h.rank !== 2 || (h.shape[1] !== D && h.shape[1] !== D + 1)) throw new Error(`flowLayer: the state must be [B, ${D}] or [B, ${D + 1}] (with the log-det), got ${fmt(h.shape)}`);
  const ctx = o.context ? need(o.context, 'context') : null;
  const masked = layers.some((l) => l.mask);
  if (masked && !layers.every((l) => l.mask)) throw new Error('flowLayer: give every layer a mask or none');
  const tail = o.tail ?? 'state';
  if (tail !== 'state' && tail !== 'normal') throw new Error(`flowLayer: tail "${String(tail)}" is not accepted; accepted: state, normal`);
  const inputs = [h, ...(ctx ? [ctx] : []), ...layers.flatMap((l, k) => [need(l.w, `W_${k}`), need(l.b, `b_${k}`)]), ...(masked ? layers.map((l, k) => need(l.mask, `mask_${k}`)) : [])];
  if (o.pre) inputs.push(need(o.pre.s, 'the ActNorm log-scale'), need(o.pre.b, 'the ActNorm shift'));
  const params: FlowLayerParams = {
    activation, layers: layers.length, contextCols: ctx ? ctx.shape[1]! : 0, masked,
    head: o.head, dim: D, keep: o.keep ? Array.from(o.keep) : null, scaleBound: o.scaleBound ?? 3,
    stateIn: h.shape[1] === D + 1, tail, pre: !!o.pre, onesMasks: o.onesMasks ? [...o.onesMasks] : null,
  };
  checkFlowLayer(inputs, params);
  const dims = [D + params.contextCols, ...layers.map((l) => l.w.shape[1]!)];
  if (!flowLayerFits(dims)) throw new RangeError(`flowLayer: conditioner widths [${dims.join(', ')}] exceed the kernel's ${MLP_MAX_WIDTH}; compose the layer op by op`);
  return apply('flowLayer', inputs, params);
}
