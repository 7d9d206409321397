/**
 * Conditioner networks: a plain MLP (coupling layers) and MADE (masked autoencoder for
 * distribution estimation, Germain et al. 2015) for MAF, both through the engine's `mlp` (the whole
 * network in one dispatch and its gradient in two at fusion level 'mlp' and above; one `linear` per
 * layer at 'layer'; matmul → add → activation at 'ops'; Flow's fused path hands `layers()` to the
 * `flowLayer` primitive instead). MADE's constant 0/1 masks multiply the
 * weights, so a masked connection has an exactly zero weight and an exactly zero gradient; they live
 * in one buffer (views per layer), so the network binds them once.
 */
import { keep, mlp, tensor, Tensor, type MlpLayer } from '../engine';
import type { Rng } from '../engine/philox';
import type { Activation } from '../engine/prims';
import type { ParamStore } from './params';

export const ACTIVATIONS: readonly Activation[] = ['relu', 'tanh', 'selu', 'sigmoid', 'silu'];

/** Glorot-uniform values for a fan_in × fan_out weight, times `gain`. */
export function glorot(fanIn: number, fanOut: number, rng: Rng, gain = 1): Float32Array {
  const a = gain * Math.sqrt(6 / (fanIn + fanOut));
  const w = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < w.length; i++) w[i] = rng.uniformIn(-a, a);
  return w;
}

export interface MLPOptions {
  hidden: readonly number[];
  activation: Activation;
  /** Gain of the last layer's initial weights (small: the layer starts near the identity). */
  lastGain?: number;
}

/** in → hidden… → out, activation between layers, none after the last. */
export class MLP {
  private readonly ws: string[] = [];
  private readonly bs: string[] = [];

  constructor(private readonly store: ParamStore, prefix: string, readonly inDim: number, readonly outDim: number, readonly opts: MLPOptions, rng: Rng) {
    const sizes = [inDim, ...opts.hidden, outDim];
    for (let l = 0; l + 1 < sizes.length; l++) {
      const last = l + 2 === sizes.length;
      this.ws.push(store.add(`${prefix}.${l}.w`, [sizes[l]!, sizes[l + 1]!], glorot(sizes[l]!, sizes[l + 1]!, rng, last ? (opts.lastGain ?? 0.01) : 1)));
      this.bs.push(store.add(`${prefix}.${l}.b`, [sizes[l + 1]!], new Float32Array(sizes[l + 1]!)));
    }
  }

  /** The dense layers (parameter views), for `mlp` and the fused flow layers. */
  layers(): MlpLayer[] {
    return this.ws.map((w, l) => ({ w: this.store.get(w), b: this.store.get(this.bs[l]!) }));
  }

  /** The network on [x, context]. */
  apply(x: Tensor, context?: Tensor): Tensor {
    return mlp(x, this.layers(), { activation: this.opts.activation, context });
  }
}

/**
 * MADE over `dim` inputs with degrees `order` (a permutation of 1..dim) plus `contextDim` context
 * inputs (degree 0: seen by every hidden unit). Outputs `outMult` blocks of `dim` columns each,
 * block k column i having the degree of input i, so output i depends only on inputs of smaller
 * degree. Hidden degrees cycle through 1..dim−1 (0 when dim = 1: hidden units see the context only).
 */
export class MADE {
  private readonly ws: string[] = [];
  private readonly bs: string[] = [];
  readonly masks: Tensor[] = [];
  /** Per layer, whether its mask is all ones (the fused kernels skip such masks). */
  readonly onesMasks: boolean[] = [];
  /** Degree of each input (by column). */
  readonly degrees: number[];

  constructor(
    private readonly store: ParamStore, prefix: string, readonly dim: number, readonly contextDim: number,
    order: readonly number[], readonly outMult: number, readonly opts: MLPOptions, rng: Rng,
  ) {
    if (order.length !== dim || [...order].sort((a, b) => a - b).some((d, i) => d !== i + 1)) {
      throw new Error(`MADE: order must be a permutation of 1..${dim}, got [${order.join(', ')}]`);
    }
    this.degrees = [...order];
    const inDeg = [...order, ...new Array<number>(contextDim).fill(0)];
    const hiddenDeg = opts.hidden.map((h) => Array.from({ length: h }, (_, k) => (dim === 1 ? 0 : (k % (dim - 1)) + 1)));
    const outDeg = Array.from({ length: outMult * dim }, (_, j) => order[j % dim]!);
    const degs = [inDeg, ...hiddenDeg, outDeg];
    const maskData: Float32Array[] = [];
    for (let l = 0; l + 1 < degs.length; l++) {
      const a = degs[l]!, b = degs[l + 1]!;
      const last = l + 2 === degs.length;
      const m = new Float32Array(a.length * b.length);
      for (let i = 0; i < a.length; i++) for (let j = 0; j < b.length; j++) m[i * b.length + j] = (last ? b[j]! > a[i]! : b[j]! >= a[i]!) ? 1 : 0;
      maskData.push(m);
      this.onesMasks.push(m.every((v) => v === 1));
      this.ws.push(store.add(`${prefix}.${l}.w`, [a.length, b.length], glorot(a.length, b.length, rng, last ? (opts.lastGain ?? 0.01) : 1)));
      this.bs.push(store.add(`${prefix}.${l}.b`, [b.length], new Float32Array(b.length)));
    }
    // Every mask in one buffer, a view per layer.
    const all = new Float32Array(maskData.reduce((a, m) => a + m.length, 0));
    let off = 0;
    for (const m of maskData) {
      all.set(m, off);
      off += m.length;
    }
    const flat = tensor(all);
    off = 0;
    degs.slice(1).forEach((b, l) => {
      const rows = degs[l]!.length;
      this.masks.push(keep(Tensor.view(flat, [rows, b.length], off)));
      off += rows * b.length;
    });
    flat.dispose();
  }

  /** The masked dense layers (parameter views and constant masks). */
  layers(): MlpLayer[] {
    return this.ws.map((w, l) => ({ w: this.store.get(w), b: this.store.get(this.bs[l]!), mask: this.masks[l]! }));
  }

  apply(x: Tensor, context?: Tensor): Tensor {
    return mlp(x, this.layers(), { activation: this.opts.activation, context });
  }

  dispose(): void {
    for (const m of this.masks) m.dispose();
  }
}
