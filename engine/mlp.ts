/**
 * The `mlp` primitive's GPU side: a whole dense network per dispatch (kernels/mlp/), and its VJP in
 * two dispatches (reverse kernel: input cotangents and per-thread parameter gradients; reduce: the
 * sum over threads). Inputs, in order: x [B, nx], the context [B, nc] when `contextCols` > 0, then
 * W_0, b_0, …, W_{L−1}, b_{L−1}, then the masks M_0 … M_{L−1} when `masked` (constants: no gradient).
 * Tensors that share a buffer (parameter views into one ParamSet) bind it once.
 */
import type { Activation } from '../kernels/activations';
import { mlpForwardKernel, mlpJvpKernel, mlpParamCount, mlpReduceKernel, mlpReverseKernel, mlpThreads, packedOffsets, type MlpDesc, type SlotRef } from '../kernels/mlp/kernels';
import type { BufferHandle } from './backend';
import { forward } from './prims';
import { fmt } from './shape';
import { getBackend, Tensor } from './tensor';

export interface MlpParams {
  activation: Activation;
  /** Number of dense layers L. */
  layers: number;
  /** Context columns (the input after x; 0 = none). */
  contextCols: number;
  /** Whether L constant 0/1 masks follow the parameters. */
  masked: boolean;
}

/** Samples per thread: forward, reverse (reverse writes one partial gradient row per thread). */
export const SAMPLES_FWD = 4;
export const SAMPLES_REV = 8;

interface Parts {
  x: Tensor;
  ctx: Tensor | null;
  ws: Tensor[];
  bs: Tensor[];
  masks: Tensor[] | null;
}

export function mlpParts(inputs: readonly Tensor[], p: MlpParams): Parts {
  let i = 0;
  const x = inputs[i++]!;
  const ctx = p.contextCols > 0 ? inputs[i++]! : null;
  const ws: Tensor[] = [];
  const bs: Tensor[] = [];
  for (let k = 0; k < p.layers; k++) {
    ws.push(inputs[i++]!);
    bs.push(inputs[i++]!);
  }
  const masks = p.masked ? inputs.slice(i, i + p.layers) : null;
  return { x, ctx, ws, bs, masks };
}

export function mlpDims(parts: Parts): number[] {
  return [parts.ws[0]!.shape[0]!, ...parts.ws.map((w) => w.shape[1]!)];
}

/** Distinct buffers among `ts` (in first-seen order) and each tensor's slot and offset. */
export function slotsOf(ts: readonly Tensor[]): { buffers: BufferHandle[]; refs: SlotRef[] } {
  const buffers: BufferHandle[] = [];
  const ids: BufferHandle['id'][] = [];
  const refs = ts.map((t) => {
    let slot = ids.indexOf(t.buffer.id);
    if (slot < 0) {
      slot = ids.length;
      ids.push(t.buffer.id);
      buffers.push(t.buffer);
    }
    return { slot, offset: t.offset };
  });
  return { buffers, refs };
}

/**
 * Binding slots for `head`, `params` and `extra` within the adapter's storage-buffer limit: when they
 * live in more buffers than it binds, the parameters (and masks) are first copied into one scratch
 * buffer (a concat; returned for the caller to dispose). Throws, naming `what`, when even that does
 * not fit. Shared by the `mlp` and `flowLayer` primitives.
 */
export function bindWithinLimit(what: string, head: Tensor[], params: Tensor[], extra: Tensor[]): { buffers: BufferHandle[]; refs: SlotRef[]; scratch: Tensor | null } {
  const maxSlots = Math.max(3, (getBackend().adapter.limits.maxStorageBuffersPerShaderStage ?? 8) - 2);
  let { buffers, refs } = slotsOf([...head, ...params, ...extra]);
  let scratch: Tensor | null = null;
  if (buffers.length > maxSlots) {
    const flat = params.map((t) => Tensor.view(t, [t.size]));
    scratch = forward.concat(flat, { axis: 0 });
    for (const f of flat) f.dispose();
    let off = 0;
    const views = params.map((t) => {
      const v = Tensor.view(scratch!, t.shape, off);
      off += t.size;
      return v;
    });
    ({ buffers, refs } = slotsOf([...head, ...views, ...extra]));
    for (const v of views) v.dispose();
  }
  if (buffers.length > maxSlots) throw new Error(`${what} live in ${buffers.length} buffers, more than this adapter binds (${maxSlots})`);
  return { buffers, refs, scratch };
}

/** The kernel's view of the inputs (bindWithinLimit says how they are bound). */
function describe(parts: Parts, p: MlpParams, samples: number, extra: Tensor[] = []): { desc: MlpDesc; buffers: BufferHandle[]; extraRefs: SlotRef[]; scratch: Tensor | null } {
  const L = p.layers;
  const head = [parts.x, ...(parts.ctx ? [parts.ctx] : [])];
  const params = [...parts.ws, ...parts.bs, ...(parts.masks ?? [])];
  const { buffers, refs, scratch } = bindWithinLimit("mlp: the network's tensors", head, params, extra);
  let i = 0;
  const x = refs[i++]!;
  const ctx = parts.ctx ? refs[i++]! : null;
  const w = refs.slice(i, i + L);
  i += L;
  const b = refs.slice(i, i + L);
  i += L;
  const mask = parts.masks ? refs.slice(i, i + L) : null;
  if (mask) i += L;
  const desc: MlpDesc = { batch: parts.x.shape[0]!, dims: mlpDims(parts), contextCols: p.contextCols, activation: p.activation, slots: buffers.length, x, ctx, w, b, mask, samples };
  return { desc, buffers, extraRefs: refs.slice(i), scratch };
}

/** Checks shapes; throws naming the layer. */
export function checkMlp(inputs: readonly Tensor[], p: MlpParams): void {
  const parts = mlpParts(inputs, p);
  const B = parts.x.shape[0];
  if (parts.x.rank !== 2) throw new Error(`mlp: x must be [B, n], got ${fmt(parts.x.shape)}`);
  if (parts.ctx && (parts.ctx.rank !== 2 || parts.ctx.shape[0] !== B || parts.ctx.shape[1] !== p.contextCols)) throw new Error(`mlp: context must be [${B}, ${p.contextCols}], got ${fmt(parts.ctx.shape)}`);
  let width = parts.x.shape[1]! + p.contextCols;
  for (let k = 0; k < p.layers; k++) {
    const w = parts.ws[k]!;
    const b = parts.bs[k]!;
    if (w.rank !== 2 || w.shape[0] !== width) throw new Error(`mlp: layer ${k} weight ${fmt(w.shape)} does not take ${width} inputs`);
    if (b.rank !== 1 || b.shape[0] !== w.shape[1]) throw new Error(`mlp: layer ${k} bias ${fmt(b.shape)} must be [${w.shape[1]}]`);
    const m = parts.masks?.[k];
    if (m && (m.rank !== 2 || m.shape[0] !== w.shape[0] || m.shape[1] !== w.shape[1])) throw new Error(`mlp: layer ${k} mask ${fmt(m.shape)} must match its weight ${fmt(w.shape)}`);
    width = w.shape[1]!;
  }
}

export function mlpForward(inputs: readonly Tensor[], p: MlpParams): Tensor {
  const parts = mlpParts(inputs, p);
  const { desc, buffers, scratch } = describe(parts, p, SAMPLES_FWD);
  const out = Tensor.empty([desc.batch, desc.dims[desc.dims.length - 1]!]);
  const b = getBackend();
  b.dispatch(b.prepare(mlpForwardKernel(desc)), [...buffers, out.buffer]);
  scratch?.dispose();
  return out;
}

/** y and the forward-mode tangent J·t for t = [tx, tctx] of shape [B, nx + nc] (not on the tape). */
export function mlpJvp(inputs: readonly Tensor[], p: MlpParams, tangent: Tensor): { y: Tensor; ty: Tensor } {
  const parts = mlpParts(inputs, p);
  const { desc, buffers, scratch } = describe(parts, p, SAMPLES_FWD);
  const nOut = desc.dims[desc.dims.length - 1]!;
  if (tangent.rank !== 2 || tangent.shape[0] !== desc.batch || tangent.shape[1] !== desc.dims[0] || tangent.offset !== 0) throw new Error(`mlp jvp: tangent must be a fresh [${desc.batch}, ${desc.dims[0]}] tensor, got ${fmt(tangent.shape)}`);
  const y = Tensor.empty([desc.batch, nOut]);
  const ty = Tensor.empty([desc.batch, nOut]);
  const b = getBackend();
  b.dispatch(b.prepare(mlpJvpKernel(desc)), [...buffers, tangent.buffer, y.buffer, ty.buffer]);
  scratch?.dispose();
  return { y, ty };
}

/**
 * Cotangents of every input from the output cotangent g: one reverse dispatch (input cotangents
 * and per-thread partial parameter gradients), one reduce dispatch. Masks get null.
 */
export function mlpVjp(inputs: readonly Tensor[], p: MlpParams, g: Tensor, needs: readonly boolean[]): (Tensor | null)[] {
  const parts = mlpParts(inputs, p);
  const { desc, buffers, extraRefs, scratch } = describe(parts, p, SAMPLES_REV, [g]);
  const B = desc.batch;
  const nx = parts.x.shape[1]!;
  const nc = p.contextCols;
  const withInput = needs[0]! || (nc > 0 && needs[1]!);
  const np = mlpParamCount(desc.dims);
  const threads = mlpThreads(desc);
  const be = getBackend();
  const din = withInput ? Tensor.empty([B * (nx + nc)]) : null;
  const part = Tensor.empty([threads, np]);
  const bufs = buffers;
  if (din) bufs.push(din.buffer);
  bufs.push(part.buffer);
  be.dispatch(be.prepare(mlpReverseKernel(desc, withInput, extraRefs[0]!)), bufs);
  const grad = Tensor.empty([np]);
  be.dispatch(be.prepare(mlpReduceKernel(threads, np)), [part.buffer, grad.buffer]);
  part.dispose();
  scratch?.dispose();
  const off = packedOffsets(desc.dims);
  const out: (Tensor | null)[] = [];
  let i = 0;
  out.push(needs[i++] && din ? Tensor.view(din, [B, nx], 0) : null);
  if (nc > 0) out.push(needs[i++] && din ? Tensor.view(din, [B, nc], B * nx) : null);
  for (let k = 0; k < p.layers; k++) out.push(needs[i + 2 * k] ? Tensor.view(grad, parts.ws[k]!.shape, off.w[k]!) : null, needs[i + 2 * k + 1] ? Tensor.view(grad, parts.bs[k]!.shape, off.b[k]!) : null);
  if (parts.masks) for (let k = 0; k < p.layers; k++) out.push(null);
  din?.dispose();
  grad.dispose();
  return out;
}
