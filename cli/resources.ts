/**
 * A pure estimate of the memory a training run takes, checked before any work starts.
 *
 * Why: the flags alone do not bound memory (`--batch 1048576 --method realnvp` was accepted and
 * grew to 6.3 GB before anything failed; an exact OT plan at batch 65 536 is a 34 GB cost matrix).
 * The estimate is deliberately generous (about twice what was measured) and simple: parameters
 * with their gradients and Adam moments, plus per-row activations kept for the backward pass, plus
 * the minibatch OT's B × B matrices. It is checked against MEMORY_BOUND at the command line, and
 * its largest single buffer against the adapter's maxStorageBufferBindingSize / maxBufferSize when
 * the adapter is known (cli/tasks.ts). Browser-safe.
 */
import { defaultLayers } from '../flows/build';
import { UsageError } from './args';
import { MEMORY_BOUND } from './flags';
import type { FlowMethod, TrainConfig } from '../train/contract';
import { familyOf } from '../train/methods';

export { MEMORY_BOUND };

export interface MemoryEstimate {
  /** Trainable parameters. */
  params: number;
  /** Device memory (bytes): parameters ×4 (value, gradient, Adam m, v) and activations. */
  gpuBytes: number;
  /** Host memory (bytes) of the minibatch OT plan (exact: B × B costs in float64). */
  hostBytes: number;
  /** The largest single GPU buffer (bytes). */
  largestBuffer: number;
  /** What the estimate assumed, for messages. */
  model: string;
}

/** Hidden widths as the trainers read the option (array, number or "64,64" / "64x64"); defaults otherwise. */
function widths(hidden: unknown, dflt: number[]): number[] {
  if (hidden === undefined || hidden === null) return dflt;
  const list = Array.isArray(hidden) ? hidden.map(Number) : typeof hidden === 'number' ? [hidden] : String(hidden).split(/[,x ]+/).filter(Boolean).map(Number);
  // Invalid widths are the trainer's to report; estimate with what can be read.
  const ok = list.filter((h) => Number.isFinite(h) && h > 0);
  return ok.length ? ok : dflt;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
/** Parameters of a dense network with layer sizes `dims`. */
const mlpParams = (dims: number[]) => sum(dims.slice(1).map((d, i) => dims[i]! * d + d));

/** The estimate for training `cfg` on data of dimension `dim`. */
export function estimateTraining(cfg: Pick<TrainConfig, 'method' | 'batch' | 'options'>, dim: number): MemoryEstimate {
  const B = cfg.batch;
  const o = cfg.options ?? {};
  if (familyOf(cfg.method) === 'cfm') {
    const hidden = widths(o.hidden, [64, 64, 64]);
    const dims = [dim + 1, ...hidden, dim];
    // sf2m trains a score network of the same shape next to the vector field.
    const P = (cfg.method === 'sf2m' ? 2 : 1) * mlpParams(dims);
    const ot = o.ot ?? (cfg.method === 'otcfm' || cfg.method === 'sf2m' ? 'exact' : cfg.method === 'sbcfm' ? 'sinkhorn' : null);
    const sinkhorn = ot === 'sinkhorn' ? 3 * B * B * 4 : 0;
    // Per row: forward and backward values of every layer, and the x0, x1, xt, ut rows.
    const gpuBytes = 4 * (4 * P + B * (4 * sum(dims) + 6 * dim)) + sinkhorn;
    return {
      params: P,
      gpuBytes,
      hostBytes: ot === 'exact' ? B * B * 8 : 0,
      largestBuffer: Math.max(4 * P, 4 * B * Math.max(...dims), sinkhorn / 3),
      model: `${cfg.method}, hidden [${hidden.join(', ')}], dimension ${dim}, batch ${B}`,
    };
  }
  const method = cfg.method as FlowMethod;
  const nLayers = Number(o.layers);
  const layers = Number.isInteger(nLayers) && nLayers > 0 ? nLayers : defaultLayers(method, dim);
  const hidden = widths(o.hidden, [64, 64]);
  const simple = method === 'planar' || method === 'radial';
  const cond = [dim, ...hidden, 2 * dim];
  const P = layers * (simple ? 2 * dim + 2 : mlpParams(cond) + 3 * dim * dim);
  // Per row and layer: the conditioner's activations and the layer's inputs and outputs, kept
  // by the tape for the backward pass, with their gradients and one temporary each.
  const perRow = layers * (simple ? 6 * dim : sum(cond) + 4 * dim);
  return {
    params: P,
    gpuBytes: 4 * (4 * P + 3 * B * perRow),
    hostBytes: 0,
    largestBuffer: Math.max(4 * P, 4 * B * Math.max(...(simple ? [dim] : cond))),
    model: `${method}, ${layers} layers${simple ? '' : `, hidden [${hidden.join(', ')}]`}, dimension ${dim}, batch ${B}`,
  };
}

const gb = (b: number) => `${(b / 2 ** 30).toFixed(b < 2 ** 30 ? 2 : 1)} GiB`;

/** Refuses a run whose estimate exceeds MEMORY_BOUND (UsageError naming the flags to lower). */
export function checkMemoryBound(e: MemoryEstimate, bound = MEMORY_BOUND): void {
  const total = e.gpuBytes + e.hostBytes;
  if (total > bound) {
    throw new UsageError(
      `--batch / --option hidden, layers: ${e.model} needs an estimated ${gb(total)} (${gb(e.gpuBytes)} GPU, ${gb(e.hostBytes)} host for the OT plan); accepted: at most ${gb(bound)}. Lower --batch or the widths/layers`,
    );
  }
}

/** Refuses a run whose largest buffer exceeds the adapter's limits (when the adapter reports them). */
export function checkAdapterLimits(e: MemoryEstimate, limits: Record<string, number> | undefined): void {
  const binding = limits?.maxStorageBufferBindingSize;
  const buffer = limits?.maxBufferSize;
  const max = Math.min(binding ?? Infinity, buffer ?? Infinity);
  if (Number.isFinite(max) && e.largestBuffer > max) {
    throw new UsageError(
      `--batch / --option hidden: ${e.model} needs a GPU buffer of about ${gb(e.largestBuffer)}; this adapter allows ${gb(max)} (maxStorageBufferBindingSize ${binding ?? '?'}, maxBufferSize ${buffer ?? '?'}). Lower --batch or the widths`,
    );
  }
}
