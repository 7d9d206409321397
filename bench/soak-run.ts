/**
 * The body of the memory soak (bench/soak.ts), shared by both runtimes: it trains through the
 * CLI's own TrainJob (cfm/train.ts or flows/train.ts, the code a user's run executes, not a
 * stripped-down loop) and records the engine's buffer-pool and allocation counters, plus the JS
 * heap, every `every` steps. A leak shows as a gauge (buffersLive, poolBuffers, bindGroupsCached,
 * heap) or an allocations total (buffersCreated, bytesAllocated) that keeps moving after warm-up.
 *
 * Browser-safe (no Node imports): the default export is the page entry run by runInBrowser; Node
 * calls runSoak directly. The checkpoint hook is the trainers' only per-N-steps callback, so a row
 * costs one parameter readback, as a checkpoint of a CLI run does.
 */
import type { PageContext } from '../browser/page-context';
import { getMethod } from '../cli/jobs';
import type { Method, TrainConfig } from '../train/contract';
import { init, type Counters } from '../engine';

export interface SoakArgs {
  method: Method;
  steps: number;
  /** A row every this many steps. */
  every: number;
  batch: number;
  seed: number;
}

/** One sample of the counters; `step` 0 is before the model exists. */
export interface SoakRow {
  step: number;
  elapsedS: number;
  buffersLive: number;
  bytesLive: number;
  poolBuffers: number;
  poolBytes: number;
  buffersCreated: number;
  bytesAllocated: number;
  bindGroupsCached: number;
  pipelinesCompiled: number;
  dispatches: number;
  /** JS heap in use: Node's heapUsed, Chromium's performance.memory.usedJSHeapSize (coarse), or null. */
  heapBytes: number | null;
  /** Node only: resident set size (includes Dawn's and SwiftShader's native memory). */
  rssBytes: number | null;
}

export interface SoakResult {
  adapter: string;
  msPerStep: number;
  loss: number;
  rows: SoakRow[];
}

function heap(): { heapBytes: number | null; rssBytes: number | null } {
  const proc = (globalThis as { process?: { memoryUsage?: () => { heapUsed: number; rss: number } } }).process;
  if (proc?.memoryUsage) {
    const m = proc.memoryUsage();
    return { heapBytes: m.heapUsed, rssBytes: m.rss };
  }
  const pm = (globalThis as { performance?: { memory?: { usedJSHeapSize: number } } }).performance?.memory;
  return { heapBytes: pm ? pm.usedJSHeapSize : null, rssBytes: null };
}

export function rowOf(step: number, t0: number, c: Counters): SoakRow {
  return {
    step,
    elapsedS: +((performance.now() - t0) / 1000).toFixed(1),
    buffersLive: c.buffersLive,
    bytesLive: c.bytesLive,
    poolBuffers: c.poolBuffers,
    poolBytes: c.poolBytes,
    buffersCreated: c.buffersCreated,
    bytesAllocated: c.bytesAllocated,
    bindGroupsCached: c.bindGroupsCached,
    pipelinesCompiled: c.pipelinesCompiled,
    dispatches: c.dispatches,
    ...heap(),
  };
}

/** Trains `args.method` with the CLI's defaults for everything else, calling onRow every `every` steps. */
export async function runSoak(runtime: 'node' | 'browser', args: SoakArgs, onRow: (r: SoakRow) => void): Promise<SoakResult> {
  const b = await init({ runtime });
  const impl = getMethod(args.method);
  if (typeof impl === 'string') throw new Error(impl);
  const flow = impl.family === 'flow';
  const cfg: TrainConfig = {
    method: args.method,
    source: flow ? null : '8gaussians',
    target: flow ? 'ffjord-moons' : 'moons',
    steps: args.steps,
    batch: args.batch,
    lr: 1e-3,
    seed: args.seed,
    options: {},
  };
  const t0 = performance.now();
  const rows: SoakRow[] = [];
  const record = (step: number) => {
    const r = rowOf(step, t0, b.counters);
    rows.push(r);
    onRow(r);
  };
  record(0);
  let last = 0;
  try {
    const out = await impl.job.run(cfg, {
      checkpointEvery: args.every,
      progressIntervalMs: 60_000,
      onCheckpoint: (s) => {
        // The trainers also call this once at the end; record each step once.
        if (s.step > last) record((last = s.step));
      },
    });
    return { adapter: `${b.adapter.vendor} ${b.adapter.architecture} (${b.adapter.kind}, ${runtime})`, msPerStep: out.metrics.ms_per_step, loss: out.metrics.loss, rows };
  } finally {
    b.destroy();
  }
}

/** Page entry (runInBrowser): rows go to the host as they come, so a long run can be watched. */
export default async function soakPage(args: SoakArgs, ctx: PageContext): Promise<SoakResult> {
  return runSoak('browser', args, (r) => ctx.post(r));
}
