/**
 * One CFM training step on the GPU, recorded into one command encoder and submitted once, with no
 * readback: the batch arrives as one upload (x0 rows then x1 rows, already paired on the CPU for
 * exact OT); the step's loss goes to a ring of GPU slots that the trainer reads every few hundred ms,
 * with a guard word the step raises on a NaN/Inf loss or parameter (engine/loss-ring.ts).
 *
 * One implementation per fusion level (engine/config.ts), the same numbers (up to float32
 * summation order):
 *  - 'step' (default, mode 'fused'): cfm/fused-step.ts, 2 dispatches (forward+backward, reduce+Adam),
 *    plus 2 for the GPU Sinkhorn coupling (cost matrix, Sinkhorn + pair sampling);
 *  - 'mlp', 'layer', 'ops' (mode 'tape'): the engine's autodiff — the matcher kernel, the network
 *    (`mlp`: one dispatch; `linear` per layer; or matmul → add → activation), mean((v − u)²),
 *    valueAndGrad and engine Adam; the reference the fused step is tested against.
 */
import type { CfmMethod } from '../train/contract';
import { Adam, getBackend, LossRing, LOSS_SLOTS, mean, mlpFallbackReason, noGrad, scope, square, sub, Tensor, valueAndGrad, withFusion, zeros, keep, type AdamStateData, type FusionLevel, type RingRead } from '../engine';
import { layoutSize } from '../kernels/ode';
import { reduceAdamKernel } from '../kernels/adam';
import { forwardBackwardKernel, fusedThreads, type FusedStepShape } from './fused-step';
import { matcherKernel, matchUniforms } from './matchers';
import type { VectorField } from './mlp';
import { costMatrix, GpuSinkhorn, type Pairing, type SinkhornOptions } from './ot';

export type StepMode = 'fused' | 'tape';

/** The stepper a fusion level selects: 'step' the fused kernels, the others the tape at that level. */
export function stepModeOf(level: FusionLevel): StepMode {
  return level === 'step' ? 'fused' : 'tape';
}

export interface AdamConfig {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Decay of the moving average of the weights kept beside them (0 or absent: none; engine/optim.ts). */
  emaDecay?: number;
}

export interface StepperOptions {
  method: CfmMethod;
  sigma: number;
  batch: number;
  /** Philox key of the matcher stream (t, eps) and of the GPU pair sampling. */
  seed: number;
  /**
   * The fusion level (engine/config.ts): 'step' = the fused step; 'mlp', 'layer', 'ops' = the tape
   * at that level. Takes precedence over `mode` ('fused' = 'step', 'tape' = 'layer').
   */
  fusion?: FusionLevel;
  mode?: StepMode;
  /** GPU entropic coupling; omit for independent pairs or pairs already made on the CPU. */
  sinkhorn?: { opts: SinkhornOptions; pairing: Pairing };
  adam: AdamConfig;
  samplesPerThread?: number;
}

export { LOSS_SLOTS };

/** Adam's step count and moments, and the weights' moving average when one is kept (engine/optim.ts). */
export type AdamState = AdamStateData;

export class CfmStepper {
  readonly mode: StepMode;
  /** The fusion level the step runs at. */
  readonly fusion: FusionLevel;
  /** Why the step runs below the level asked for (a network too wide for the fused kernels), or null. */
  readonly fallback: string | null;
  readonly d: number;
  /** Context columns of a conditional field (0: unconditional). */
  readonly c: number;
  /** The batch buffer: x0 rows [0, B), x1 rows [B, 2B); then a conditional field's context rows [B, c]. */
  readonly xy: Tensor;
  /** Per-step losses and the non-finite guard (engine/loss-ring.ts). */
  readonly ring: LossRing;
  private readonly sinkhorn: GpuSinkhorn | null;
  /** The moments and step count of both paths (the fused one applies it in its reduce kernel). */
  private readonly adam: Adam;
  private readonly shape: FusedStepShape;

  constructor(readonly vf: VectorField, readonly opts: StepperOptions) {
    const wanted = opts.fusion ?? ((opts.mode ?? 'fused') === 'fused' ? 'step' : 'layer');
    // Networks wider than the fused kernels take run layer by layer on the tape.
    this.fallback = wanted === 'step' ? mlpFallbackReason(vf.layout.dims) : null;
    this.fusion = this.fallback ? 'layer' : wanted;
    this.mode = stepModeOf(this.fusion);
    this.d = vf.cfg.dim;
    this.c = vf.cfg.context ?? 0;
    const B = opts.batch;
    // Context rows follow the target rows made on the CPU (cfm/conditional.ts pairs within a class
    // there, Sinkhorn included), so a conditional step never takes GPU pairs.
    if (this.c > 0 && opts.sinkhorn) throw new Error('CfmStepper: a conditional field is paired on the CPU (cfm/conditional.ts); no GPU Sinkhorn');
    this.xy = keep(zeros(this.c > 0 ? [2 * B * this.d + B * this.c] : [2 * B, this.d]));
    this.ring = new LossRing();
    this.sinkhorn = opts.sinkhorn ? new GpuSinkhorn(B, B, B, opts.sinkhorn.opts, opts.seed) : null;
    const S = opts.samplesPerThread ?? 8;
    const threads = Math.ceil(B / S);
    this.shape = {
      layout: vf.layout,
      method: opts.method,
      sigma: opts.sigma,
      batch: B,
      n0: B,
      withPairs: !!opts.sinkhorn,
      samplesPerThread: S,
      // At least two workgroups so SwiftShader spreads a small batch over two cores.
      workgroup: Math.max(1, Math.min(64, Math.ceil(threads / 2))),
    };
    this.adam = new Adam(vf.params, opts.adam);
  }

  /**
   * Records step `step` (0-based; it picks the Philox draws, so a resumed run repeats them) on the
   * batch `xy` (2B × d: x0 rows then x1 rows; then B × c context rows for a conditional field) and
   * submits it; `lr` (default: the Adam config's) is this step's learning rate (a uniform).
   */
  step(xy: Float32Array, step: number, lr = this.opts.adam.lr): void {
    const b = getBackend();
    b.write(this.xy.buffer, xy);
    scope(() => {
      let pairs: Tensor | null = null;
      if (this.sinkhorn) {
        const B = this.opts.batch;
        const x0 = Tensor.view(this.xy, [B, this.d], 0);
        const x1 = Tensor.view(this.xy, [B, this.d], B * this.d);
        const C = costMatrix(x0, x1);
        this.sinkhorn.draws = step;
        pairs = this.sinkhorn.run(C, this.opts.sinkhorn!.pairing).pairs;
      }
      if (this.mode === 'fused') this.fusedStep(pairs, step, lr);
      else this.tapeStep(pairs, step, lr);
    });
    b.flush();
  }

  private fusedStep(pairs: Tensor | null, step: number, lr: number): void {
    const b = getBackend();
    const np = layoutSize(this.vf.layout);
    const threads = fusedThreads(this.shape);
    const part = Tensor.empty([threads, np + 1]);
    const bufs = [this.vf.params.flat.buffer, this.xy.buffer];
    if (pairs) bufs.push(pairs.buffer);
    bufs.push(part.buffer);
    b.dispatch(b.prepare(forwardBackwardKernel(this.shape)), bufs, matchUniforms(this.opts.seed, step));
    const { uniforms, m, v, ema } = this.adam.fusedStep(step, lr);
    const adamBufs = [part.buffer, this.vf.params.flat.buffer, m, v, this.ring.buffer.buffer];
    if (ema) adamBufs.push(ema);
    b.dispatch(b.prepare(reduceAdamKernel(np, threads, 1 / (this.opts.batch * this.d), LOSS_SLOTS, !!ema)), adamBufs, uniforms);
    part.dispose();
  }

  /** x_t input [B, d+1] and target u_t [B, d] from the matcher kernel (caller owns); `eps` on request. */
  matched(pairs: Tensor | null, step: number, withEps = false): { input: Tensor; target: Tensor; eps: Tensor | null } {
    const b = getBackend();
    const B = this.opts.batch;
    const input = Tensor.empty([B, this.d + 1]);
    const target = Tensor.empty([B, this.d]);
    const eps = withEps ? Tensor.empty([B, this.d]) : null;
    const bufs = [this.xy.buffer];
    if (pairs) bufs.push(pairs.buffer);
    bufs.push(input.buffer, target.buffer);
    if (eps) bufs.push(eps.buffer);
    b.dispatch(b.prepare(matcherKernel(this.opts.method, this.opts.sigma, this.d, B, B, !!pairs, withEps)), bufs, matchUniforms(this.opts.seed, step));
    return { input, target, eps };
  }

  /** The batch's context rows [B, c] (a view of the batch buffer), or undefined when unconditional. */
  context(): Tensor | undefined {
    const B = this.opts.batch;
    return this.c > 0 ? Tensor.view(this.xy, [B, this.c], 2 * B * this.d) : undefined;
  }

  /** The loss mean((v − u_t)²) on the tape and its gradients (caller owns). */
  lossAndGrads(input: Tensor, target: Tensor, context?: Tensor): { value: Tensor; grads: Tensor[] } {
    const level = this.fusion === 'step' ? 'mlp' : this.fusion;
    return withFusion(level, () => valueAndGrad(() => mean(square(sub(this.vf.forward(input, context), target))), this.vf.params.params));
  }

  private tapeStep(pairs: Tensor | null, step: number, lr: number): void {
    const { input, target } = this.matched(pairs, step);
    const { value, grads } = this.lossAndGrads(input, target, this.context());
    this.adam.step(grads, lr);
    this.ring.record(value, this.vf.params.flat, step);
  }

  /** Losses of steps [from, to) (to − from ≤ LOSS_SLOTS) and the non-finite guard, one readback. */
  readRing(from: number, to: number): Promise<RingRead> {
    return this.ring.read(from, to);
  }

  /** Losses of steps [from, to) (to − from ≤ LOSS_SLOTS), one readback. */
  async readLosses(from: number, to: number): Promise<Float32Array> {
    return (await this.ring.read(from, to)).losses;
  }

  async adamState(): Promise<AdamState> {
    return this.adam.state();
  }

  loadAdamState(s: AdamState): void {
    this.adam.loadState(s);
  }

  /** The moving average of the weights, named as the parameters (one readback), or null when none is kept. */
  averagedWeights(): Promise<Record<string, { data: Float32Array; shape: number[] }> | null> {
    return this.adam.averagedParams();
  }

  dispose(): void {
    this.xy.dispose();
    this.ring.dispose();
    this.adam.dispose();
  }
}

/**
 * Gradients of one step's loss by the fused kernel (summed partials, read back) — for tests: the
 * parameters are not updated.
 */
export async function fusedGradients(vf: VectorField, opts: StepperOptions, xy: Float32Array, step: number, pairs?: Tensor): Promise<{ loss: number; grad: Float32Array }> {
  const b = getBackend();
  const d = vf.cfg.dim;
  const np = layoutSize(vf.layout);
  const S = opts.samplesPerThread ?? 8;
  const shape: FusedStepShape = { layout: vf.layout, method: opts.method, sigma: opts.sigma, batch: opts.batch, n0: opts.batch, withPairs: !!pairs, samplesPerThread: S, workgroup: 16 };
  const threads = fusedThreads(shape);
  const c = vf.cfg.context ?? 0;
  const xyT = noGrad(() => zeros(c > 0 ? [2 * opts.batch * d + opts.batch * c] : [2 * opts.batch, d]));
  b.write(xyT.buffer, xy);
  const part = Tensor.empty([threads, np + 1]);
  const bufs = [vf.params.flat.buffer, xyT.buffer];
  if (pairs) bufs.push(pairs.buffer);
  bufs.push(part.buffer);
  b.dispatch(b.prepare(forwardBackwardKernel(shape)), bufs, matchUniforms(opts.seed, step));
  const p = await part.data();
  part.dispose();
  xyT.dispose();
  const grad = new Float32Array(np);
  let loss = 0;
  for (let t = 0; t < threads; t++) {
    for (let k = 0; k < np; k++) grad[k]! += p[t * (np + 1) + k]!;
    loss += p[t * (np + 1) + np]!;
  }
  return { loss: loss / (opts.batch * d), grad };
}
