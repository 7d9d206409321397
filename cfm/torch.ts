/**
 * The CFM vector field in PyTorch's layout, both ways.
 *
 * torchcfm's `MLP(dim, out_dim=None, w=64, time_varying=True)` is an `nn.Sequential` of
 * Linear(dim + 1, w), SELU, Linear(w, w), SELU, Linear(w, w), SELU, Linear(w, dim): its state dict
 * holds `net.{2k}.weight` with shape [out, in] (nn.Linear computes x·Wᵀ + b) and `net.{2k}.bias`
 * for the k-th Linear, the input being [x, t] with t last. wgflow's VectorField is the same network
 * (cfm/mlp.ts: [x, t] → hidden… → d, the same activation after every hidden layer) with W stored
 * [in, out] under the names `l{k}.W`, `l{k}.b`. So the conversion is a rename plus a transpose, and
 * any widths convert (torchcfm's constructor makes three equal ones; `nn.Sequential` of the same
 * pattern loads the others). The activation is not in a state dict: torchcfm's default is SELU.
 *
 * Browser-safe (no Node imports): a page can load a PyTorch model the same way.
 */
import type { MlpActivation } from '../kernels/ode';
import type { MlpConfig } from './mlp';
import { mlpDims, mlpShapes } from './mlp';

export interface NamedTensor {
  data: Float32Array;
  shape: number[];
}

/** Key of the k-th Linear's weight / bias in the torch state dict. */
export const torchWeightKey = (k: number) => `net.${2 * k}.weight`;
export const torchBiasKey = (k: number) => `net.${2 * k}.bias`;

/** [rows, cols] row-major → [cols, rows] row-major. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/** wgflow parameters (`l{k}.W` [in, out], `l{k}.b`) → a torch state dict (`net.{2k}.weight` [out, in], `net.{2k}.bias`). */
export function toTorchStateDict(cfg: MlpConfig, params: Record<string, NamedTensor>): Record<string, NamedTensor> {
  const out: Record<string, NamedTensor> = {};
  const dims = mlpDims(cfg);
  for (let k = 0; k + 1 < dims.length; k++) {
    const fanIn = dims[k]!, fanOut = dims[k + 1]!;
    const W = params[`l${k}.W`], b = params[`l${k}.b`];
    if (!W || W.data.length !== fanIn * fanOut) throw new Error(`parameter l${k}.W is missing or is not [${fanIn}, ${fanOut}]`);
    if (!b || b.data.length !== fanOut) throw new Error(`parameter l${k}.b is missing or is not [${fanOut}]`);
    out[torchWeightKey(k)] = { data: transpose(W.data, fanIn, fanOut), shape: [fanOut, fanIn] };
    out[torchBiasKey(k)] = { data: b.data.slice(), shape: [fanOut] };
  }
  return out;
}

/**
 * A torch state dict of Linear layers `net.0`, `net.2`, … (activations between them) → the MLP
 * configuration and wgflow's named parameters. The chain is checked: each layer's input width is the
 * previous one's output, the first takes dim + 1 inputs (t last) and the last gives dim outputs; any
 * other key is refused, so a model of another shape is never loaded half-way.
 */
export function fromTorchStateDict(
  tensors: Record<string, NamedTensor>,
  activation: MlpActivation = 'selu',
): { cfg: MlpConfig; params: Record<string, NamedTensor> } {
  const layers: { W: NamedTensor; b: NamedTensor }[] = [];
  for (let k = 0; Object.hasOwn(tensors, torchWeightKey(k)); k++) {
    const W = tensors[torchWeightKey(k)]!;
    const b = Object.hasOwn(tensors, torchBiasKey(k)) ? tensors[torchBiasKey(k)] : undefined;
    if (W.shape.length !== 2) throw new Error(`${torchWeightKey(k)} has shape [${W.shape}], expected [out, in]`);
    if (!b || b.shape.length !== 1 || b.shape[0] !== W.shape[0]) throw new Error(`${torchBiasKey(k)} is missing or is not [${W.shape[0]}]`);
    layers.push({ W, b });
  }
  if (layers.length < 2) throw new Error('not a torchcfm MLP state dict: expected Linear layers net.0, net.2, … (at least two; found ' + `${layers.length})`);
  const expected = new Set(layers.flatMap((_, k) => [torchWeightKey(k), torchBiasKey(k)]));
  const extra = Object.keys(tensors).filter((key) => !expected.has(key));
  if (extra.length) throw new Error(`unexpected tensors for a torchcfm MLP: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', …' : ''}`);
  const dim = layers.at(-1)!.W.shape[0]!;
  if (layers[0]!.W.shape[1] !== dim + 1) {
    throw new Error(`net.0.weight takes ${layers[0]!.W.shape[1]} inputs but the output has dimension ${dim}: expected dim + 1 (x and t; torchcfm's MLP with time_varying=True)`);
  }
  for (let k = 1; k < layers.length; k++) {
    if (layers[k]!.W.shape[1] !== layers[k - 1]!.W.shape[0]) {
      throw new Error(`${torchWeightKey(k)} takes ${layers[k]!.W.shape[1]} inputs but ${torchWeightKey(k - 1)} gives ${layers[k - 1]!.W.shape[0]}`);
    }
  }
  const cfg: MlpConfig = { dim, hidden: layers.slice(0, -1).map((l) => l.W.shape[0]!), activation };
  const params: Record<string, NamedTensor> = {};
  layers.forEach(({ W, b }, k) => {
    const [fanOut, fanIn] = W.shape as [number, number];
    params[`l${k}.W`] = { data: transpose(W.data, fanOut, fanIn), shape: [fanIn, fanOut] };
    params[`l${k}.b`] = { data: b.data.slice(), shape: [fanOut] };
  });
  // Same names and shapes as a model wgflow built itself.
  for (const s of mlpShapes(cfg)) if (params[s.name]!.shape.join() !== s.shape.join()) throw new Error(`internal: ${s.name} shape mismatch`);
  return { cfg, params };
}
