/**
 * A normalizing flow: a base distribution and a chain of bijections. Layer k's forward maps its
 * input toward the base (data x = h₀ → h₁ → … → h_K = z), so
 *
 *   log p(x | c) = log q(z) + Σ_k log|det ∂h_{k+1}/∂h_k|
 *
 * and sampling runs the inverses from z ~ q back to x. `sampleAndLogProb` gets both in one pass:
 * log p(x) = log q(z) − Σ_k log|det ∂f_k⁻¹/∂h| along the way (no second, normalizing pass).
 *
 * Every method is differentiable through the tape and returns tensors the caller owns; the
 * intermediates are released by an inner scope. A flow is conditional when its conditioner layers
 * are (`contextDim > 0`): the context is then required and passed to those layers.
 *
 * The normalizing direction is fused at fusion level 'mlp' and above: each coupling or MAF layer
 * (`fusedSpec`) runs as one `flowLayer` dispatch on the row state [h, log|det|] (two for its
 * gradients; kernels/mlp/heads.ts), an ActNorm just before such a layer is folded into it, and
 * logProb folds the standard-normal base into the last layer, so a RealNVP or MAF training step
 * costs a few dispatches per layer instead of ~30. Other layers (permutations, LU, planar, …) run
 * op by op between fused runs. Below 'mlp' every layer runs op by op; both paths compute the same
 * numbers (tests/fusion-levels.test.ts). The generative direction (sampling) is always op by op.
 */
import { add, concat, config, flowLayer, flowLayerFits, fusionAtLeast, getBackend, MLP_MAX_WIDTH, noGrad, reshape, scope, slice, sub, withFusion, zeros, type FusionLevel, type GpuRng, type MlpLayer, type Tensor } from '../engine';
import type { Activation } from '../engine/prims';
import { fmt } from '../engine/shape';
import { ActNorm } from './actnorm';
import { checkRows, type Bijection } from './bijection';
import { StandardNormal, type BaseDistribution } from './base';
import type { ParamStore } from './params';

/** How a layer runs as one fused `flowLayer` op (engine/flow-ops.ts). */
export interface FusedSpec {
  head: 'affine' | 'additive' | 'maf';
  /** Couplings: 1 = conditioning coordinate; null for maf. */
  keep: Float32Array | null;
  scaleBound: number;
  activation: Activation;
  layers: MlpLayer[];
  /** MADE: per layer, whether its mask is all ones (skipped by the kernel). */
  onesMasks?: readonly boolean[];
}

/**
 * A layer's fused form, and whether its conditioner fits the flowLayer kernel (engine/flow-ops.ts
 * flowLayerFits); null for a layer without one (permutations, LU, planar, …).
 */
function fusedForm(l: Bijection | undefined, dim: number): { spec: FusedSpec; fits: boolean } | null {
  const f = l as (Bijection & { fusedSpec?: () => FusedSpec }) | undefined;
  if (!f || typeof f.fusedSpec !== 'function') return null;
  const spec = f.fusedSpec();
  return { spec, fits: flowLayerFits([dim + f.contextDim, ...spec.layers.map((k) => k.w.shape[1]!)]) };
}

/** The fused spec of a layer at the current fusion level, or null (op by op). */
function fusedSpecOf(l: Bijection | undefined, dim: number): FusedSpec | null {
  if (!fusionAtLeast('mlp')) return null;
  const form = fusedForm(l, dim);
  return form?.fits ? form.spec : null;
}

/** The flow's position along the normalizing chain: op-by-op tensors, or one fused row state. */
type Cur = { x: Tensor; ld: Tensor | null; state: null } | { state: Tensor };

export class Flow {
  readonly dim: number;
  readonly contextDim: number;

  /**
   * `fusion`: the engine fusion level the flow's passes run at (engine/config.ts), or null for
   * whatever the engine is set to.
   */
  constructor(readonly layers: readonly Bijection[], readonly base: BaseDistribution, readonly store: ParamStore, readonly fusion: FusionLevel | null = null) {
    this.dim = base.dim;
    for (const [i, l] of layers.entries()) {
      if (l.dim !== this.dim) throw new Error(`flow: layer ${i} (${l.kind}) has dimension ${l.dim}, the base has ${this.dim}`);
    }
    const ctx = new Set(layers.map((l) => l.contextDim).filter((c) => c > 0));
    if (ctx.size > 1) throw new Error(`flow: conditional layers disagree on the context width (${[...ctx].join(', ')})`);
    this.contextDim = ctx.size ? [...ctx][0]! : 0;
    store.finalize();
  }

  /** The trainable tensors (views into one flat buffer), in declaration order. */
  get parameters(): Tensor[] {
    return this.store.tensors;
  }

  private checkIn(x: Tensor, context: Tensor | undefined, what: string): number {
    const rows = checkRows('flow', x, this.dim, what);
    if (this.contextDim === 0 && context) throw new Error(`flow: this flow is unconditional but a context ${fmt(context.shape)} was given`);
    if (this.contextDim > 0) {
      if (!context) throw new Error(`flow: this flow is conditional: a context of shape [${rows}, ${this.contextDim}] is required`);
      if (context.rank !== 2 || context.shape[0] !== rows || context.shape[1] !== this.contextDim) {
        throw new Error(`flow: context must have shape [${rows}, ${this.contextDim}], got ${fmt(context.shape)}`);
      }
    }
    return rows;
  }

  private ctxFor(l: Bijection, context: Tensor | undefined): Tensor | undefined {
    return l.contextDim > 0 ? context : undefined;
  }

  /** Normalizing direction: z = f(x) and Σ log|det ∂f/∂x| per row. */
  forward(x: Tensor, context?: Tensor): { z: Tensor; logDet: Tensor } {
    this.checkIn(x, context, 'x');
    return this.at(() => scope(() => {
      const cur = this.chain(x, context, false);
      const { x: h, ld } = this.unfuse(cur);
      return { z: h === x ? add(x, 0) : h, logDet: ld ?? zeros([x.shape[0]!]) };
    }));
  }

  /**
   * The layers in the normalizing direction from x. With `normal`, a fused last layer ends in the
   * standard-normal base: the result is then the state [B, 1] = log p(x).
   */
  private chain(x: Tensor, context: Tensor | undefined, normal: boolean): Cur {
    const D = this.dim;
    let cur: Cur = { x, ld: null, state: null };
    const n = this.layers.length;
    for (let i = 0; i < n; i++) {
      const l = this.layers[i]!;
      let spec = fusedSpecOf(l, D);
      let pre: { s: Tensor; b: Tensor } | undefined;
      const next = fusedSpecOf(this.layers[i + 1], D);
      if (!spec && l instanceof ActNorm && next) {
        pre = l.fusedPre(); // folded into the next layer
        spec = next;
        i++;
      }
      const layer = this.layers[i]!;
      if (!spec) {
        const { x: h, ld } = this.unfuse(cur);
        const r = layer.forward(h, this.ctxFor(layer, context));
        cur = { x: r.y, ld: ld ? add(ld, r.logDet) : r.logDet, state: null };
        continue;
      }
      const input: Tensor = cur.state === null ? (cur.ld ? concat([cur.x, reshape(cur.ld, [cur.x.shape[0]!, 1])], 1) : cur.x) : cur.state;
      const tail = normal && i === n - 1 && this.base instanceof StandardNormal ? 'normal' : 'state';
      const ctx = this.ctxFor(layer, context);
      cur = { state: flowLayer(input, spec.layers, { head: spec.head, dim: D, keep: spec.keep, scaleBound: spec.scaleBound, activation: spec.activation, context: ctx, tail, pre, onesMasks: spec.onesMasks }) };
    }
    return cur;
  }

  /** Op-by-op tensors from a fused state [B, D + 1]: x and the log-det. */
  private unfuse(cur: Cur): { x: Tensor; ld: Tensor | null } {
    if (!cur.state) return cur;
    const B = cur.state.shape[0]!;
    return { x: slice(cur.state, [0, 0], [B, this.dim]), ld: reshape(slice(cur.state, [0, this.dim], [B, 1]), [B]) };
  }

  /** Generative direction: x = f⁻¹(z) and Σ log|det ∂f⁻¹/∂z| per row. */
  inverse(z: Tensor, context?: Tensor): { x: Tensor; logDet: Tensor } {
    this.checkIn(z, context, 'z');
    return this.at(() => scope(() => {
      let h = z;
      let ld: Tensor | null = null;
      for (let i = this.layers.length - 1; i >= 0; i--) {
        const l = this.layers[i]!;
        const r = l.inverse(h, this.ctxFor(l, context));
        h = r.x;
        ld = ld ? add(ld, r.logDet) : r.logDet;
      }
      return { x: h === z ? add(z, 0) : h, logDet: ld ?? zeros([z.shape[0]!]) };
    }));
  }

  /**
   * The fusion level the normalizing passes run at (this flow's, else the engine's), and why some
   * layer that would run as one fused `flowLayer` runs op by op instead: its conditioner is wider
   * than the kernel allows (engine/flow-ops.ts flowLayerFits). Layers without a fused form
   * (permutations, LU, planar, …) run op by op at every level and are not a fallback.
   */
  fusionReport(): { level: FusionLevel; fallback: string | null } {
    const level = this.fusion ?? config.fusion;
    if (!withFusion(level, () => fusionAtLeast('mlp'))) return { level, fallback: null };
    const wide = [...this.layers.keys()].filter((i) => fusedForm(this.layers[i], this.dim)?.fits === false);
    if (!wide.length) return { level, fallback: null };
    return { level, fallback: `layer${wide.length > 1 ? 's' : ''} ${wide.join(', ')}: a conditioner width above the flowLayer kernel's ${MLP_MAX_WIDTH} runs op by op (the \`layer\` level)` };
  }

  /** Runs `fn` at this flow's fusion level (if it has one). */
  private at<T>(fn: () => T): T {
    return this.fusion ? withFusion(this.fusion, fn) : fn();
  }

  /** log p(x | context) per row, [B]. */
  logProb(x: Tensor, context?: Tensor): Tensor {
    this.checkIn(x, context, 'x');
    return this.at(() => scope(() => {
      const cur = this.chain(x, context, true);
      if (cur.state && cur.state.shape[1] === 1) return reshape(cur.state, [x.shape[0]!]);
      const { x: z, ld } = this.unfuse(cur);
      const lp = this.base.logProb(z);
      return ld ? add(lp, ld) : lp;
    }));
  }

  /** n samples [n, D] (with a context: one per context row, n = its row count). */
  sample(n: number, rng: GpuRng, context?: Tensor): Tensor {
    checkCount(n);
    return scope(() => this.inverse(this.base.sample(n, rng), context).x);
  }

  /** Samples and their log-density in one generative pass. */
  sampleAndLogProb(n: number, rng: GpuRng, context?: Tensor): { x: Tensor; logProb: Tensor } {
    checkCount(n);
    return scope(() => {
      const { z, logProb } = this.base.sampleAndLogProb(n, rng);
      const { x, logDet } = this.inverse(z, context);
      return { x, logProb: sub(logProb, logDet) };
    });
  }

  /**
   * Data-dependent initialisation (ActNorm): pushes a batch through the layers, letting each layer
   * with a `dataInit` set itself from its own input first. Reads back once per such layer.
   */
  async initialize(x: Tensor, context?: Tensor): Promise<void> {
    this.checkIn(x, context, 'x');
    let h = x;
    for (const l of this.layers) {
      if (l.dataInit) await l.dataInit(h, this.ctxFor(l, context));
      const next = noGrad(() => this.at(() => scope(() => l.forward(h, this.ctxFor(l, context)).y)));
      if (h !== x) h.dispose();
      h = next;
    }
    if (h !== x) h.dispose();
    getBackend().flush();
  }

  dispose(): void {
    for (const l of this.layers) l.dispose();
    this.store.dispose();
  }
}

function checkCount(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`flow: the number of samples must be a positive integer, got ${n}`);
}
