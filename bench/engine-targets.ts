/**
 * Issue 10's wgflow-only targets, measured in the same run as the peers (bench/peers-bench.ts
 * section `targets`), in Node or in the page (no Node imports here):
 *
 *  - flows: a RealNVP (8 affine couplings) and a MAF (10 MADE layers) training step, 2-D, batch 256,
 *    conditioners [64, 64] ReLU — the step of flows/train.ts (−mean log p on the tape, Adam, loss
 *    into the ring, one flush) — at each fusion level; dispatches per step from the engine counters,
 *    ms per step as the median over rounds, the levels alternated round by round.
 *    Targets: ≤ 40 dispatches per step; ≥ 3× faster than the `layer` level.
 *  - sampling: RK4 × `rk4Steps` steps with the default vector field (3→64→64→64→2 SELU) for n
 *    trajectories, the fused solver kernel (level `step`) against the op-by-op `ops` level,
 *    alternated; GFLOP/s counts 2 FLOPs per multiply-add of the network's weights, 4 evaluations
 *    per RK4 step (activations, biases and the RK4 combinations are left out: a lower bound).
 *    Targets: ≥ 10× where dispatch-bound (n ≤ 1 024); at large n, ≥ 70% of the best matmul GFLOP/s
 *    of this run.
 *  - OT-CFM: the exact-OT training step at batch 256 (SPEC §5.1: PyTorch 7.4 ms on 2 CPU cores),
 *    split into its CPU part (drawing the batch and solving the 256 × 256 assignment), the GPU
 *    part alone (batches prepared) and the whole pipelined step as training runs it.
 */
import { Adam, LossRing, mean, neg, scope, setFusion, config, tensor, valueAndGrad, type FusionLevel } from '../engine';
import type { WebGPUBackend } from '../engine/webgpu-backend';
import { Rng } from '../engine/philox';
import { buildFlow, resolveArch } from '../flows/build';
import { VectorField } from '../cfm/mlp';
import { odeSolve } from '../cfm/ode';
import { sourceSampler, stepBatch, targetSampler } from '../cfm/train';
import { resolveConfig } from '../cfm/config';
import { CfmStepper } from '../cfm/step';
import { median } from './engine-bench';

export interface EngineTargetOptions {
  flowModels?: string[];
  flowLevels?: FusionLevel[];
  /** Training steps per timed round, and rounds. */
  flowSteps?: number;
  flowRounds?: number;
  rk4N?: number[];
  rk4Steps?: number;
  rk4Reps?: number;
  otSteps?: number;
}

export const DEFAULT_TARGETS: Required<EngineTargetOptions> = {
  flowModels: ['realnvp', 'maf'],
  flowLevels: ['ops', 'layer', 'mlp'],
  flowSteps: 10,
  flowRounds: 3,
  rk4N: [256, 10000],
  rk4Steps: 100,
  rk4Reps: 2,
  otSteps: 100,
};

export interface FlowStepResult {
  model: string;
  level: FusionLevel;
  dispatchesPerStep: number;
  ms: number;
  samples: number[];
  /** −mean log p after the run (the levels train the same model, so these agree closely). */
  loss: number;
}

export interface SamplingResult {
  n: number;
  steps: number;
  level: FusionLevel;
  ms: number;
  samples: number[];
  dispatches: number;
  gflops: number;
  /** max |x_level − x_step| over the samples. */
  maxAbsDiff: number;
}

export interface OtStepResult {
  batch: number;
  /** Drawing the batch and the exact OT plan (CPU), per step. */
  cpuMs: number;
  /** The GPU step alone, batches prepared. */
  gpuMs: number;
  /** As training runs it: CPU part of step s+1 overlapping the GPU's step s. */
  pipelinedMs: number;
  dispatchesPerStep: number;
  submitsPerStep: number;
  fusion: FusionLevel;
}

export interface EngineTargetsResult {
  flows: FlowStepResult[];
  sampling: SamplingResult[];
  ot: OtStepResult | null;
}

type Say = (text: string) => void;

async function settle(b: WebGPUBackend): Promise<void> {
  b.flush();
  await b.device.queue.onSubmittedWorkDone();
  b.flush();
}

export async function runEngineTargets(b: WebGPUBackend, opts: EngineTargetOptions = {}, say: Say = () => {}): Promise<EngineTargetsResult> {
  const o: Required<EngineTargetOptions> = { ...DEFAULT_TARGETS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const saved = config.fusion;
  try {
    const flows: FlowStepResult[] = [];
    for (const model of o.flowModels) flows.push(...(await flowSteps(b, model, o, say)));
    const sampling: SamplingResult[] = [];
    for (const n of o.rk4N) sampling.push(...(await rk4(b, n, o, say)));
    const ot = o.otSteps > 0 ? await otcfmStep(b, o.otSteps, say) : null;
    return { flows, sampling, ot };
  } finally {
    setFusion(saved);
  }
}

/** The 2-D batches the flows steps train on (fixed, N(0.3, 0.8²) per coordinate). */
export const FLOW_BATCH = 256;

/**
 * One flows training step as flows/train.ts takes it (−mean log p on the tape, Adam, loss into the
 * ring, one flush), for `model` with its default architecture in 2-D, initialised on the first of 8
 * fixed batches; built at the current fusion level (the fused layers are chosen per call, so a
 * caller may switch levels between steps). Also used by bench/flows-fusion.ts.
 */
export async function flowTrainer(b: WebGPUBackend, model: string): Promise<{ step(): void; lastLoss(): Promise<number>; dispose(): void }> {
  const B = FLOW_BATCH;
  const rng = new Rng(7);
  const batches = Array.from({ length: 8 }, () => Float32Array.from({ length: B * 2 }, () => rng.normal() * 0.8 + 0.3));
  const flow = buildFlow(resolveArch(model, 2, {}, 0));
  const init0 = tensor(batches[0]!, [B, 2]);
  await flow.initialize(init0);
  init0.dispose();
  const adam = new Adam(flow.store.paramSet!, { lr: 1e-4 });
  const ring = new LossRing();
  let stepNo = 0;
  return {
    step() {
      scope(() => {
        const x = tensor(batches[stepNo % batches.length]!, [B, 2]);
        const { value, grads } = valueAndGrad(() => neg(mean(flow.logProb(x))), flow.parameters);
        adam.step(grads);
        ring.record(value, flow.store.paramSet!.flat, stepNo);
      });
      b.flush();
      stepNo++;
    },
    lastLoss: async () => (await ring.read(stepNo - 1, stepNo)).losses[0] ?? Number.NaN,
    dispose() {
      ring.dispose();
      adam.dispose();
      flow.dispose();
      b.flush();
    },
  };
}

async function flowSteps(b: WebGPUBackend, model: string, o: Required<EngineTargetOptions>, say: Say): Promise<FlowStepResult[]> {
  const out: FlowStepResult[] = [];
  for (const level of o.flowLevels) {
    // A fresh model per level (same seed), so each level's loss after the same steps can be compared.
    setFusion(level);
    const t = await flowTrainer(b, model);
    t.step(); // compile
    await settle(b);
    const samples: number[] = [];
    let dispatches = 0;
    for (let r = 0; r < o.flowRounds; r++) {
      const d0 = b.counters.dispatches;
      const t0 = performance.now();
      for (let s = 0; s < o.flowSteps; s++) t.step();
      await settle(b);
      samples.push((performance.now() - t0) / o.flowSteps);
      dispatches = (b.counters.dispatches - d0) / o.flowSteps;
    }
    const res: FlowStepResult = { model, level, dispatchesPerStep: dispatches, ms: median(samples), samples, loss: await t.lastLoss() };
    out.push(res);
    say(`flows ${model} at ${level}: ${res.ms.toFixed(1)} ms/step (${samples.map((x) => x.toFixed(1)).join(' ')}), ${dispatches} dispatches/step, loss ${res.loss.toFixed(4)}`);
    t.dispose();
  }
  return out;
}

/** Multiply-adds of one evaluation of a dense network with these layer widths. */
function macs(dims: readonly number[]): number {
  let m = 0;
  for (let l = 0; l + 1 < dims.length; l++) m += dims[l]! * dims[l + 1]!;
  return m;
}

async function rk4(b: WebGPUBackend, n: number, o: Required<EngineTargetOptions>, say: Say): Promise<SamplingResult[]> {
  const vf = new VectorField({ dim: 2, hidden: [64, 64, 64], activation: 'selu' }, new Rng(1));
  const rng = new Rng(2);
  const x0 = tensor(Float32Array.from({ length: 2 * n }, () => rng.normal()), [n, 2]);
  const levels: FusionLevel[] = ['step', 'ops'];
  const flop = 2 * macs(vf.layout.dims) * 4 * o.rk4Steps * n;
  try {
    for (const level of levels) (await odeSolve(vf, x0, { steps: 1, fusion: level })).x.dispose(); // compile
    await settle(b);
    const times = new Map<FusionLevel, number[]>(levels.map((l) => [l, []]));
    const disp = new Map<FusionLevel, number>();
    const outs = new Map<FusionLevel, Float32Array>();
    for (let r = 0; r < o.rk4Reps; r++) {
      for (const level of levels) {
        const d0 = b.counters.dispatches;
        const t0 = performance.now();
        const sol = await odeSolve(vf, x0, { steps: o.rk4Steps, fusion: level });
        await settle(b);
        times.get(level)!.push(performance.now() - t0);
        disp.set(level, b.counters.dispatches - d0);
        if (r === 0) outs.set(level, await sol.x.data());
        sol.x.dispose();
      }
    }
    return levels.map((level) => {
      const ms = median(times.get(level)!);
      const ref = outs.get('step')!, x = outs.get(level)!;
      let diff = 0;
      for (let i = 0; i < x.length; i++) diff = Math.max(diff, Math.abs(x[i]! - ref[i]!));
      const res: SamplingResult = { n, steps: o.rk4Steps, level, ms, samples: times.get(level)!, dispatches: disp.get(level)!, gflops: flop / ms / 1e6, maxAbsDiff: diff };
      say(`RK4 n=${n} × ${o.rk4Steps} at ${level}: ${ms.toFixed(0)} ms, ${res.dispatches} dispatches, ${res.gflops.toFixed(2)} GFLOP/s, max |Δ| ${diff.toExponential(1)}`);
      return res;
    });
  } finally {
    x0.dispose();
    vf.dispose?.();
    b.flush();
  }
}

async function otcfmStep(b: WebGPUBackend, steps: number, say: Say): Promise<OtStepResult> {
  const batch = 256;
  const c = resolveConfig({ method: 'otcfm', source: '8gaussians', target: 'moons', steps, batch, lr: 1e-3, seed: 0, options: { ot: 'exact' } });
  const src = sourceSampler(c), tgt = targetSampler(c);
  const vf = new VectorField({ dim: 2, hidden: c.hidden, activation: c.activation }, new Rng(0));
  const fusion: FusionLevel = 'step';
  const st = new CfmStepper(vf, { method: c.method, sigma: c.sigma, batch, seed: 0, fusion, adam: { lr: 1e-3 } });
  try {
    let t0 = performance.now();
    const batches: Float32Array[] = [];
    for (let s = 0; s < steps; s++) batches.push(stepBatch(c, s, src, tgt));
    const cpuMs = (performance.now() - t0) / steps;
    st.step(batches[0]!, 0); // compile
    await settle(b);
    const d0 = b.counters.dispatches, s0 = b.counters.submits;
    t0 = performance.now();
    for (let s = 1; s < steps; s++) st.step(batches[s]!, s);
    await settle(b);
    const gpuMs = (performance.now() - t0) / (steps - 1);
    const dispatchesPerStep = (b.counters.dispatches - d0) / (steps - 1);
    const submitsPerStep = (b.counters.submits - s0) / (steps - 1);
    t0 = performance.now();
    for (let s = 0; s < steps; s++) st.step(stepBatch(c, s, src, tgt), s);
    await settle(b);
    const pipelinedMs = (performance.now() - t0) / steps;
    const res: OtStepResult = { batch, cpuMs, gpuMs, pipelinedMs, dispatchesPerStep, submitsPerStep, fusion };
    say(`OT-CFM exact step, batch ${batch}: ${pipelinedMs.toFixed(2)} ms pipelined (CPU part ${cpuMs.toFixed(2)} ms, GPU alone ${gpuMs.toFixed(2)} ms; ${dispatchesPerStep} dispatches, ${submitsPerStep} submits)`);
    return res;
  } finally {
    st.dispose();
    vf.dispose?.();
    b.flush();
  }
}
