/**
 * The body of `wgflow bench --peers` and `--profile` (issue 10 items 6 and 7), shared by Node
 * (bench/run.ts) and the page (bench/page-peers.ts); no Node imports.
 *
 * --peers: for each workload (matmul n³; MLP 3→64→64→64→2 + Adam at each batch and activation)
 * every engine — wgflow at each fusion level, jax-js, tfjs — is set up with the same host data,
 * warmed up (compiles), and then timed in rounds, one repetition of each engine per round in turn
 * (A B C A B C …), so that load from other processes falls on all alike. A repetition issues
 * `units` matmuls or training steps and waits once for the device; the figure is the median over
 * rounds of (repetition wall time / units). The first round settles and is not reported.
 * Dispatches and submits are counted at the WebGPU API (bench/gpu-count.ts) during each engine's
 * last repetition, the wait included, divided by the units. Numerics: every engine's last matmul
 * product, and its loss after the same number of steps from the same start, are compared with
 * wgflow's (the first engine's), so a peer that skipped work would show.
 *
 * Waiting: no sleep before the wait (bench/engine-bench.ts sleeps in Node because Dawn busy-polls
 * while waiting; jax-js only submits when awaited, so a sleep would idle its work). In Node every
 * engine therefore waits with Dawn's busy-poll, alike.
 *
 * --profile: for each batch and fusion level, one training step is captured and each of its
 * dispatches replayed in its own compute pass with timestamp queries (bench/gpu-profile.ts).
 */
import type { WebGPUBackend } from '../engine/webgpu-backend';
import type { FusionLevel } from '../engine/config';
import { adapterSummary } from '../engine/runtime';
import { median } from './engine-bench';
import { installGpuCounter, type GpuCounter } from './gpu-count';
import { captureDispatches, timeDispatches, type KernelTime } from './gpu-profile';
import { peerEngines, type TfjsLoader } from './peers';
import { fusionSwitch, wgflowEngines } from './wgflow-engine';
import { runEngineTargets, type EngineTargetOptions, type EngineTargetsResult } from './engine-targets';
import { hostData, relMaxDiff, workloadKey, type Act, type BenchEngine, type Runner, type Workload } from './workloads';

export interface PeersOptions {
  sizes?: number[];
  batches?: number[];
  acts?: Act[];
  /** Timed rounds (after one settling round). */
  reps?: number;
  /** Training steps per repetition. */
  steps?: number;
  warmupSteps?: number;
  /** matmul: aim for repetitions of about this long (more products per repetition when small). */
  targetRepMs?: number;
  /** Which peers to load (default both). */
  peers?: ('jax-js' | 'tfjs')[];
  /** Run the peers comparison; issue 10's wgflow-only targets (flows, sampling, OT-CFM step: bench/engine-targets.ts); the per-kernel profile. */
  sections?: ('peers' | 'targets' | 'profile')[];
  /** Replays per profiled step. */
  profileReps?: number;
  /** Options of the `targets` section. */
  targets?: EngineTargetOptions;
}

export const DEFAULT_PEERS: Required<PeersOptions> = {
  sizes: [256, 512, 1024, 2048],
  batches: [256, 4096],
  acts: ['silu', 'selu'],
  reps: 3,
  steps: 10,
  warmupSteps: 3,
  targetRepMs: 500,
  peers: ['jax-js', 'tfjs'],
  sections: ['peers', 'targets', 'profile'],
  profileReps: 5,
  targets: {},
};

/** Relative tolerance of the numerics check: matmul products (max |Δ| / max |C|) and losses. */
export const MATMUL_TOL = 1e-4;
export const LOSS_TOL = 1e-3;

export interface CaseResult {
  workload: string;
  kind: 'matmul' | 'mlp';
  size: number | null;
  batch: number | null;
  act: Act | null;
  engine: string;
  family: BenchEngine['family'];
  /** Median ms per unit (one matmul, one training step). */
  ms: number;
  samples: number[];
  units: number;
  /** matmul only: 2n³ / ms. */
  gflops: number | null;
  dispatchesPerUnit: number;
  submitsPerUnit: number;
  /** The last product's max |Δ| relative to wgflow's, or the relative loss difference; null for the reference itself. */
  diff: number | null;
  /** MLP: loss after the run (all engines ran the same steps). */
  loss: number | null;
  ok: boolean;
}

export interface ProfileResult {
  batch: number;
  act: Act;
  level: string;
  kernels: KernelTime[];
  totalMs: number;
}

export interface PeersResult {
  runtime: 'node' | 'browser';
  adapterSummary: string;
  userAgent: string;
  timestampQuery: boolean;
  fusionApi: string;
  levels: string[];
  options: Required<PeersOptions>;
  cases: CaseResult[];
  profile: ProfileResult[];
  /** The `targets` section (null when not run or failed: see errors). */
  targets: EngineTargetsResult | null;
  /** Peers that did not load, cases that failed: reported, not fatal. */
  errors: string[];
}

type Say = (text: string) => void;

export function workloads(o: Required<PeersOptions>): Workload[] {
  return [
    ...o.sizes.map((size): Workload => ({ kind: 'matmul', size })),
    ...o.batches.flatMap((batch) => o.acts.map((act): Workload => ({ kind: 'mlp', batch, act }))),
  ];
}

/** `tfjsLoader`: how to load tfjs here (bench/peer-env.ts builds one for Node and one for the page); null: tfjs is reported as not loaded. */
export async function runPeersBench(b: WebGPUBackend, opts: PeersOptions = {}, say: Say = () => {}, tfjsLoader: TfjsLoader | null = null): Promise<PeersResult> {
  const o: Required<PeersOptions> = { ...DEFAULT_PEERS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const sw = fusionSwitch();
  const result: PeersResult = {
    runtime: b.adapter.runtime,
    adapterSummary: adapterSummary(b.adapter),
    userAgent: typeof navigator !== 'undefined' && navigator.userAgent ? navigator.userAgent : `node ${typeof process !== 'undefined' ? process.version : '?'}`,
    timestampQuery: b.device.features.has('timestamp-query'),
    fusionApi: sw.api,
    levels: [...sw.levels],
    options: o,
    cases: [],
    profile: [],
    targets: null,
    errors: [],
  };
  try {
    if (o.sections.includes('peers')) {
      const peers = o.peers.length ? await peerEngines(o.peers, tfjsLoader) : { engines: [], errors: [] };
      for (const e of peers.errors) say(`peer not loaded: ${e}`);
      result.errors.push(...peers.errors);
      const engines = [...wgflowEngines(b, sw), ...peers.engines];
      const counter = installGpuCounter();
      try {
        for (const w of workloads(o)) result.cases.push(...(await benchWorkload(w, engines, counter, o, say, result.errors)));
      } finally {
        counter.uninstall();
      }
    }
    if (o.sections.includes('targets')) {
      try {
        result.targets = await runEngineTargets(b, o.targets, say);
      } catch (err) {
        result.errors.push(`targets: ${(err as Error).message}`);
      }
    }
    if (o.sections.includes('profile')) {
      if (!result.timestampQuery) result.errors.push("profile: the device has no 'timestamp-query'; nothing profiled");
      else {
        for (const batch of o.batches) {
          for (const act of o.acts) {
            for (const level of sw.levels) {
              const p = await profileStep(b, level, batch, act, o, sw);
              result.profile.push(p);
              say(`profile ${level} batch ${batch} ${act}: ${p.kernels.length} dispatches, ${p.totalMs.toFixed(2)} GPU-ms; ` + p.kernels.map((k) => `${k.kernel} ${k.ms.toFixed(2)}`).join(', '));
            }
          }
        }
      }
    }
  } finally {
    sw.restore();
  }
  return result;
}

async function benchWorkload(w: Workload, engines: BenchEngine[], counter: GpuCounter, o: Required<PeersOptions>, say: Say, errors: string[]): Promise<CaseResult[]> {
  const key = workloadKey(w);
  const data = hostData(w);
  const live: { e: BenchEngine; r: Runner; units: number; samples: number[]; disp: number; subm: number }[] = [];
  for (const e of engines) {
    if (e.supports(w) !== null) continue;
    try {
      const r = await e.setup(w, data);
      live.push({ e, r, units: 1, samples: [], disp: 0, subm: 0 });
    } catch (err) {
      errors.push(`${key} ${e.name}: setup failed: ${(err as Error).message}`);
    }
  }
  const rep = async (x: (typeof live)[number], units: number) => {
    const c0 = counter.read();
    const t0 = performance.now();
    for (let i = 0; i < units; i++) x.r.issue();
    await x.r.wait();
    const dt = performance.now() - t0;
    const c = counter.since(c0);
    return { dt, c };
  };
  try {
    // Warm-up (pipelines compiled, pools filled); matmul: one more timed product sets the units per repetition.
    for (const x of [...live]) {
      try {
        if (w.kind === 'matmul') {
          await rep(x, 1);
          const { dt } = await rep(x, 1);
          x.units = Math.max(1, Math.min(64, Math.round(o.targetRepMs / Math.max(dt, 1e-3))));
        } else {
          await rep(x, o.warmupSteps);
          x.units = o.steps;
        }
      } catch (err) {
        errors.push(`${key} ${x.e.name}: warm-up failed: ${(err as Error).message}`);
        x.r.dispose();
        live.splice(live.indexOf(x), 1);
      }
    }
    for (let round = -1; round < o.reps; round++) {
      for (const x of live) {
        const { dt, c } = await rep(x, x.units);
        if (round < 0) continue;
        x.samples.push(dt / x.units);
        x.disp = c.dispatches / x.units;
        x.subm = c.submits / x.units;
      }
    }
    const outs = await Promise.all(live.map((x) => x.r.output()));
    const ref = outs[0];
    return live.map((x, i) => {
      const ms = median(x.samples);
      const out = outs[i]!;
      let diff: number | null = null;
      if (i > 0 && ref) diff = w.kind === 'matmul' ? relMaxDiff(out, ref) : Math.abs(out[0]! - ref[0]!) / Math.max(Math.abs(ref[0]!), 1e-12);
      const finite = out.length > 0 && out.every(Number.isFinite);
      const ok = finite && (diff === null || diff <= (w.kind === 'matmul' ? MATMUL_TOL : LOSS_TOL));
      const r: CaseResult = {
        workload: key,
        kind: w.kind,
        size: w.kind === 'matmul' ? w.size : null,
        batch: w.kind === 'mlp' ? w.batch : null,
        act: w.kind === 'mlp' ? w.act : null,
        engine: x.e.name,
        family: x.e.family,
        ms,
        samples: x.samples,
        units: x.units,
        gflops: w.kind === 'matmul' ? (2 * w.size ** 3) / (ms * 1e6) : null,
        dispatchesPerUnit: x.disp,
        submitsPerUnit: x.subm,
        diff,
        loss: w.kind === 'mlp' ? out[0]! : null,
        ok,
      };
      say(`${key} ${x.e.name}: ${ms.toFixed(2)} ms${r.gflops !== null ? ` (${r.gflops.toFixed(2)} GFLOP/s)` : ''} [${x.samples.map((s) => s.toFixed(2)).join(' ')}], ${x.disp.toFixed(1)} dispatches / ${x.subm.toFixed(2)} submits per unit${diff !== null ? `, diff ${diff.toExponential(1)}` : ''}${r.loss !== null ? `, loss ${r.loss.toFixed(5)}` : ''}${ok ? '' : ' NUMERICS MISMATCH'}`);
      return r;
    });
  } finally {
    for (const x of live) x.r.dispose();
  }
}

async function profileStep(b: WebGPUBackend, level: FusionLevel, batch: number, act: Act, o: Required<PeersOptions>, sw: ReturnType<typeof fusionSwitch>): Promise<ProfileResult> {
  const [e] = wgflowEngines(b, { ...sw, levels: [level] });
  const w: Workload = { kind: 'mlp', batch, act };
  const r = await e!.setup(w, hostData(w));
  try {
    for (let i = 0; i < o.warmupSteps; i++) r.issue();
    await r.wait();
    const { dispatches } = captureDispatches(() => r.issue());
    await r.wait();
    const kernels = await timeDispatches(b.device, dispatches, o.profileReps);
    return { batch, act, level, kernels, totalMs: kernels.reduce((s, k) => s + k.ms, 0) };
  } finally {
    r.dispose();
  }
}
