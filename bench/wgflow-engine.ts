/**
 * wgflow as a `BenchEngine` (bench/workloads.ts), one engine per fusion level, so the peers
 * benchmark times every level against the peers in the same interleaved loop.
 *
 * Fusion levels: the engine's switch is read when the benchmark starts, since the ladder of issue 10
 * item 3 is being built beside this file. When engine/config.ts has `FUSION_LEVELS` (ops, layer,
 * mlp, step) they are selected with `setFusion(level)`; before that, `setFusion(false|true)` is
 * the only switch, reported as the levels `ops` and `layer`. The level `step` is left out: it
 * differs from `mlp` only for trainers with a hand-fused step (CFM), not for this plain MLP.
 * The network is the engine's `mlp()` when it exists (it picks ops / layer / mlp by the level
 * itself), else one `linear` per layer. `fusionSwitch().api` says which, and the report prints it.
 */
import * as engine from '../engine';
import * as engineConfig from '../engine/config';
import { Adam, linear, matmul, mean, ParamSet, square, sub, tensor, type Tensor } from '../engine';
import type { WebGPUBackend } from '../engine/webgpu-backend';
import { ADAM, MLP_SIZES, type Act, type BenchEngine, type HostData, type Runner, type Workload } from './workloads';

export interface FusionSwitch {
  /** How the levels are selected and the network built, for the report. */
  api: string;
  levels: readonly string[];
  set(level: string): void;
  /** Restores the setting found at start. */
  restore(): void;
}

type LevelApi = { FUSION_LEVELS?: readonly string[] };
type MlpFn = (x: Tensor, layers: { w: Tensor; b: Tensor }[], opts: { activation: string }) => Tensor;

/** The engine's `mlp(x, layers, opts)` when it has one (issue 10 item 2). */
function engineMlp(): MlpFn | null {
  const f = (engine as unknown as { mlp?: unknown }).mlp;
  return typeof f === 'function' ? (f as MlpFn) : null;
}

export function fusionSwitch(): FusionSwitch {
  const levels = (engineConfig as unknown as LevelApi).FUSION_LEVELS;
  const setFusion = engine.setFusion as (l: unknown) => void;
  const start: unknown = engine.config.fusion;
  const net = engineMlp() ? 'network: engine mlp()' : 'network: one linear() per layer';
  if (Array.isArray(levels) && typeof start === 'string') {
    return {
      api: `setFusion(level), levels ${levels.join('|')}; ${net}`,
      levels: levels.filter((l) => l !== 'step'),
      set: (l) => setFusion(l),
      restore: () => setFusion(start),
    };
  }
  return {
    api: `setFusion(false | true) = ops | layer; ${net}`,
    levels: ['ops', 'layer'],
    set: (l) => setFusion(l !== 'ops'),
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
  const mk = (level: string): BenchEngine => ({
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
 * The SPEC §5.4 step: MLP (engine `linear` per layer) → MSE → valueAndGrad → Adam, one flush (one
 * submit) per step, nothing read back. `enter` re-selects this runner's fusion level before each
 * step: the levels' runners are interleaved and the switch is global.
 */
function mlpRunner(b: WebGPUBackend, batch: number, act: Act, data: HostData, enter: () => void): Runner {
  const ps = new ParamSet(data.params!.map((p, i) => ({ name: `${i % 2 ? 'b' : 'W'}${i >> 1}`, shape: p.shape, init: p.data })));
  const opt = new Adam(ps, { lr: ADAM.lr, beta1: ADAM.beta1, beta2: ADAM.beta2, eps: ADAM.eps });
  const x = tensor(data.x!, [batch, MLP_SIZES[0]]);
  const y = tensor(data.y!, [batch, MLP_SIZES[MLP_SIZES.length - 1]!]);
  const layers = MLP_SIZES.length - 1;
  const net = engineMlp();
  const P = ps.params;
  const forward = net
    ? () => net(x, Array.from({ length: layers }, (_, l) => ({ w: P[2 * l]!, b: P[2 * l + 1]! })), { activation: act })
    : () => {
        let h: Tensor = x;
        for (let l = 0; l < layers; l++) h = linear(h, P[2 * l]!, P[2 * l + 1]!, l + 1 < layers ? act : 'none');
        return h;
      };
  let last: Tensor | null = null;
  return {
    issue() {
      enter();
      const { value, grads } = engine.valueAndGrad(() => mean(square(sub(forward(), y))), ps.params);
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
