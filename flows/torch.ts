/**
 * A normalizing-flow checkpoint as a PyTorch state dict (safetensors) in a documented layout
 * (docs/torch-flows.md has the table and the torch code that evaluates it).
 *
 * Why a layout of our own: no PyTorch library has one flow class for the six families wgflow trains
 * (zuko and nflows each parameterise coupling, LU and autoregressive layers their own way), so the
 * file is a flat state dict whose names say what each tensor is, with every fixed buffer a layer
 * needs (coupling masks, permutations, MADE masks) written out, so nothing has to be re-derived from
 * wgflow's seeds:
 *
 *   layers.{i}.…      the i-th layer in the normalizing direction (data x → base z), kinds in the
 *                     metadata's `layers` (JSON list)
 *   base.mean / base.log_std           the diagonal-normal base (only when base = diag)
 *   standardize.mean / standardize.std  the flow models (x − mean)/std (data-file runs)
 *
 *   log p(x) = log q(z) + Σ_i log|det ∂h_{i+1}/∂h_i| − Σ log std
 *
 * Conditioner networks are `nn.Sequential`-style: `layers.{i}.net.{2l}.weight` [out, in] and
 * `.bias` (nn.Linear: h·Wᵀ + b), the metadata's activation between layers, none after the last;
 * MADE layers also carry `.mask` [out, in] (multiplying the weight). Linear bijections store
 * `weight` [out, in] too: y = F.linear(x, weight) = x·weightᵀ (wgflow's W [in, out] transposed).
 * Neural spline layers (flows/spline.ts) add their spline's hyper-parameters to the metadata
 * (`spline_*`: bins K, bound B, the floors and the derivative shift), so the 3K − 1 conditioner
 * outputs per coordinate can be turned into the same rational-quadratic spline in torch.
 *
 * Browser-safe: needs an engine backend (the flow is rebuilt on it to read its fixed buffers; the
 * LU layer's weight P·L·U′ is assembled by the layer itself), no Node APIs.
 */
import { getBackend, noGrad, scope, type Tensor } from '../engine';
import { couplingMask } from './coupling';
import { LULinear, Permutation } from './linear';
import { MAFLayer } from './maf';
import type { HostParams } from './params';
import type { SplineAutoregressive, SplineCoupling } from './spline';
import { SPLINE_MINIMA } from '../engine/spline';
import { flowFromCheckpoint, readRunConfig } from './checkpoint';

/** What a state dict written by flowToTorch says about itself (metadata `format`). */
export const FLOW_TORCH_FORMAT = 'wgflow.flow/1';

/** The flow methods whose layers all have a torch layout here (docs/torch-flows.md). */
export const TORCH_FLOW_METHODS: readonly string[] = ['realnvp', 'nice', 'glow', 'planar', 'radial', 'maf', 'nsf'];

/**
 * The spline layers' fixed hyper-parameters as flows/spline.ts and the `rqspline` primitive use them:
 * nflows' floors (engine/spline.ts) and the derivative shift c = log(e^{1−m} − 1) added to the raw
 * derivative outputs so that softplus(0 + c) + m = 1 (a zero conditioner output is the identity).
 * tests/torch-flows.test.ts fails if this drifts from flows/spline.ts (the density would differ).
 */
function splineMetadata(bins: number, bound: number): Record<string, string> {
  return {
    spline_bins: String(bins),
    spline_bound: String(bound),
    spline_min_bin_width: String(SPLINE_MINIMA.minWidth),
    spline_min_bin_height: String(SPLINE_MINIMA.minHeight),
    spline_min_derivative: String(SPLINE_MINIMA.minDerivative),
    spline_derivative_shift: String(Math.log(Math.expm1(1 - SPLINE_MINIMA.minDerivative))),
  };
}

/** MADE masks of layer i as `layers.{i}.net.{2l}.mask` [out, in] (n conditioner layers). */
async function madeMasks(i: number, masks: readonly Tensor[], n: number, out: Record<string, NamedTensor>): Promise<void> {
  if (masks.length !== n) throw new Error(`layer ${i}: ${masks.length} MADE masks for ${n} conditioner layers`);
  for (let l = 0; l < n; l++) {
    const [fanIn, fanOut] = masks[l]!.shape as [number, number];
    out[`layers.${i}.net.${2 * l}.mask`] = { data: transpose(await readTensor(masks[l]!), fanIn, fanOut), shape: [fanOut, fanIn] };
  }
}

export interface NamedTensor {
  data: Float32Array;
  shape: number[];
}

export interface FlowStateDict {
  tensors: Record<string, NamedTensor>;
  /** format, method, dim, context_dim, layers (JSON list of kinds), activation, scale_bound, base, arch (JSON); nsf: spline_*. */
  metadata: Record<string, string>;
}

/** [rows, cols] row-major → [cols, rows] row-major. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

async function readTensor(t: Tensor): Promise<Float32Array> {
  return Float32Array.from(await t.data());
}

/**
 * The conditioner's weights of layer i (`{i}.{kind}.net.{l}.w` [in, out] or `{i}.maf.made.{l}.w`)
 * as `layers.{i}.net.{2l}.weight` [out, in] and `.bias`; returns their count.
 */
function conditioner(i: number, params: HostParams, out: Record<string, NamedTensor>): number {
  const re = new RegExp(`^${i}\\.[a-z_]+\\.(?:net|made)\\.(\\d+)\\.w$`);
  const found = Object.keys(params).map((n) => [n, re.exec(n)] as const).filter(([, m]) => m).map(([n, m]) => ({ n, l: Number(m![1]) }));
  found.sort((a, b) => a.l - b.l);
  found.forEach(({ n, l }, k) => {
    if (l !== k) throw new Error(`layer ${i}: conditioner layer ${k} is missing`);
    const W = params[n]!, b = params[n.slice(0, -1) + 'b'];
    const [fanIn, fanOut] = W.shape as [number, number];
    if (!b || b.data.length !== fanOut) throw new Error(`layer ${i}: ${n.slice(0, -1)}b is missing or is not [${fanOut}]`);
    out[`layers.${i}.net.${2 * l}.weight`] = { data: transpose(W.data, fanIn, fanOut), shape: [fanOut, fanIn] };
    out[`layers.${i}.net.${2 * l}.bias`] = { data: b.data.slice(), shape: [fanOut] };
  });
  if (found.length === 0) throw new Error(`layer ${i}: no conditioner weights in the checkpoint`);
  return found.length;
}

/** The parameter of layer i whose name ends in `.${suffix}` (`{i}.{kind}.{suffix}`). */
function own(i: number, params: HostParams, suffix: string): NamedTensor {
  const name = Object.keys(params).find((n) => n.startsWith(`${i}.`) && n.endsWith(`.${suffix}`) && n.split('.').length === 3);
  if (!name) throw new Error(`layer ${i}: parameter ${suffix} is missing from the checkpoint`);
  const p = params[name]!;
  return { data: p.data.slice(), shape: [...p.shape] };
}

/**
 * A flow checkpoint (its stored config and parameters) → the torch layout. The flow is rebuilt from
 * the config on the current engine backend (its permutations and masks come from its seed), checked
 * against the parameters, read, and freed.
 */
export async function flowToTorch(config: Record<string, unknown>, params: HostParams): Promise<FlowStateDict> {
  const c = readRunConfig(config);
  if (!TORCH_FLOW_METHODS.includes(c.arch.method)) throw new Error(`a ${c.arch.method} flow has no torch layout yet; exported flows: ${TORCH_FLOW_METHODS.join(', ')}`);
  const flow = flowFromCheckpoint(config, params);
  const D = flow.dim;
  const tensors: Record<string, NamedTensor> = {};
  const kinds: string[] = [];
  let spline: Record<string, string> | null = null;
  /** One bins/bound for every spline layer (the metadata holds one set). */
  const splineOf = (i: number, l: { bins: number; bound: number }) => {
    const m = splineMetadata(l.bins, l.bound);
    if (spline && (spline.spline_bins !== m.spline_bins || spline.spline_bound !== m.spline_bound)) throw new Error(`layer ${i}: spline bins/bound ${l.bins}/${l.bound} differ from an earlier layer's ${spline.spline_bins}/${spline.spline_bound}`);
    spline = m;
  };
  try {
    let couplings = 0;
    for (const [i, layer] of flow.layers.entries()) {
      const key = (s: string) => `layers.${i}.${s}`;
      kinds.push(layer.kind);
      switch (layer.kind) {
        case 'actnorm':
          tensors[key('log_scale')] = own(i, params, 'log_scale');
          tensors[key('shift')] = own(i, params, 'shift');
          break;
        case 'permutation':
          tensors[key('perm')] = { data: Float32Array.from((layer as Permutation).perm), shape: [D] };
          break;
        case 'affine-coupling':
        case 'additive-coupling':
          // flows/build.ts: half masks, flipped every other coupling (tests/torch-flows.test.ts checks
          // the exported mask against the layer's own log-density).
          tensors[key('mask')] = { data: couplingMask(D, 'half', couplings % 2 === 1), shape: [D] };
          couplings++;
          conditioner(i, params, tensors);
          break;
        case 'lu-linear': {
          const W = noGrad(() => scope(() => (layer as LULinear).weight()));
          const w = await readTensor(W);
          W.dispose();
          tensors[key('weight')] = { data: transpose(w, D, D), shape: [D, D] };
          tensors[key('log_diag')] = own(i, params, 'log_diag');
          break;
        }
        case 'dense-linear': {
          const w = own(i, params, 'weight');
          tensors[key('weight')] = { data: transpose(w.data, D, D), shape: [D, D] };
          break;
        }
        case 'planar':
          for (const s of ['u', 'w', 'b']) tensors[key(s)] = own(i, params, s);
          break;
        case 'radial':
          for (const s of ['center', 'alpha_raw', 'beta_raw']) tensors[key(s)] = own(i, params, s);
          break;
        case 'maf':
          await madeMasks(i, (layer as MAFLayer).made.masks, conditioner(i, params, tensors), tensors);
          break;
        case 'spline-coupling': {
          // flows/build.ts: blocks [0, ⌊D/2⌋) and [⌊D/2⌋, D), the first kept on even couplings, the
          // second on odd ones; mask 1 = kept (the conditioner's input, in index order).
          const l = layer as SplineCoupling;
          splineOf(i, l);
          const half = Math.floor(D / 2), flip = couplings % 2 === 1;
          const mask = Float32Array.from({ length: D }, (_, k) => ((k < half) !== flip ? 1 : 0));
          couplings++;
          tensors[key('mask')] = { data: mask, shape: [D] };
          const n = conditioner(i, params, tensors);
          const kept = mask.reduce((a, v) => a + v, 0);
          const first = tensors[key('net.0.weight')]!, out = tensors[key(`net.${2 * (n - 1)}.weight`)]!;
          if (first.shape[1] !== kept + c.arch.contextDim || out.shape[0] !== (D - kept) * (3 * l.bins - 1)) {
            throw new Error(`layer ${i}: a spline coupling of ${kept} kept and ${D - kept} transformed coordinates does not fit its conditioner [${first.shape}] … [${out.shape}]`);
          }
          break;
        }
        case 'spline-autoregressive': {
          const l = layer as SplineAutoregressive;
          splineOf(i, l);
          await madeMasks(i, l.made.masks, conditioner(i, params, tensors), tensors);
          tensors[key('degrees')] = { data: Float32Array.from(l.degrees), shape: [D] };
          break;
        }
        default:
          throw new Error(`layer ${i}: no torch layout for a ${layer.kind} layer`);
      }
    }
  } finally {
    flow.dispose();
    getBackend().flush();
  }
  if (c.arch.base === 'diag') {
    tensors['base.mean'] = { data: params['base.mean']!.data.slice(), shape: [D] };
    tensors['base.log_std'] = { data: params['base.log_std']!.data.slice(), shape: [D] };
  }
  if (c.standardize) {
    tensors['standardize.mean'] = { data: Float32Array.from(c.standardize.mean), shape: [D] };
    tensors['standardize.std'] = { data: Float32Array.from(c.standardize.std), shape: [D] };
  }
  const metadata: Record<string, string> = {
    format: FLOW_TORCH_FORMAT,
    method: c.arch.method,
    dim: String(D),
    context_dim: String(c.arch.contextDim),
    layers: JSON.stringify(kinds),
    activation: c.arch.activation,
    scale_bound: String(c.arch.scaleBound),
    base: c.arch.base,
    arch: JSON.stringify(c.arch),
    ...(spline ?? {}),
  };
  return { tensors, metadata };
}
