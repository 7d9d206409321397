/**
 * Architectures for the CLI's flow methods (SPEC §3/§4 `--method`), resolved from TrainConfig
 * options into a JSON-safe `FlowArch` (stored in checkpoints) and built into a Flow.
 *
 *   realnvp  [ActNorm] + K × affine coupling (half masks, alternating; a fixed random permutation
 *            between couplings when D > 2)                                     K = 8
 *   nice     [ActNorm] + K × additive coupling (same masks) + ActNorm (NICE's diagonal scaling)   K = 8
 *   glow     K × (ActNorm, invertible linear: LU (default) or dense, affine coupling)           K = 6
 *   planar   [ActNorm] + K × planar                                             K = 32
 *   radial   [ActNorm] + K × radial                                             K = 32
 *   maf      [ActNorm] + K × MAF layer (MADE; degree order reversed every layer)  K = 10 in 2-D, else 5
 *   nsf      [ActNorm] + K × rational-quadratic spline layer (flows/spline.ts): `variant` coupling
 *            (half masks alternating, a fixed random permutation between layers when D > 2; the
 *            default) or autoregressive (MADE, order reversed every layer); `bins` per spline
 *            (default 8) on [−`bound`, `bound`] (default 3: the data are standardised, so ±3 std)  K = 6
 *
 * Why MAF is deeper in 2-D: a MAF layer moves its first coordinate (in degree order) by a constant
 * affine map, so in two dimensions it is one coupling layer, and needs as many layers as RealNVP's
 * couplings (5 layers: ffjord-8gaussians 0.230 nats above the entropy; 10 layers: 0.117).
 *
 * Conditioners: MLP/MADE with `hidden` widths (default [64, 64]) and `activation` (default relu).
 */
import { Rng } from '../engine/philox';
import type { Activation } from '../engine/prims';
import type { FlowMethod } from '../train/contract';
import { FLOW_METHODS } from '../train/contract';
import { ActNorm } from './actnorm';
import { DiagNormal, StandardNormal, type BaseDistribution } from './base';
import type { Bijection } from './bijection';
import { AdditiveCoupling, AffineCoupling, couplingMask } from './coupling';
import { Flow } from './flow';
import { DenseLinear, LULinear, Permutation } from './linear';
import { MAFLayer } from './maf';
import { ACTIVATIONS } from './nets';
import { FUSION_LEVELS, type FusionLevel } from '../engine/config';
import { ParamStore } from './params';
import { Planar } from './planar';
import { Radial } from './radial';
import { SplineAutoregressive, SplineCoupling } from './spline';

export interface FlowArch {
  method: FlowMethod;
  dim: number;
  /** Width of a conditioning input for the conditioner layers (0: unconditional). */
  contextDim: number;
  layers: number;
  hidden: number[];
  activation: Activation;
  scaleBound: number;
  /** glow's invertible linear layer. */
  linear: 'lu' | 'dense';
  base: 'standard' | 'diag';
  /** A data-initialised ActNorm in front (and, for glow, in every step). */
  actnorm: boolean;
  /** Seed of the initial parameters and fixed permutations. */
  seed: number;
  /**
   * The engine's fusion level for this flow's conditioners (engine/config.ts; 'step' = 'mlp' here:
   * flows have no hand-fused step). Present only when the run's options name it, so configs stored
   * before it existed still resolve to themselves.
   */
  fusion?: FusionLevel;
  /** nsf only: coupling or autoregressive layers, bins per spline and the splines' interval [−bound, bound]. */
  variant?: NsfVariant;
  bins?: number;
  bound?: number;
}

export type NsfVariant = 'coupling' | 'autoregressive';
export const NSF_VARIANTS: readonly NsfVariant[] = ['coupling', 'autoregressive'];

export const DEFAULT_LAYERS: Record<FlowMethod, number> = { realnvp: 8, nice: 8, glow: 6, planar: 32, radial: 32, maf: 5, nsf: 6 };

/** The default number of layers of `method` for data of dimension `dim` (MAF: 10 in 2-D, see above). */
export function defaultLayers(method: FlowMethod, dim: number): number {
  return method === 'maf' && dim === 2 ? 10 : DEFAULT_LAYERS[method];
}

/** Option keys the flow trainer reads (TrainConfig.options); others are ignored. */
export const ARCH_OPTIONS = ['layers', 'hidden', 'activation', 'scaleBound', 'linear', 'base', 'actnorm', 'contextDim', 'fusion', 'variant', 'bins', 'bound'] as const;

function bad(key: string, v: unknown, accepted: string): never {
  throw new Error(`flow option ${key}: ${JSON.stringify(v)} is not accepted; accepted: ${accepted}`);
}

function posInt(key: string, v: unknown, max = 1 << 20): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > max) bad(key, v, `an integer from 1 to ${max}`);
  return n;
}

function parseHidden(v: unknown): number[] {
  const list = typeof v === 'number' ? [v] : typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number) : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > 16) bad('hidden', v, 'widths such as [64, 64] or "64,64" (1 to 16 layers)');
  return list.map((h) => posInt('hidden', h, 4096));
}

/** Resolves `options` (TrainConfig.options or a stored config) into a full architecture. */
export function resolveArch(method: string, dim: number, options: Record<string, unknown> = {}, seed = 0): FlowArch {
  if (!(FLOW_METHODS as readonly string[]).includes(method)) throw new Error(`unknown flow method "${method}"; accepted: ${FLOW_METHODS.join(', ')}`);
  const m = method as FlowMethod;
  if (!Number.isInteger(dim) || dim < 1) throw new Error(`flow: the data dimension must be a positive integer, got ${dim}`);
  if ((m === 'realnvp' || m === 'nice' || m === 'glow') && dim < 2) {
    throw new Error(`method ${m}: coupling layers need data of dimension ≥ 2, got ${dim}; use planar or radial for 1-D data (a MAF layer on 1-D data without a context is one affine map)`);
  }
  const o = options;
  const activation = (o.activation ?? 'relu') as Activation;
  if (!ACTIVATIONS.includes(activation)) bad('activation', o.activation, ACTIVATIONS.join(', '));
  const scaleBound = o.scaleBound === undefined ? 3 : Number(o.scaleBound);
  if (!(scaleBound > 0) || !Number.isFinite(scaleBound)) bad('scaleBound', o.scaleBound, 'a positive number');
  const linear = (o.linear ?? 'lu') as 'lu' | 'dense';
  if (linear !== 'lu' && linear !== 'dense') bad('linear', o.linear, 'lu, dense');
  const base = (o.base ?? 'standard') as 'standard' | 'diag';
  if (base !== 'standard' && base !== 'diag') bad('base', o.base, 'standard, diag');
  const actnorm = o.actnorm === undefined ? true : o.actnorm === true || o.actnorm === 'true' ? true : o.actnorm === false || o.actnorm === 'false' ? false : bad('actnorm', o.actnorm, 'true, false');
  const contextDim = o.contextDim === undefined ? 0 : Number(o.contextDim);
  if (!Number.isInteger(contextDim) || contextDim < 0) bad('contextDim', o.contextDim, 'a non-negative integer');
  if (o.fusion !== undefined && !(FUSION_LEVELS as readonly unknown[]).includes(o.fusion)) bad('fusion', o.fusion, FUSION_LEVELS.join(', '));
  const nsf = m === 'nsf' ? nsfOptions(o, dim) : null;
  if (!nsf) for (const k of ['variant', 'bins', 'bound'] as const) if (o[k] !== undefined) bad(k, o[k], `no value: the option applies to method nsf only (this run: ${m})`);
  if (contextDim > 0 && (m === 'planar' || m === 'radial')) throw new Error(`method ${m}: planar and radial layers have no conditioner, so the flow cannot take a context`);
  return {
    method: m, dim, contextDim,
    layers: o.layers === undefined ? defaultLayers(m, dim) : posInt('layers', o.layers, 1024),
    hidden: o.hidden === undefined ? [64, 64] : parseHidden(o.hidden),
    activation, scaleBound, linear, base, actnorm,
    seed: Number.isSafeInteger(seed) ? seed : 0,
    ...(o.fusion !== undefined ? { fusion: o.fusion as FusionLevel } : {}),
    ...(nsf ?? {}),
  };
}

/** nsf's own options: variant (coupling), bins (8, at most 64), bound (3). */
function nsfOptions(o: Record<string, unknown>, dim: number): { variant: NsfVariant; bins: number; bound: number } {
  const variant = (o.variant ?? 'coupling') as NsfVariant;
  if (!NSF_VARIANTS.includes(variant)) bad('variant', o.variant, NSF_VARIANTS.join(', '));
  if (variant === 'coupling' && dim < 2) throw new Error(`method nsf: the coupling variant needs data of dimension ≥ 2, got ${dim}; use --option variant=autoregressive for 1-D data`);
  const bins = o.bins === undefined ? 8 : posInt('bins', o.bins, 64);
  const bound = o.bound === undefined ? 3 : typeof o.bound === 'string' && o.bound.trim() === '' ? NaN : Number(o.bound);
  if (!(bound > 0) || !Number.isFinite(bound) || bound > 1e6) bad('bound', o.bound, 'a positive number up to 1e6 (the splines act on [−bound, bound] of the standardised data)');
  return { variant, bins, bound };
}

/** Builds the flow of an architecture with fresh (seeded) initial parameters. */
export function buildFlow(a: FlowArch): Flow {
  const rng = new Rng(a.seed, 0xf10);
  const store = new ParamStore();
  const D = a.dim;
  const net = { hidden: a.hidden, activation: a.activation, contextDim: a.contextDim, scaleBound: a.scaleBound };
  const layers: Bijection[] = [];
  const name = (kind: string) => `${layers.length}.${kind}`;
  const perm = () => layers.push(new Permutation(D, 'random', rng));
  switch (a.method) {
    case 'realnvp':
      if (a.actnorm) layers.push(new ActNorm(store, name('actnorm'), D));
      for (let k = 0; k < a.layers; k++) {
        if (k > 0 && D > 2) perm();
        layers.push(new AffineCoupling(store, name('affine_coupling'), D, { ...net, mask: couplingMask(D, 'half', k % 2 === 1) }, rng));
      }
      break;
    case 'nice':
      if (a.actnorm) layers.push(new ActNorm(store, name('actnorm'), D));
      for (let k = 0; k < a.layers; k++) {
        if (k > 0 && D > 2) perm();
        layers.push(new AdditiveCoupling(store, name('additive_coupling'), D, { ...net, mask: couplingMask(D, 'half', k % 2 === 1) }, rng));
      }
      layers.push(new ActNorm(store, name('scaling'), D));
      break;
    case 'glow':
      for (let k = 0; k < a.layers; k++) {
        if (a.actnorm) layers.push(new ActNorm(store, name('actnorm'), D));
        layers.push(a.linear === 'lu' ? new LULinear(store, name('lu_linear'), D, rng) : new DenseLinear(store, name('dense_linear'), D, rng));
        layers.push(new AffineCoupling(store, name('affine_coupling'), D, { ...net, mask: couplingMask(D, 'half', k % 2 === 1) }, rng));
      }
      break;
    case 'planar':
      if (a.actnorm) layers.push(new ActNorm(store, name('actnorm'), D));
      for (let k = 0; k < a.layers; k++) layers.push(new Planar(store, name('planar'), D, rng));
      break;
    case 'radial':
      if (a.actnorm) layers.push(new ActNorm(store, name('actnorm'), D));
      for (let k = 0; k < a.layers; k++) layers.push(new Radial(store, name('radial'), D, rng));
      break;
    case 'maf':
      if (a.actnorm) layers.push(new ActNorm(store, name('actnorm'), D));
      for (let k = 0; k < a.layers; k++) layers.push(new MAFLayer(store, name('maf'), D, { ...net, order: k % 2 === 0 ? 'natural' : 'reverse' }, rng));
      break;
    case 'nsf': {
      if (a.actnorm) layers.push(new ActNorm(store, name('actnorm'), D));
      const spline = { ...net, bins: a.bins ?? 8, bound: a.bound ?? 3 };
      for (let k = 0; k < a.layers; k++) {
        if (a.variant === 'autoregressive') {
          layers.push(new SplineAutoregressive(store, name('spline_ar'), D, { ...spline, order: k % 2 === 0 ? 'natural' : 'reverse' }, rng));
          continue;
        }
        if (k > 0 && D > 2) perm();
        layers.push(new SplineCoupling(store, name('spline_coupling'), D, { ...spline, flip: k % 2 === 1 }, rng));
      }
      break;
    }
  }
  const base: BaseDistribution = a.base === 'diag' ? new DiagNormal(store, 'base', D) : new StandardNormal(D);
  return new Flow(layers, base, store, a.fusion ?? null);
}
