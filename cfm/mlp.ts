/**
 * The vector field v_θ(x, t): torchcfm's `MLP(dim, time_varying=True, w=64)`, i.e.
 * [x, t] → 64 → 64 → 64 → d with SELU after every hidden layer (8 706 parameters for d = 2), t the
 * last input. Widths and activation are configurable. Parameters live in one ParamSet (one flat
 * GPU buffer, W_k stored [in, out] for x·W, then b_k), initialised like PyTorch's nn.Linear:
 * W and b ~ U(−1/√fan_in, 1/√fan_in).
 *
 * Three evaluators share that layout: `forward` (the engine's `mlp`: one dispatch at fusion level
 * 'mlp' and above, one `linear` per layer at 'layer', matmul → add → activation at 'ops';
 * differentiable through the tape), the fused WGSL kernels of kernels/ode.ts (whole MLP per thread),
 * and the float64 CPU reference here (tests, divergence checks).
 */
import { concat, full, mlp, ParamSet, type MlpLayer, type ParamSpec, type Tensor } from '../engine';
import { Rng } from '../engine/philox';
import { ACT } from '../kernels/activations';
import { packedLayout, type MlpActivation, type MlpLayout } from '../kernels/ode';

export interface MlpConfig {
  /** State dimension d (input d + 1 with t, output d). */
  dim: number;
  /** Hidden widths (default [64, 64, 64]). */
  hidden: number[];
  activation: MlpActivation;
  /** Context columns after t (a label's one-hot or a context vector; cfm/conditional.ts). Default 0. */
  context?: number;
}

export const MLP_ACTIVATIONS: readonly MlpActivation[] = ['selu', 'relu', 'tanh', 'sigmoid', 'none'];

export function mlpDims(cfg: MlpConfig): number[] {
  return [cfg.dim + 1 + (cfg.context ?? 0), ...cfg.hidden, cfg.dim];
}

export function mlpLayout(cfg: MlpConfig): MlpLayout {
  return packedLayout(mlpDims(cfg), cfg.activation, cfg.context ?? 0);
}

export function paramCount(cfg: MlpConfig): number {
  const dims = mlpDims(cfg);
  let n = 0;
  for (let k = 0; k + 1 < dims.length; k++) n += dims[k]! * dims[k + 1]! + dims[k + 1]!;
  return n;
}

/** Parameter names and shapes in layout order: l{k}.W [in, out], l{k}.b [out]. */
export function mlpShapes(cfg: MlpConfig): { name: string; shape: number[] }[] {
  const dims = mlpDims(cfg);
  const out: { name: string; shape: number[] }[] = [];
  for (let k = 0; k + 1 < dims.length; k++) out.push({ name: `l${k}.W`, shape: [dims[k]!, dims[k + 1]!] }, { name: `l${k}.b`, shape: [dims[k + 1]!] });
  return out;
}

/** Parameter specs in layout order with PyTorch nn.Linear initial values drawn from `rng`. */
export function mlpParamSpecs(cfg: MlpConfig, rng: Rng): ParamSpec[] {
  const dims = mlpDims(cfg);
  const specs: ParamSpec[] = [];
  for (let k = 0; k + 1 < dims.length; k++) {
    const fanIn = dims[k]!;
    const fanOut = dims[k + 1]!;
    const bound = 1 / Math.sqrt(fanIn);
    const w = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < w.length; i++) w[i] = rng.uniformIn(-bound, bound);
    const b = new Float32Array(fanOut);
    for (let i = 0; i < b.length; i++) b[i] = rng.uniformIn(-bound, bound);
    specs.push({ name: `l${k}.W`, shape: [fanIn, fanOut], init: w }, { name: `l${k}.b`, shape: [fanOut], init: b });
  }
  return specs;
}

export function validateMlpConfig(cfg: MlpConfig): MlpConfig {
  if (!Number.isInteger(cfg.dim) || cfg.dim < 1) throw new RangeError(`MLP: dim must be a positive integer, got ${cfg.dim}`);
  if (!Array.isArray(cfg.hidden) || cfg.hidden.length === 0 || cfg.hidden.some((h) => !Number.isInteger(h) || h < 1 || h > 1024)) {
    throw new RangeError(`MLP: hidden must be a non-empty list of widths in 1..1024, got ${JSON.stringify(cfg.hidden)}`);
  }
  if (!MLP_ACTIVATIONS.includes(cfg.activation)) throw new RangeError(`MLP: unknown activation "${String(cfg.activation)}"; accepted: ${MLP_ACTIVATIONS.join(', ')}`);
  return cfg;
}

/** The model: configuration, layout and its parameters on the GPU. */
export class VectorField {
  readonly layout: MlpLayout;
  readonly params: ParamSet;

  constructor(readonly cfg: MlpConfig, init: Rng | Float32Array) {
    validateMlpConfig(cfg);
    this.layout = mlpLayout(cfg);
    if (init instanceof Rng) this.params = new ParamSet(mlpParamSpecs(cfg, init));
    else {
      if (init.length !== paramCount(cfg)) throw new Error(`VectorField: ${init.length} parameter values for a model with ${paramCount(cfg)}`);
      this.params = new ParamSet(mlpShapes(cfg).map((s, i) => {
        const off = offsetOf(this.layout, i);
        return { ...s, init: init.subarray(off, off + s.shape.reduce((a, b) => a * b, 1)) };
      }));
    }
  }

  private layers(): MlpLayer[] {
    const p = this.params.params;
    return this.layout.wOffsets.map((_, k) => ({ w: p[2 * k]!, b: p[2 * k + 1]! }));
  }

  /** v(input) for input [B, d+1] = [x, t] (and the context [B, c] of a conditional field): the engine's `mlp` (see the header), on the tape. */
  forward(input: Tensor, context?: Tensor): Tensor {
    return mlp(input, this.layers(), { activation: this.cfg.activation, context });
  }

  /** v(x, t[, c]) for x [B, d] at one time t: t (then c) enters as context columns (a fill, then the network). */
  at(x: Tensor, t: number, context?: Tensor): Tensor {
    const tc = full([x.shape[0]!, 1], t);
    const ctx = context ? concat([tc, context], 1) : tc;
    const v = mlp(x, this.layers(), { activation: this.cfg.activation, context: ctx });
    if (ctx !== tc) ctx.dispose();
    tc.dispose();
    return v;
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** Element offset of parameter i (W0, b0, W1, …) in the packed layout. */
export function offsetOf(l: MlpLayout, i: number): number {
  const k = i >> 1;
  return i % 2 === 0 ? l.wOffsets[k]! : l.bOffsets[k]!;
}

// ---- float64 reference ----

/** v(x, t[, c]) in float64 for one point (x of length d, c the context row), from the flat parameters. */
export function mlpForwardF64(l: MlpLayout, flat: ArrayLike<number>, x: ArrayLike<number>, t: number, c: ArrayLike<number> = []): Float64Array {
  let h = Float64Array.from([...Array.from(x), t, ...Array.from(c)]);
  const nl = l.dims.length - 1;
  for (let k = 0; k < nl; k++) {
    const nIn = l.dims[k]!;
    const nOut = l.dims[k + 1]!;
    const out = new Float64Array(nOut);
    for (let j = 0; j < nOut; j++) {
      let z = flat[l.bOffsets[k]! + j]!;
      for (let i = 0; i < nIn; i++) z += h[i]! * flat[l.wOffsets[k]! + i * nOut + j]!;
      out[j] = k < nl - 1 ? ACT[l.activation].f64(z) : z;
    }
    h = out;
  }
  return h;
}
