/**
 * The workloads of `bench --peers` (issue 10 item 6) and the common shape every engine implements,
 * so that one timing loop (bench/peers-bench.ts) drives wgflow, jax-js and tfjs alike.
 *
 * Every engine gets the same host data: the same matmul operands, the same MLP initial weights
 * (LeCun normal, zero biases), the same fixed batch, Adam(lr 1e-3, 0.9, 0.999, 1e-8). After the same
 * number of steps their losses must therefore agree, which is how the benchmark checks that a peer
 * did the work it was timed on (peers-bench.ts compares them). No Node imports (the page bundles it).
 */
import { Rng } from '../engine/philox';

export type Act = 'selu' | 'silu';

export type Workload = { kind: 'matmul'; size: number } | { kind: 'mlp'; batch: number; act: Act };

/** The MLP of SPEC §5.4: 3 → 64 → 64 → 64 → 2, activation between layers, none at the end. */
export const MLP_SIZES = [3, 64, 64, 64, 2] as const;
export const ADAM = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 } as const;

export function workloadKey(w: Workload): string {
  return w.kind === 'matmul' ? `matmul ${w.size}` : `mlp ${w.act} ${w.batch}`;
}

/**
 * One workload prepared on one engine. `issue()` records/dispatches one unit (a matmul, a training
 * step) without waiting; `wait()` submits what is pending and resolves when the device is done.
 */
export interface Runner {
  issue(): void;
  wait(): Promise<void>;
  /** After a wait: the last matmul's product (row-major), or [the last step's loss]. */
  output(): Promise<Float32Array>;
  dispose(): void;
}

export interface BenchEngine {
  /** e.g. `wgflow layer`, `jax-js 0.1.25 jit`. */
  readonly name: string;
  /** Which engine family (wgflow, jax-js, tfjs): the chart's colour and the ratios' denominator. */
  readonly family: 'wgflow' | 'jax-js' | 'tfjs';
  /** Null when this engine runs the workload; otherwise why not (it is then left out). */
  supports(w: Workload): string | null;
  setup(w: Workload, data: HostData): Promise<Runner>;
}

export interface HostData {
  /** matmul: A and B, each size×size. */
  a?: Float32Array;
  b?: Float32Array;
  /** mlp: [W0, b0, W1, b1, …] with W as [in, out] row-major; x [batch, 3]; y [batch, 2]. */
  params?: { shape: number[]; data: Float32Array }[];
  x?: Float32Array;
  y?: Float32Array;
}

/** Deterministic inputs for a workload (seeded by its size, so every engine sees the same). */
export function hostData(w: Workload): HostData {
  if (w.kind === 'matmul') {
    const rng = new Rng(w.size);
    const n = w.size * w.size;
    const a = Float32Array.from({ length: n }, () => rng.uniformIn(-1, 1));
    const b = Float32Array.from({ length: n }, () => rng.uniformIn(-1, 1));
    return { a, b };
  }
  const rng = new Rng(7);
  const params: { shape: number[]; data: Float32Array }[] = [];
  for (let l = 0; l + 1 < MLP_SIZES.length; l++) {
    const [i, o] = [MLP_SIZES[l]!, MLP_SIZES[l + 1]!];
    params.push({ shape: [i, o], data: Float32Array.from({ length: i * o }, () => rng.normal() / Math.sqrt(i)) });
    params.push({ shape: [o], data: new Float32Array(o) });
  }
  const x = Float32Array.from({ length: w.batch * MLP_SIZES[0] }, () => rng.normal());
  const y = Float32Array.from({ length: w.batch * MLP_SIZES[MLP_SIZES.length - 1]! }, () => rng.normal());
  return { params, x, y };
}

/** Largest |a − b| relative to max |b| (b the reference); Infinity when lengths differ or a value is not finite. */
export function relMaxDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!Number.isFinite(d)) return Infinity;
    num = Math.max(num, d);
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den > 0 ? num / den : num;
}
