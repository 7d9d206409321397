/**
 * wgflow as a `BenchEngine` (bench/workloads.ts), one engine per fusion level (engine/config.ts:
 * ops, layer, mlp), so the peers benchmark times every level against the peers in the same
 * interleaved loop. The level `step` is left out: it differs from `mlp` only for trainers with a
 * hand-fused step (CFM), not for this plain MLP. The network is the engine's `mlp()`, which picks
 * ops / layer / mlp by the level itself.
 */
import { Adam, config, FUSION_LEVELS, matmul, mean, mlp, ParamSet, setFusion, square, sub, tensor, valueAndGrad, type FusionLevel, type Tensor } from '../engine';
import type { WebGPUBackend } from '../engine/webgpu-backend';
import { ADAM, MLP_SIZES, type Act, type BenchEngine, type HostData, type Runner, type Workload } from './workloads';

export interface FusionSwitch {
  /** How the levels are selected and the network built, for the report. */
  api: string;
  levels: readonly FusionLevel[];
  set(level: FusionLevel): void;
  /** Restores the setting found at start. */
  restore(): void;
}

export function fusionSwitch(): FusionSwitch {
  const start = config.fusion;
  const levels = FUSION_LEVELS.filter((l) => l !== 'step');
  return {
    api: `setFusion(level), levels ${levels.join('|')}; network: engine mlp()`,
    levels,
    set: (l) => setFusion(l),
    restore: () => setFusion(start),
  };
}

/** Submits what is recorded and resolves when the queue is idle; rethrows GPU errors seen meanwhile. */
async function settle(b: WebGPUBackend): Promise<void> {
  b.flush();
  await b.device.queue.onSubmittedWorkDone();
  b.flush();
}

export function wgflowEngines(b: WebGPUBackend, sw: FusionSwitch = fusionSwitch()): BenchEngine[] {
  const mk = (level: FusionLevel): BenchEngine => ({
    name: `wgflow ${level}`,
    family: 'wgflow',
    // matmul has no fusion: time it once, at the first level's name ('wgflow' in the table).
    supports: (w) => (w.kind === 'matmul' && level !== sw.levels[0] ? 'matmul is the same kernel at every fusion level' : null),
    async setup(w: Workload, data: HostData): Promise<Runner> {
      sw.set(level);
      return w.kind === 'matmul' ? matmulRunner(b, w.size, data) : mlpRunner(b, w.batch, w.act, data, () => sw.set(level));
    },
  });
  return sw.levels.map(mk);
}

function matmulRunner(b: WebGPUBackend, size: number, data: HostData): Runner {
  const A = tensor(data.a!, [size, size]);
  const B = tensor(data.b!, [size, size]);
  let C: Tensor | null = null;
  return {
    issue() {
      C?.dispose();
      C = matmul(A, B);
    },
    wait: () => settle(b),
    output: async () => (C ? C.data() : new Float32Array()),
    dispose() {
      C?.dispose();
      A.dispose();
      B.dispose();
      b.flush();
    },
  };
}

/**
 * The SPEC §5.4 step: MLP (engine `mlp()` at the runner's fusion level) → MSE → valueAndGrad → Adam, one flush (one
 * submit) per step, nothing read back. `enter` re-selects this runner's fusion level before each
 * step: the levels' runners are interleaved and the switch is global.
 */
function mlpRunner(b: WebGPUBackend, batch: number, act: Act, data: HostData, enter: () => void): Runner {
  const ps = new ParamSet(data.params!.map((p, i) => ({ name: `${i % 2 ? 'b' : 'W'}${i >> 1}`, shape: p.shape, init: p.data })));
  const opt = new Adam(ps, { lr: ADAM.lr, beta1: ADAM.beta1, beta2: ADAM.beta2, eps: ADAM.eps });
  const x = tensor(data.x!, [batch, MLP_SIZES[0]]);
  const y = tensor(data.y!, [batch, MLP_SIZES[MLP_SIZES.length - 1]!]);
  const P = ps.params;
  const layers = Array.from({ length: MLP_SIZES.length - 1 }, (_, l) => ({ w: P[2 * l]!, b: P[2 * l + 1]! }));
  const forward = () => mlp(x, layers, { activation: act });
  let last: Tensor | null = null;
  return {
    issue() {
      enter();
      const { value, grads } = valueAndGrad(() => mean(square(sub(forward(), y))), ps.params);
      opt.step(grads);
      for (const g of grads) g.dispose();
      last?.dispose();
      last = value;
      b.flush();
    },
    wait: () => settle(b),
    output: async () => Float32Array.of(last ? await last.item() : Number.NaN),
    dispose() {
      last?.dispose();
      x.dispose();
      y.dispose();
      opt.dispose();
      ps.dispose();
      b.flush();
    },
  };
}
