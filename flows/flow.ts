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
 */
import { add, getBackend, noGrad, scope, sub, withFusion, zeros, type FusionLevel, type GpuRng, type Tensor } from '../engine';
import { fmt } from '../engine/shape';
import { checkRows, type Bijection } from './bijection';
import type { BaseDistribution } from './base';
import type { ParamStore } from './params';

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
      let h = x;
      let ld: Tensor | null = null;
      for (const l of this.layers) {
        const r = l.forward(h, this.ctxFor(l, context));
        h = r.y;
        ld = ld ? add(ld, r.logDet) : r.logDet;
      }
      return { z: h === x ? add(x, 0) : h, logDet: ld ?? zeros([x.shape[0]!]) };
    }));
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

  /** Runs `fn` at this flow's fusion level (if it has one). */
  private at<T>(fn: () => T): T {
    return this.fusion ? withFusion(this.fusion, fn) : fn();
  }

  /** log p(x | context) per row, [B]. */
  logProb(x: Tensor, context?: Tensor): Tensor {
    return scope(() => {
      const { z, logDet } = this.forward(x, context);
      return add(this.base.logProb(z), logDet);
    });
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
