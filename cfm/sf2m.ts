/**
 * [SF]2M, simulation-free score and flow matching (Tong, Malkin, Fatras, Atanackovic, Zhang,
 * Huguet, Wolf & Bengio, "Simulation-free Schrödinger bridges via score and flow matching",
 * AISTATS 2024; torchcfm's SchrodingerBridgeConditionalFlowMatcher and its SF2M example).
 *
 * Pairs (x0, x1) come from a minibatch OT plan (exact by default, as torchcfm's SF2M examples;
 * `ot: 'sinkhorn'` uses the entropic plan with reg 2σ², the static Schrödinger bridge of the
 * reference σW). Between them runs the Brownian bridge of the reference process:
 *
 *   x_t = t·x1 + (1−t)·x0 + σ_t·ε,   σ_t = σ·√(t(1−t)),   ε ~ N(0, I)
 *   u_t = (1−2t)/(2t(1−t) + 1e-8)·(x_t − μ_t) + x1 − x0        (sbcfm's, cfm/matchers.ts)
 *
 * Two networks [x, t] → d are trained together, as torchcfm does (a second MLP of the same shape,
 * not a second head: the two targets have different scales and singularities — ε/λ blows up at
 * t → 0, 1 where u_t does not — and a shared trunk would couple their errors; two MLPs also keep
 * the flow network a plain CFM vector field that every ODE sampler, export and eval already take):
 *
 *   L = mean‖v(x_t, t) − u_t‖² + mean‖λ(t)·s(x_t, t) + ε‖²,    λ(t) = 2σ_t / (σ² + 1e-8)
 *
 * (both means over the B·d coordinates, the terms unweighted; λ and its 1e-8 are torchcfm's
 * compute_lambda). The score loss is minimised by s = −ε/λ = −(σ²/2)·ε/σ_t, and since the
 * conditional score is ∇log p_t(x_t | x0, x1) = −ε/σ_t, the network learns s ≈ (σ²/2)·∇log p_t =
 * (g²/2)·∇log p_t with g = σ: the score pre-scaled by the diffusion's g²/2.
 *
 * Sampling. The marginals p_t of the bridge mixture satisfy ∂p/∂t = −∇·(p·v) with the flow v
 * (the probability-flow ODE, dx = v dt: cfm/ode.ts, unchanged), and equally the Fokker–Planck
 * equation of dx = [v + (g²/2)∇log p_t] dt + g dW, because (g²/2)Δp = ∇·(p·(g²/2)∇log p). With the
 * scaling above the SDE drift is simply v + s (torchcfm's SDE.f = drift + score, g = σ):
 *
 *   dx = [v(x, t) + s(x, t)] dt + σ dW      (Euler–Maruyama: kernels/sde.ts)
 *
 * This file: the float64 closed forms (targets, λ, the loss for given draws) and the model (both
 * networks in one ParamSet, so one Adam, one checkpoint and one parameter buffer serve both).
 */
import { mlp, ParamSet, type MlpLayer, type Tensor } from '../engine';
import { Rng } from '../engine/philox';
import { layoutSize, type MlpLayout } from '../kernels/ode';
import { muT, sigmaT, uT } from './matchers';
import { mlpForwardF64, mlpLayout, mlpParamSpecs, mlpShapes, paramCount, validateMlpConfig, VectorField, type MlpConfig } from './mlp';

/** λ(t) = 2σ_t/(σ² + 1e-8) with σ_t = σ√(t(1−t)) (torchcfm compute_lambda). */
export function lambdaT(sigma: number, t: number): number {
  return (2 * sigmaT('sf2m', sigma, t)) / (sigma * sigma + 1e-8);
}

/**
 * The conditional targets of one coordinate in float64: x_t, u_t and the score network's target
 * −ε/λ(t) (what minimises ‖λ·s + ε‖²), which equals (σ²/2)·∂/∂x log N(x_t; μ_t, σ_t²) up to the 1e-8.
 */
export function sf2mTargetsF64(sigma: number, x0: number, x1: number, t: number, eps: number): { xt: number; ut: number; lambda: number; st: number } {
  const xt = muT('sf2m', x0, x1, t) + sigmaT('sf2m', sigma, t) * eps;
  const lambda = lambdaT(sigma, t);
  return { xt, ut: uT('sf2m', sigma, x0, x1, t, xt), lambda, st: -eps / lambda };
}

/** Parameter names and shapes: the flow network's l{k}.W, l{k}.b, then the score network's score.l{k}.*. */
export function sf2mShapes(cfg: MlpConfig): { name: string; shape: number[] }[] {
  const flow = mlpShapes(cfg);
  return [...flow, ...flow.map((s) => ({ name: `score.${s.name}`, shape: s.shape }))];
}

/** The score network's layout: the flow's, shifted past the flow's parameters in the one buffer. */
export function scoreLayoutOf(flow: MlpLayout): MlpLayout {
  const off = layoutSize(flow);
  return { dims: flow.dims, activation: flow.activation, wOffsets: flow.wOffsets.map((o) => o + off), bOffsets: flow.bOffsets.map((o) => o + off) };
}

/**
 * The float64 loss of one batch for given draws: rows b of x0, x1 (B × d), t[b], eps (B × d), the
 * flat parameters of both networks. Returns the total and its two terms.
 */
export function sf2mLossF64(cfg: MlpConfig, flat: ArrayLike<number>, sigma: number, x0: ArrayLike<number>, x1: ArrayLike<number>, t: ArrayLike<number>, eps: ArrayLike<number>): { loss: number; flow: number; score: number } {
  const d = cfg.dim;
  const fl = mlpLayout(cfg);
  const sl = scoreLayoutOf(fl);
  const B = t.length;
  let flow = 0;
  let score = 0;
  for (let b = 0; b < B; b++) {
    const tg = Array.from({ length: d }, (_, k) => sf2mTargetsF64(sigma, x0[b * d + k]!, x1[b * d + k]!, t[b]!, eps[b * d + k]!));
    const x = tg.map((g) => g.xt);
    const v = mlpForwardF64(fl, flat, x, t[b]!);
    const s = mlpForwardF64(sl, flat, x, t[b]!);
    for (let k = 0; k < d; k++) {
      flow += (v[k]! - tg[k]!.ut) ** 2;
      score += (tg[k]!.lambda * s[k]! + eps[b * d + k]!) ** 2;
    }
  }
  flow /= B * d;
  score /= B * d;
  return { loss: flow + score, flow, score };
}

/** Both networks in one ParamSet: [flow W0, b0, …, score W0, b0, …] (layouts flowLayout, scoreLayout). */
export class Sf2mModel {
  readonly flowLayout: MlpLayout;
  readonly scoreLayout: MlpLayout;
  readonly params: ParamSet;
  /** Parameters of one network. */
  readonly perNet: number;

  constructor(readonly cfg: MlpConfig, init: Rng | Float32Array) {
    validateMlpConfig(cfg);
    this.flowLayout = mlpLayout(cfg);
    this.scoreLayout = scoreLayoutOf(this.flowLayout);
    this.perNet = paramCount(cfg);
    const shapes = sf2mShapes(cfg);
    if (init instanceof Rng) {
      // Flow first, then score, each like PyTorch's nn.Linear, from one stream (the flow network
      // gets the same initial values as a plain CFM run with this seed).
      const specs = [...mlpParamSpecs(cfg, init), ...mlpParamSpecs(cfg, init)];
      this.params = new ParamSet(specs.map((s, i) => ({ ...s, name: shapes[i]!.name })));
    } else {
      if (init.length !== 2 * this.perNet) throw new Error(`Sf2mModel: ${init.length} parameter values for two networks of ${this.perNet}`);
      let off = 0;
      this.params = new ParamSet(shapes.map((s) => {
        const size = s.shape.reduce((a, b) => a * b, 1);
        const v = init.subarray(off, off + size);
        off += size;
        return { ...s, init: v };
      }));
    }
  }

  private layers(net: 0 | 1): MlpLayer[] {
    const p = this.params.params;
    const nl = this.flowLayout.wOffsets.length;
    return Array.from({ length: nl }, (_, k) => ({ w: p[net * 2 * nl + 2 * k]!, b: p[net * 2 * nl + 2 * k + 1]! }));
  }

  /** v(input) and s(input) for input [B, d+1] = [x_t, t], on the tape (the engine's `mlp`). */
  forward(input: Tensor): { v: Tensor; s: Tensor } {
    return { v: mlp(input, this.layers(0), { activation: this.cfg.activation }), s: mlp(input, this.layers(1), { activation: this.cfg.activation }) };
  }

  /** The flow network alone as a VectorField (a copy: the caller disposes it), for the ODE samplers. */
  async flowField(): Promise<VectorField> {
    const all = await this.params.flat.data();
    return new VectorField(this.cfg, all.slice(0, this.perNet));
  }

  dispose(): void {
    this.params.dispose();
  }
}
