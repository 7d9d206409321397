/** wgflow's engine: GPU tensors, the tape, optimizers and random numbers on WebGPU. */
import { createBackend, type RuntimeOptions } from './runtime';
import { setBackend } from './tensor';
import type { WebGPUBackend } from './webgpu-backend';

export * from './ops';
export { valueAndGrad, noGrad, type ValueAndGrad } from './autodiff';
export { Tensor, scope, keep, setBackend, getBackend } from './tensor';
export { ParamSet, Adam, emaDecayAt, learningRate, LR_SCHEDULES, type ParamSpec, type AdamOptions, type AdamStateData, type LrSchedule } from './optim';
export { GpuRng } from './random';
export { Rng } from './philox';
export { config, setFusion, withFusion, fusionAtLeast, FUSION_LEVELS, type FusionLevel } from './config';
export { mlpJvp } from './mlp';
export { flowLayer, flowLayerFits, type FlowLayerOptions } from './flow-ops';
export { MLP_MAX_WIDTH } from '../kernels/mlp/emit';
export { createBackend, adapterSummary, type RuntimeOptions } from './runtime';
export type { Backend, Counters, AdapterReport } from './backend';
export { DeviceLostError } from './backend';
export { LossRing, LOSS_SLOTS, NonFiniteError, type RingRead } from './loss-ring';

/** Acquires a device (browser or Node) and makes it the current backend. */
export async function init(opts: RuntimeOptions = {}): Promise<WebGPUBackend> {
  const b = await createBackend(opts);
  setBackend(b);
  return b;
}
