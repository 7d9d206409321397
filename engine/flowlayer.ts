/**
 * The `flowLayer` primitive's GPU side: a normalizing-flow layer (affine or additive coupling, MAF)
 * with its conditioner in one dispatch, and its VJP in two (kernels/mlp/heads.ts: reverse kernel,
 * then the mlp reduce). The row state is [h, ℓ] (coordinates and running log|det|).
 *
 * Inputs, in order: the layer input [B, D + 1] ([B, D] when `stateIn` is false), the context
 * [B, C] when `contextCols` > 0, W_0, b_0, …, W_{L−1}, b_{L−1}, the masks M_0 … M_{L−1} when
 * `masked` (constants), then the folded ActNorm's log-scale and shift ([D] each) when `pre`.
 * Output: [B, D + 1] (`tail` 'state') or [B, 1] = log N(h'; 0, I) + ℓ' (`tail` 'normal').
 * The parameter gradients are views into one buffer in the order [σ, β], W_0, b_0, …, so a layer's
 * gradients are one run for Adam's packing.
 */
import { flowHeadForwardKernel, flowHeadReverseKernel, headOutputs, headParamCount, headWidths, type FlowHead, type FlowHeadDesc } from '../kernels/mlp/heads';
import { mlpReduceKernel, mlpThreads, packedOffsets, type MlpDesc, type SlotRef } from '../kernels/mlp/kernels';
import type { BufferHandle } from './backend';
import { bindWithinLimit, checkMlp, mlpDims, mlpParts, SAMPLES_FWD, SAMPLES_REV, type MlpParams } from './mlp';
import { fmt } from './shape';
import { getBackend, Tensor } from './tensor';

export interface FlowLayerParams extends MlpParams {
  head: FlowHead;
  /** D, the flow's dimension. */
  dim: number;
  /** Couplings: the mask (1 = conditioning coordinate); null for maf. */
  keep: number[] | null;
  scaleBound: number;
  /** The input carries ℓ as its last column. */
  stateIn: boolean;
  tail: 'state' | 'normal';
  /** An ActNorm's log-scale and shift follow the masks. */
  pre: boolean;
  /** Per layer, whether its constant mask is all ones (the kernel then skips it); null: none is. */
  onesMasks: boolean[] | null;
}

interface Parts {
  h: Tensor;
  ctx: Tensor | null;
  ws: Tensor[];
  bs: Tensor[];
  masks: Tensor[] | null;
  pre: { s: Tensor; b: Tensor } | null;
}

function parts(inputs: readonly Tensor[], p: FlowLayerParams): Parts {
  const m = mlpParts(inputs, p);
  const at = 1 + (p.contextCols > 0 ? 1 : 0) + 2 * p.layers + (p.masked ? p.layers : 0);
  return { h: m.x, ctx: m.ctx, ws: m.ws, bs: m.bs, masks: m.masks, pre: p.pre ? { s: inputs[at]!, b: inputs[at + 1]! } : null };
}

/** Checks shapes and parameters; throws naming what is wrong and what is accepted. */
export function checkFlowLayer(inputs: readonly Tensor[], p: FlowLayerParams): void {
  const D = p.dim;
  if (!Number.isInteger(D) || D < 1) throw new Error(`flowLayer: dim must be a positive integer, got ${D}`);
  const pt = parts(inputs, p);
  const { inW } = headWidths(p);
  if (pt.h.rank !== 2 || pt.h.shape[1] !== inW) throw new Error(`flowLayer: the input must be [B, ${inW}] (${p.stateIn ? 'D coordinates and the log-det' : 'D coordinates'}), got ${fmt(pt.h.shape)}`);
  // The conditioner as an mlp over D inputs (+ context): the same checks as the mlp primitive.
  const asMlp = [Tensor.view(pt.h, [pt.h.shape[0]!, D], pt.h.offset), ...inputs.slice(1)];
  try {
    checkMlp(asMlp, p);
  } finally {
    asMlp[0]!.dispose();
  }
  const nOut = pt.ws[p.layers - 1]!.shape[1];
  if (nOut !== headOutputs(p.head) * D) throw new Error(`flowLayer ${p.head}: the conditioner must give ${headOutputs(p.head) * D} outputs, gives ${nOut}`);
  if (p.head === 'maf' ? p.keep !== null : !p.keep || p.keep.length !== D || !p.keep.every((v) => v === 0 || v === 1)) {
    throw new Error(`flowLayer ${p.head}: ${p.head === 'maf' ? 'takes no coupling mask' : `needs a 0/1 coupling mask of ${D} entries`}`);
  }
  if (!(p.scaleBound > 0) || !Number.isFinite(p.scaleBound)) throw new RangeError(`flowLayer: scaleBound must be a positive number, got ${p.scaleBound}`);
  if (p.onesMasks && (!p.masked || p.onesMasks.length !== p.layers)) throw new Error(`flowLayer: onesMasks needs one flag per masked layer (${p.layers})`);
  if (pt.pre) for (const [name, t] of [['log-scale', pt.pre.s], ['shift', pt.pre.b]] as const) if (t.rank !== 1 || t.shape[0] !== D) throw new Error(`flowLayer: the ActNorm ${name} must be [${D}], got ${fmt(t.shape)}`);
}

/**
 * The kernel's view of the inputs (and `extra` tensors after them). When they live in more buffers
 * than the adapter binds, the parameters are first copied into one scratch buffer (a concat).
 */
function describe(pt: Parts, p: FlowLayerParams, samples: number, extra: Tensor[] = []): { desc: FlowHeadDesc; buffers: BufferHandle[]; extraRefs: SlotRef[]; scratch: Tensor | null } {
  const L = p.layers;
  const head = [pt.h, ...(pt.ctx ? [pt.ctx] : [])];
  const params = [...pt.ws, ...pt.bs, ...(pt.masks ?? []), ...(pt.pre ? [pt.pre.s, pt.pre.b] : [])];
  const { buffers, refs, scratch } = bindWithinLimit("flowLayer: the layer's tensors", head, params, extra);
  let i = 0;
  const x = refs[i++]!;
  const ctx = pt.ctx ? refs[i++]! : null;
  const w = refs.slice(i, i + L);
  i += L;
  const b = refs.slice(i, i + L);
  i += L;
  const mask = pt.masks ? refs.slice(i, i + L) : null;
  if (mask) i += L;
  const pre = pt.pre ? { s: refs[i]!, b: refs[i + 1]! } : null;
  if (pre) i += 2;
  const dims = mlpDims({ x: pt.h, ctx: pt.ctx, ws: pt.ws, bs: pt.bs, masks: pt.masks });
  const net: MlpDesc = { batch: pt.h.shape[0]!, dims, contextCols: p.contextCols, activation: p.activation, slots: buffers.length, x, ctx, w, b, mask, samples };
  const desc: FlowHeadDesc = { net, head: p.head, dim: p.dim, keep: p.keep, scaleBound: p.scaleBound, stateIn: p.stateIn, tail: p.tail, pre, onesMasks: p.onesMasks };
  return { desc, buffers, extraRefs: refs.slice(i), scratch };
}

export function flowLayerForward(inputs: readonly Tensor[], p: FlowLayerParams): Tensor {
  const pt = parts(inputs, p);
  const { desc, buffers, scratch } = describe(pt, p, SAMPLES_FWD);
  const out = Tensor.empty([desc.net.batch, headWidths(p).outW]);
  const b = getBackend();
  b.dispatch(b.prepare(flowHeadForwardKernel(desc)), [...buffers, out.buffer]);
  scratch?.dispose();
  return out;
}

/**
 * Cotangents of every input from the output cotangent g: one reverse dispatch (the input's and the
 * context's cotangents, per-thread partial parameter gradients), one reduce. Masks get null.
 */
export function flowLayerVjp(inputs: readonly Tensor[], p: FlowLayerParams, g: Tensor, needs: readonly boolean[]): (Tensor | null)[] {
  const pt = parts(inputs, p);
  const { desc, buffers, extraRefs, scratch } = describe(pt, p, SAMPLES_REV, [g]);
  const B = desc.net.batch;
  const { inW } = headWidths(p);
  const nc = p.contextCols;
  const withInput = needs[0]! || (nc > 0 && needs[1]!);
  const np = headParamCount(desc);
  const threads = mlpThreads(desc.net);
  const be = getBackend();
  const din = withInput ? Tensor.empty([B * (inW + nc)]) : null;
  const part = Tensor.empty([threads, np]);
  const bufs = [...buffers];
  if (din) bufs.push(din.buffer);
  bufs.push(part.buffer);
  be.dispatch(be.prepare(flowHeadReverseKernel(desc, withInput, extraRefs[0]!)), bufs);
  const grad = Tensor.empty([np]);
  be.dispatch(be.prepare(mlpReduceKernel(threads, np)), [part.buffer, grad.buffer]);
  part.dispose();
  scratch?.dispose();
  const P0 = p.pre ? 2 * p.dim : 0;
  const off = packedOffsets(desc.net.dims);
  const out: (Tensor | null)[] = [];
  let i = 0;
  out.push(needs[i++] && din ? Tensor.view(din, [B, inW], 0) : null);
  if (nc > 0) out.push(needs[i++] && din ? Tensor.view(din, [B, nc], B * inW) : null);
  for (let k = 0; k < p.layers; k++) {
    out.push(needs[i + 2 * k] ? Tensor.view(grad, pt.ws[k]!.shape, P0 + off.w[k]!) : null, needs[i + 2 * k + 1] ? Tensor.view(grad, pt.bs[k]!.shape, P0 + off.b[k]!) : null);
  }
  i += 2 * p.layers;
  if (pt.masks) for (let k = 0; k < p.layers; k++) out.push(null);
  if (pt.masks) i += p.layers;
  if (p.pre) out.push(needs[i] ? Tensor.view(grad, [p.dim], 0) : null, needs[i + 1] ? Tensor.view(grad, [p.dim], p.dim) : null);
  din?.dispose();
  grad.dispose();
  return out;
}
