/**
 * The [SF]2M training step (cfm/sf2m.ts for the losses): one command encoder, one submit, no
 * readback, like every CFM step (cfm/step.ts). Two implementations, the same numbers up to float32
 * summation order (tests/sf2m.test.ts):
 *
 *  - fusion 'step' (default): `sf2mForwardBackwardKernel` — each thread owns S samples, draws t and
 *    ε from the matcher's Philox stream (cfm/matchers.ts, so a CPU replay sees the same draws),
 *    forms x_t, u_t and λ(t), then runs the flow network forward and backward against
 *    ‖v − u_t‖² and the score network forward and backward against ‖λ·s + ε‖², each from the one
 *    MLP emitter (kernels/mlp/emit.ts) in its own WGSL block, writing its partial gradient of both
 *    networks and its partial loss to a row of PART; then the one reduce + Adam kernel
 *    (kernels/adam.ts) over both networks' parameters. 2 dispatches (4 with GPU Sinkhorn).
 *  - fusion 'mlp' | 'layer' | 'ops': the tape — a matcher kernel writing [x_t, t], u_t, ε and λ,
 *    the two networks through the engine's `mlp` at that level, the loss, valueAndGrad, engine Adam.
 */
import type { KernelSpec } from '../engine/backend';
import { Adam, add, getBackend, keep, LossRing, LOSS_SLOTS, mean, mlpFallbackReason, mul, noGrad, scope, square, sub, Tensor, valueAndGrad, withFusion, zeros, type FusionLevel, type RingRead } from '../engine';
import { reduceAdamKernel } from '../kernels/adam';
import { declareArrays, emitForward, emitReverse, range, type MlpNet } from '../kernels/mlp/emit';
import { layoutSize, stateDim, type MlpLayout } from '../kernels/ode';
import { PHILOX_WGSL } from '../kernels/random';
import { f32, spec, u32, type Binding } from '../kernels/wgsl';
import { MATCH_STRUCT, matcherWgsl, matchUniforms, streamWgsl } from './matchers';
import { costMatrix, GpuSinkhorn, type Pairing, type SinkhornOptions } from './ot';
import type { Sf2mModel } from './sf2m';
import { declare } from './fused-step';
import type { AdamConfig, AdamState } from './step';

/** WGSL `fn lambda_t(t) -> f32`: 2σ√(t(1−t))/(σ² + 1e-8) (torchcfm compute_lambda). */
function lambdaWgsl(sigma: number): string {
  return `fn lambda_t(t: f32) -> f32 { return ${f32(2 * sigma)} * sqrt(t * (1.0 - t)) / ${f32(sigma * sigma + 1e-8)}; }`;
}

/** The sample prologue shared by both kernels: x0, x1 of row b (or its pair), t, ε, x_t, u_t, λ. */
function drawWgsl(B: number, d: number, n0: number, withPairs: boolean): string[] {
  return [
    `    let i0 = ${withPairs ? 'u32(PAIRS[b])' : 'b'};`,
    `    let i1 = ${withPairs ? `u32(PAIRS[${u32(B)} + b])` : 'b'};`,
    `    var x0: array<f32, ${d}>;`,
    `    var x1: array<f32, ${d}>;`,
    ...range(d).map((k) => `    x0[${k}] = XY[i0 * ${u32(d)} + ${u32(k)}];\n    x1[${k}] = XY[(${u32(n0)} + i1) * ${u32(d)} + ${u32(k)}];`),
    `    let t = draw_t(b);`,
    `    let eps = draw_eps(b);`,
    `    let m = match_xt_ut(x0, x1, t, eps);`,
    `    let lam = lambda_t(t);`,
  ];
}

function preamble(sigma: number, d: number): string {
  return `${PHILOX_WGSL}\n${MATCH_STRUCT}\n${streamWgsl(d)}\n${matcherWgsl('sf2m', sigma, d)}\n${lambdaWgsl(sigma)}`;
}

/**
 * The tape path's matcher: IN[b] = [x_t, t] (B × (d+1)), TGT[b] = u_t, EPS[b] = ε (B × d),
 * LAM[b] = λ(t) (B × 1). Bindings: uniforms, XY, [PAIRS], IN, TGT, EPS, LAM.
 */
export function sf2mMatcherKernel(sigma: number, d: number, batch: number, withPairs: boolean): KernelSpec {
  const bindings: Binding[] = [{ name: 'mp', kind: 'uniform', type: 'MatchParams' }, { name: 'XY', kind: 'read' }];
  if (withPairs) bindings.push({ name: 'PAIRS', kind: 'read' });
  bindings.push({ name: 'IN', kind: 'read_write' }, { name: 'TGT', kind: 'read_write' }, { name: 'EPS', kind: 'read_write' }, { name: 'LAM', kind: 'read_write' });
  const src = `${preamble(sigma, d)}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b >= ${u32(batch)}) { return; }
  {
${drawWgsl(batch, d, batch, withPairs).join('\n')}
    for (var k = 0u; k < ${u32(d)}; k++) {
      IN[b * ${u32(d + 1)} + k] = m.xt[k];
      TGT[b * ${u32(d)} + k] = m.ut[k];
      EPS[b * ${u32(d)} + k] = eps[k];
    }
    IN[b * ${u32(d + 1)} + ${u32(d)}] = t;
    LAM[b] = lam;
  }
}`;
  return spec(`sf2m_match[${batch}x${d}${withPairs ? '+pairs' : ''}]`, bindings, src, [Math.ceil(batch / 64), 1, 1]);
}

export interface Sf2mStepShape {
  flow: MlpLayout;
  score: MlpLayout;
  sigma: number;
  batch: number;
  withPairs: boolean;
  samplesPerThread: number;
  workgroup: number;
}

const netOf = (l: MlpLayout): MlpNet => ({ dims: l.dims, activation: l.activation, w: l.wOffsets.map((off) => ({ buf: 'P', off })), b: l.bOffsets.map((off) => ({ buf: 'P', off })) });

/**
 * Forward + backward of both networks and both losses. Bindings: uniforms (MatchParams), P (both
 * networks), XY (x0 rows then x1 rows), [PAIRS], PART (threads × (params + 1)).
 */
export function sf2mForwardBackwardKernel(s: Sf2mStepShape): KernelSpec {
  const d = stateDim(s.flow);
  const nl = s.flow.dims.length - 1;
  if (nl < 2) throw new Error('sf2m step: the MLPs need at least one hidden layer');
  const S = s.samplesPerThread;
  const B = s.batch;
  const T = Math.ceil(B / S);
  const NP = Math.max(layoutSize(s.flow), layoutSize(s.score));
  const row = NP + 1;
  const scale = f32(2 / (B * d));
  const bindings: Binding[] = [{ name: 'mp', kind: 'uniform', type: 'MatchParams' }, { name: 'P', kind: 'read' }, { name: 'XY', kind: 'read' }];
  if (s.withPairs) bindings.push({ name: 'PAIRS', kind: 'read' });
  bindings.push({ name: 'PART', kind: 'read_write' });
  const L: string[] = [
    `  var xin: array<array<f32, ${d + 1}>, ${S}>;`,
    `  var ut: array<array<f32, ${d}>, ${S}>;`,
    `  var ep: array<array<f32, ${d}>, ${S}>;`,
    `  var lm: array<f32, ${S}>;`,
    `  var valid: array<f32, ${S}>;`,
  ];
  for (const q of range(S)) {
    L.push(`  {`,
      `    let b = min(tid * ${u32(S)} + ${u32(q)}, ${u32(B - 1)});`,
      `    valid[${q}] = select(0.0, 1.0, tid * ${u32(S)} + ${u32(q)} < ${u32(B)});`,
      ...drawWgsl(B, d, B, s.withPairs),
      ...range(d).map((k) => `    xin[${q}][${k}] = m.xt[${k}];\n    ut[${q}][${k}] = m.ut[${k}];\n    ep[${q}][${k}] = eps[${k}];`),
      `    xin[${q}][${d}] = t;`,
      `    lm[${q}] = lam;`,
      `  }`);
  }
  L.push(`  var lsum = 0.0;`, `  let po = tid * ${u32(row)};`);
  // One block per network: the emitter's arrays (a0_q, o_q, gz…) are local to it.
  const block = (l: MlpLayout, residual: (q: number, j: number) => string, grad: (q: number, j: number) => string) => {
    const net = netOf(l);
    L.push('  {', ...declareArrays(net, S, { keep: true }));
    for (const q of range(S)) for (let k = 0; k <= d; k++) L.push(`  a0_${q}[${k}] = xin[${q}][${k}];`);
    L.push(...emitForward(net, S, { keep: true }));
    for (const q of range(S)) {
      L.push(`  var gz${nl - 1}_${q}: array<f32, ${d}>;`);
      for (let j = 0; j < d; j++) L.push(`  {`, `    let r = ${residual(q, j)};`, `    lsum = fma(r, r, lsum);`, `    gz${nl - 1}_${q}[${j}] = ${grad(q, j)};`, `  }`);
    }
    L.push(...emitReverse(net, S, {
      gradB: (k, j, v) => `PART[po + ${u32(l.bOffsets[k]!)} + ${j}] = ${v};`,
      gradW: (k, i, j, v) => `PART[po + ${u32(l.wOffsets[k]!)} + ${i} * ${u32(l.dims[k + 1]!)} + ${j}] = ${v};`,
      gradIn: null,
    }), '  }');
  };
  // ∂/∂v of mean(v − u)² is 2(v − u)/(B·d); ∂/∂s of mean(λs + ε)² is 2λ(λs + ε)/(B·d).
  block(s.flow, (q, j) => `(o_${q}[${j}] - ut[${q}][${j}]) * valid[${q}]`, () => `${scale} * r`);
  block(s.score, (q, j) => `(lm[${q}] * o_${q}[${j}] + ep[${q}][${j}]) * valid[${q}]`, (q) => `${scale} * lm[${q}] * r`);
  L.push(`  PART[po + ${u32(NP)}] = lsum;`);
  const src = `${declare(bindings, NP, true)}
${preamble(s.sigma, d)}
@compute @workgroup_size(${s.workgroup})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let tid = gid.x;
  if (tid >= ${u32(T)}) { return; }
${L.join('\n')}
}`;
  return { name: `sf2m_fwdbwd[${B}x${s.flow.dims.join('-')}/S${S}${s.withPairs ? '+pairs' : ''}]`, source: src, bindings: bindings.map((b) => b.kind), workgroups: [Math.ceil(T / s.workgroup), 1, 1] };
}

export interface Sf2mStepperOptions {
  sigma: number;
  batch: number;
  /** Philox key of the matcher stream and of the GPU pair sampling. */
  seed: number;
  /** 'step' (default): the fused kernels; 'mlp' | 'layer' | 'ops': the tape at that level. */
  fusion?: FusionLevel;
  sinkhorn?: { opts: SinkhornOptions; pairing: Pairing };
  adam: AdamConfig;
  samplesPerThread?: number;
}

export class Sf2mStepper {
  readonly fusion: FusionLevel;
  /** Why the step runs below the level asked for (networks too wide for the fused kernel), or null. */
  readonly fallback: string | null;
  readonly d: number;
  readonly xy: Tensor;
  readonly ring = new LossRing();
  private readonly sinkhorn: GpuSinkhorn | null;
  /** The moments and step count of both paths (the fused one applies it in its reduce kernel). */
  private readonly adam: Adam;
  readonly shape: Sf2mStepShape;

  constructor(readonly model: Sf2mModel, readonly opts: Sf2mStepperOptions) {
    const wanted = opts.fusion ?? 'step';
    this.fallback = wanted === 'step' ? mlpFallbackReason(model.flowLayout.dims) : null;
    this.fusion = this.fallback ? 'layer' : wanted;
    this.d = model.cfg.dim;
    const B = opts.batch;
    this.xy = keep(zeros([2 * B, this.d]));
    this.sinkhorn = opts.sinkhorn ? new GpuSinkhorn(B, B, B, opts.sinkhorn.opts, opts.seed) : null;
    const S = opts.samplesPerThread ?? 8;
    const threads = Math.ceil(B / S);
    this.shape = { flow: model.flowLayout, score: model.scoreLayout, sigma: opts.sigma, batch: B, withPairs: !!opts.sinkhorn, samplesPerThread: S, workgroup: Math.max(1, Math.min(64, Math.ceil(threads / 2))) };
    this.adam = new Adam(model.params, opts.adam);
  }

  /** Records step `step` on the batch `xy` (2B × d: x0 rows then x1 rows) at learning rate `lr` and submits it. */
  step(xy: Float32Array, step: number, lr = this.opts.adam.lr): void {
    const b = getBackend();
    b.write(this.xy.buffer, xy);
    scope(() => {
      let pairs: Tensor | null = null;
      if (this.sinkhorn) {
        const B = this.opts.batch;
        const C = costMatrix(Tensor.view(this.xy, [B, this.d], 0), Tensor.view(this.xy, [B, this.d], B * this.d));
        this.sinkhorn.draws = step;
        pairs = this.sinkhorn.run(C, this.opts.sinkhorn!.pairing).pairs;
      }
      if (this.fusion === 'step') this.fusedStep(pairs, step, lr);
      else this.tapeStep(pairs, step, lr);
    });
    b.flush();
  }

  private fusedStep(pairs: Tensor | null, step: number, lr: number): void {
    const b = getBackend();
    const np = this.model.params.size;
    const threads = Math.ceil(this.opts.batch / this.shape.samplesPerThread);
    const part = partials(this.model, this.shape, this.xy, pairs, step, this.opts.seed);
    const { uniforms, m, v, ema } = this.adam.fusedStep(step, lr);
    const adamBufs = [part.buffer, this.model.params.flat.buffer, m, v, this.ring.buffer.buffer];
    if (ema) adamBufs.push(ema);
    b.dispatch(b.prepare(reduceAdamKernel(np, threads, 1 / (this.opts.batch * this.d), LOSS_SLOTS, !!ema)), adamBufs, uniforms);
    part.dispose();
  }

  /** The loss on the tape and its gradients for both networks (caller owns). */
  lossAndGrads(pairs: Tensor | null, step: number): { value: Tensor; grads: Tensor[] } {
    const b = getBackend();
    const B = this.opts.batch;
    const d = this.d;
    const input = Tensor.empty([B, d + 1]);
    const target = Tensor.empty([B, d]);
    const eps = Tensor.empty([B, d]);
    const lam = Tensor.empty([B, 1]);
    const bufs = [this.xy.buffer, ...(pairs ? [pairs.buffer] : []), input.buffer, target.buffer, eps.buffer, lam.buffer];
    b.dispatch(b.prepare(sf2mMatcherKernel(this.opts.sigma, d, B, !!pairs)), bufs, matchUniforms(this.opts.seed, step));
    const level = this.fusion === 'step' ? 'mlp' : this.fusion;
    return withFusion(level, () => valueAndGrad(() => {
      const { v, s } = this.model.forward(input);
      return add(mean(square(sub(v, target))), mean(square(add(mul(s, lam), eps))));
    }, this.model.params.params));
  }

  private tapeStep(pairs: Tensor | null, step: number, lr: number): void {
    const { value, grads } = this.lossAndGrads(pairs, step);
    this.adam.step(grads, lr);
    this.ring.record(value, this.model.params.flat, step);
  }

  readRing(from: number, to: number): Promise<RingRead> {
    return this.ring.read(from, to);
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

/** PART (threads × (params + 1)) of one step by the fused kernel (caller owns). */
function partials(model: Sf2mModel, shape: Sf2mStepShape, xy: Tensor, pairs: Tensor | null, step: number, seed: number): Tensor {
  const b = getBackend();
  const threads = Math.ceil(shape.batch / shape.samplesPerThread);
  const part = Tensor.empty([threads, model.params.size + 1]);
  const bufs = [model.params.flat.buffer, xy.buffer, ...(pairs ? [pairs.buffer] : []), part.buffer];
  b.dispatch(b.prepare(sf2mForwardBackwardKernel(shape)), bufs, matchUniforms(seed, step));
  return part;
}

/** Loss and summed gradients of one step by the fused kernel, parameters untouched (tests). */
export async function sf2mFusedGradients(model: Sf2mModel, opts: Sf2mStepperOptions, xy: Float32Array, step: number, pairs?: Tensor): Promise<{ loss: number; grad: Float32Array }> {
  const S = opts.samplesPerThread ?? 8;
  const shape: Sf2mStepShape = { flow: model.flowLayout, score: model.scoreLayout, sigma: opts.sigma, batch: opts.batch, withPairs: !!pairs, samplesPerThread: S, workgroup: 16 };
  const xyT = noGrad(() => zeros([2 * opts.batch, model.cfg.dim]));
  getBackend().write(xyT.buffer, xy);
  const part = partials(model, shape, xyT, pairs ?? null, step, opts.seed);
  const p = await part.data();
  part.dispose();
  xyT.dispose();
  const np = model.params.size;
  const threads = Math.ceil(opts.batch / S);
  const grad = new Float32Array(np);
  let loss = 0;
  for (let t = 0; t < threads; t++) {
    for (let k = 0; k < np; k++) grad[k]! += p[t * (np + 1) + k]!;
    loss += p[t * (np + 1) + np]!;
  }
  return { loss: loss / (opts.batch * model.cfg.dim), grad };
}
