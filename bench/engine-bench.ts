/**
 * The engine benchmark body, shared by Node (bench/run.ts) and the page (bench/page-bench.ts): no
 * Node imports here.
 *
 * (a) matmul f32 GFLOP/s per kernel variant at n³ (default 256, 512, 1024): each repetition records
 *     enough dispatches of one variant to take ~`targetRepMs`, submits them once and waits once;
 *     GFLOP/s = 2n³·dispatches / (wall time from submit to queue idle); the median of `reps`, the
 *     variants' repetitions interleaved so that load from other processes hits them alike. In
 *     Node also GFLOP per CPU-second of the process (robust to other processes on the cores).
 * (b) the MLP 3→64→64→64→2 (SELU, the engine's `mlp()`) + MSE + valueAndGrad + Adam training step
 *     at each batch size and each fusion level asked for (engine/config.ts: `ops` = matmul → add →
 *     SELU per layer, `layer` = one fused `linear` per layer, `mlp` = the whole network in one
 *     dispatch and its gradient in two): blocks of `steps` steps, one flush (one submit) per step,
 *     one wait per block at its end; ms/step = block time / steps, the median over `blocks`;
 *     dispatches and submits per step from the backend's counters. The batch (x ~ N(0,1),
 *     y ~ N(0,1)) is fixed. (`step` is `mlp` for this plain network: only CFM has a hand-fused step.)
 * (c) profile: each dispatch of one step at each level re-issued on its own and timed (where the
 *     time goes).
 *
 * Waiting (SPEC §1): Dawn for Node busy-polls while a GPU promise is pending, stealing one of the
 * two cores from SwiftShader. So in Node we sleep on a timer for ~90 % of the time the work is
 * expected to take, and only then await the queue. The estimate is 90 % of the fastest repetition
 * so far (half the calibration time for a first, unreported settling repetition), so a sleep can
 * only overshoot if the work suddenly gets >10 % faster. The engine's own sync() is not used for
 * timing: its adaptive pre-wait (politeWait) carries over from earlier, longer waits.
 */
import { Adam, mean, mlp, ParamSet, setFusion, square, sub, tensor, valueAndGrad, config, type Tensor } from '../engine';
import type { FusionLevel } from '../engine/config';
import { adapterSummary } from '../engine/runtime';
import { Rng } from '../engine/philox';
import type { AdapterReport, BufferHandle, KernelSpec, PreparedKernel } from '../engine/backend';
import type { WebGPUBackend } from '../engine/webgpu-backend';
import { chooseMatmul, matmulKernel, MATMUL_VARIANTS, type MatmulArgs, type MatmulVariant } from '../kernels/matmul';

export interface EngineBenchOptions {
  /** `profile`: each dispatch of one MLP step timed on its own, per batch size and fusion level. */
  sections?: ('matmul' | 'mlp' | 'profile')[];
  sizes?: number[];
  variants?: MatmulVariant[];
  /** Timed repetitions per matmul case (median reported). */
  reps?: number;
  /** Aim for repetitions of about this long (more dispatches per repetition for small sizes). */
  targetRepMs?: number;
  batches?: number[];
  steps?: number;
  blocks?: number;
  warmupSteps?: number;
  /** The fusion levels to time the MLP step at (engine/config.ts FUSION_LEVELS). */
  fusion?: FusionLevel[];
}

export const DEFAULT_BENCH: Required<EngineBenchOptions> = {
  sections: ['matmul', 'mlp', 'profile'],
  sizes: [256, 512, 1024],
  variants: [...MATMUL_VARIANTS],
  reps: 5,
  targetRepMs: 700,
  batches: [256, 4096],
  steps: 50,
  blocks: 3,
  warmupSteps: 5,
  fusion: ['ops', 'layer', 'mlp'],
};

export interface MatmulResult {
  variant: MatmulVariant;
  size: number;
  /** Median GFLOP/s over the repetitions. */
  gflops: number;
  samples: number[];
  /**
   * Node only: GFLOP per CPU-second of this process (all threads), i.e. throughput per core; it is
   * far less sensitive than wall time to other processes on the shared cores. Null in the page.
   */
  gflopsPerCpuSecond: number | null;
  dispatchesPerRep: number;
  kernel: string;
  /** Whether chooseMatmul picks this variant for this shape on this adapter. */
  chosen: boolean;
}

export interface MlpResult {
  batch: number;
  fusion: FusionLevel;
  /** Median ms per step over the blocks. */
  msPerStep: number;
  samples: number[];
  steps: number;
  dispatchesPerStep: number;
  submitsPerStep: number;
  readbacksPerStep: number;
  /** Node only: CPU time of this process (all threads, SwiftShader's included) per step, median; null in the page. */
  cpuMsPerStep: number | null;
  /** Loss after the last step (a sanity value, read outside the timing). */
  finalLoss: number;
}

export interface ProfileEntry {
  batch: number;
  fusion: FusionLevel;
  kernel: string;
  workgroups: readonly number[];
  /** Median ms per dispatch when repeated on its own (no overlap with other kernels). */
  ms: number;
}

export interface EngineBenchResult {
  runtime: 'node' | 'browser';
  adapter: AdapterReport;
  adapterSummary: string;
  userAgent: string;
  options: Required<EngineBenchOptions>;
  matmul: MatmulResult[];
  mlp: MlpResult[];
  profile: ProfileEntry[];
}

const isNode = typeof process !== 'undefined' && !!process.versions?.node;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** CPU time of this process, all threads (SwiftShader's included), in ms; 0 outside Node. */
function cpuMs(): number {
  if (!isNode) return 0;
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/**
 * Submits what is recorded and waits until the queue is idle; in Node, first sleeps until shortly
 * before `expectedEnd` (performance.now() time) so that Dawn's busy-poll does not steal a core.
 */
async function finish(b: WebGPUBackend, expectedEnd: number): Promise<void> {
  b.flush();
  if (isNode) {
    const left = expectedEnd - performance.now();
    if (left > 4) await sleep(left);
  }
  await b.device.queue.onSubmittedWorkDone();
  b.flush(); // throws GPU errors seen meanwhile (check() runs even with nothing to submit)
}

type Progress = (msg: { type: 'progress'; text: string }) => void;

export async function runEngineBench(b: WebGPUBackend, opts: EngineBenchOptions = {}, progress: Progress = () => {}): Promise<EngineBenchResult> {
  const o: Required<EngineBenchOptions> = { ...DEFAULT_BENCH, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const say = (text: string) => progress({ type: 'progress', text });
  const result: EngineBenchResult = {
    runtime: b.adapter.runtime,
    adapter: b.adapter,
    adapterSummary: adapterSummary(b.adapter),
    userAgent: typeof navigator !== 'undefined' ? navigator.userAgent : `node ${isNode ? process.version : '?'}`,
    options: o,
    matmul: [],
    mlp: [],
    profile: [],
  };
  if (o.sections.includes('matmul')) {
    for (const size of o.sizes) {
      const args: MatmulArgs = { m: size, n: size, k: size, transA: false, transB: false, offsetA: 0, offsetB: 0 };
      const entries = o.variants.map((v) => ({ name: v, spec: matmulKernel(args, v) }));
      const runs = await benchMatmulSpecs(b, size, entries, o);
      o.variants.forEach((variant, i) => {
        const { samples, cpuSamples, dispatchesPerRep } = runs[i]!;
        const r: MatmulResult = { variant, size, gflops: median(samples), samples, gflopsPerCpuSecond: cpuSamples.length ? median(cpuSamples) : null, dispatchesPerRep, kernel: entries[i]!.spec.name, chosen: chooseMatmul(args, b.adapter.kind) === variant };
        result.matmul.push(r);
        const cpu = r.gflopsPerCpuSecond === null ? '' : `; ${r.gflopsPerCpuSecond.toFixed(2)} GFLOP per CPU-second`;
        say(`matmul ${variant} ${size}³: ${r.gflops.toFixed(2)} GFLOP/s (${samples.map((x) => x.toFixed(2)).join(' ')}; ${dispatchesPerRep} dispatches/rep${cpu})`);
      });
    }
  }
  if (o.sections.includes('mlp')) {
    for (const batch of o.batches) {
      for (const f of o.fusion) {
        const r = await benchMlp(b, batch, f, o);
        result.mlp.push(r);
        const cpu = r.cpuMsPerStep === null ? '' : `, ${r.cpuMsPerStep.toFixed(1)} CPU-ms`;
        say(`MLP step batch ${batch} at ${f}: ${r.msPerStep.toFixed(2)} ms (${r.samples.map((x) => x.toFixed(2)).join(' ')}${cpu}); ${r.dispatchesPerStep} dispatches, ${r.submitsPerStep} submits per step; loss ${r.finalLoss.toFixed(4)}`);
      }
    }
  }
  if (o.sections.includes('profile')) {
    for (const batch of o.batches) {
      for (const f of o.fusion) {
        const entries = await profileMlpStep(b, batch, f);
        result.profile.push(...entries);
        const total = entries.reduce((acc, e) => acc + e.ms, 0);
        say(`profile batch ${batch} ${f}: ${entries.length} dispatches, ${total.toFixed(2)} ms summed; ` + entries.map((e) => `${e.kernel} ${e.ms.toFixed(2)}`).join(', '));
      }
    }
  }
  return result;
}

/** One kernel to time in benchMatmulSpecs. */
export interface MatmulEntry {
  readonly name: string;
  readonly spec: KernelSpec;
}

/**
 * Times square matmuls of `size` for several kernels, interleaved (rep 1 of every kernel, then rep 2,
 * …) so that load from other processes on the shared cores hits all of them alike. Returns the
 * GFLOP/s samples per entry, in entry order.
 */
export async function benchMatmulSpecs(b: WebGPUBackend, size: number, entries: readonly MatmulEntry[], o: { reps: number; targetRepMs: number }, flop = 2 * size ** 3): Promise<{ samples: number[]; cpuSamples: number[]; dispatchesPerRep: number }[]> {
  const rng = new Rng(size);
  const host = Float32Array.from({ length: size * size }, () => rng.uniformIn(-1, 1));
  const A = b.alloc(host.byteLength);
  const B = b.alloc(host.byteLength);
  const C = b.alloc(host.byteLength);
  b.write(A, host);
  b.write(B, host);
  const runs = [];
  for (const e of entries) {
    const k = b.prepare(e.spec);
    // Calibration: compile + one dispatch, then one more to estimate the time per dispatch.
    b.dispatch(k, [A, B, C]);
    await b.sync();
    const t0 = performance.now();
    b.dispatch(k, [A, B, C]);
    await finish(b, t0);
    const perDispatch = performance.now() - t0;
    const n = Math.max(1, Math.min(256, Math.round(o.targetRepMs / perDispatch)));
    runs.push({ k, n, perDispatch, best: Infinity, samples: [] as number[], cpuSamples: [] as number[] });
  }
  // Rep -1 settles the sleep estimate (it starts from half the calibration time) and is not reported.
  for (let r = -1; r < o.reps; r++) {
    for (const run of runs) {
      for (let i = 0; i < run.n; i++) b.dispatch(run.k, [A, B, C]);
      const c0 = cpuMs();
      const t0 = performance.now();
      const expect = Number.isFinite(run.best) ? 0.9 * run.best : 0.5 * run.n * run.perDispatch;
      await finish(b, t0 + expect);
      const dt = performance.now() - t0;
      const dc = cpuMs() - c0;
      run.best = Math.min(run.best, dt);
      if (r < 0) continue;
      run.samples.push((flop * run.n) / (dt * 1e6));
      if (isNode) run.cpuSamples.push((flop * run.n) / (dc * 1e6));
    }
  }
  for (const x of [A, B, C]) b.free(x);
  return runs.map((r) => ({ samples: r.samples, cpuSamples: r.cpuSamples, dispatchesPerRep: r.n }));
}

/** LeCun-normal weights (SELU's init), zero biases: the SPEC §3 vector field's architecture. */
function mlpParams(rng: Rng, sizes: readonly number[]): ParamSet {
  const specs = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const [i, o] = [sizes[l]!, sizes[l + 1]!];
    specs.push({ name: `W${l}`, shape: [i, o], init: Float32Array.from({ length: i * o }, () => rng.normal() / Math.sqrt(i)) });
    specs.push({ name: `b${l}`, shape: [o], init: new Float32Array(o) });
  }
  return new ParamSet(specs);
}

export const MLP_SIZES = [3, 64, 64, 64, 2] as const;

/** The benchmark's training setup: parameters, Adam, a fixed batch, and one step (one submit). */
function mlpSetup(b: WebGPUBackend, batch: number) {
  const rng = new Rng(7);
  const ps = mlpParams(rng, MLP_SIZES);
  const opt = new Adam(ps, { lr: 1e-3 });
  const x = tensor(Float32Array.from({ length: batch * 3 }, () => rng.normal()), [batch, 3]);
  const y = tensor(Float32Array.from({ length: batch * 2 }, () => rng.normal()), [batch, 2]);
  const layers = Array.from({ length: MLP_SIZES.length - 1 }, (_, l) => ({ w: ps.params[2 * l]!, b: ps.params[2 * l + 1]! }));
  const state = { last: null as Tensor | null };
  const step = () => {
    const { value, grads } = valueAndGrad(() => mean(square(sub(mlp(x, layers, { activation: 'selu' }), y))), ps.params);
    opt.step(grads);
    for (const g of grads) g.dispose();
    state.last?.dispose();
    state.last = value;
    b.flush();
  };
  const dispose = () => {
    state.last?.dispose();
    x.dispose();
    y.dispose();
    opt.dispose();
    ps.dispose();
    b.flush();
  };
  return { step, state, dispose };
}

/**
 * Times each dispatch of one training step at `fusion` on its own: the step's dispatches are captured,
 * then each is re-issued `n` times in one submit (its buffers are still valid: freed buffers stay
 * in the pool). Values are garbage by then; only the time matters.
 */
async function profileMlpStep(b: WebGPUBackend, batch: number, fusion: FusionLevel): Promise<ProfileEntry[]> {
  const saved = config.fusion;
  setFusion(fusion);
  const { step, dispose } = mlpSetup(b, batch);
  const captured: { k: PreparedKernel; bufs: BufferHandle[]; u?: Uint8Array }[] = [];
  const dispatch = b.dispatch;
  try {
    step();
    await b.sync();
    b.dispatch = (k, bufs, u) => {
      captured.push({ k, bufs: [...bufs], u: u ? new Uint8Array(u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength)) : undefined });
      dispatch.call(b, k, bufs, u);
    };
    step();
    b.dispatch = dispatch;
    await b.sync();
    const out: ProfileEntry[] = [];
    for (const c of captured) {
      const n = 8;
      const run = async (sleepFor: number) => {
        for (let i = 0; i < n; i++) b.dispatch(c.k, c.bufs, c.u);
        const t0 = performance.now();
        await finish(b, t0 + sleepFor);
        return (performance.now() - t0) / n;
      };
      const est = await run(0);
      const samples = [await run(0.8 * est * n), await run(0.8 * est * n), await run(0.8 * est * n)];
      out.push({ batch, fusion, kernel: c.k.spec.name, workgroups: c.k.spec.workgroups, ms: median(samples) });
    }
    return out;
  } finally {
    b.dispatch = dispatch;
    setFusion(saved);
    dispose();
  }
}

async function benchMlp(b: WebGPUBackend, batch: number, fusion: FusionLevel, o: Required<EngineBenchOptions>): Promise<MlpResult> {
  const saved = config.fusion;
  setFusion(fusion);
  const { step, state, dispose } = mlpSetup(b, batch);
  try {
    // Warm-up: compiles every pipeline and fills the buffer pool.
    for (let s = 0; s < o.warmupSteps; s++) step();
    await b.sync();
    // Calibration block (waits without sleeping, so it over- rather than under-estimates), then one
    // settling block that is not reported, then the timed blocks; each sleeps for 90 % of the best
    // block so far before awaiting (SPEC §1 busy-poll), the first for half the calibration time.
    let t0 = performance.now();
    for (let s = 0; s < o.warmupSteps; s++) step();
    await finish(b, t0);
    let best = (0.5 * (performance.now() - t0)) / Math.max(1, o.warmupSteps) / 0.9;
    const samples: number[] = [];
    const cpuSamples: number[] = [];
    let dispatches = 0;
    let submits = 0;
    let readbacks = 0;
    for (let blk = -1; blk < o.blocks; blk++) {
      const c0 = { ...b.counters };
      const cpu0 = cpuMs();
      t0 = performance.now();
      for (let s = 0; s < o.steps; s++) step();
      await finish(b, t0 + 0.9 * best * o.steps);
      const ms = (performance.now() - t0) / o.steps;
      const cpu = (cpuMs() - cpu0) / o.steps;
      best = Math.min(best, ms);
      if (blk < 0) continue;
      samples.push(ms);
      cpuSamples.push(cpu);
      dispatches = (b.counters.dispatches - c0.dispatches) / o.steps;
      submits = (b.counters.submits - c0.submits) / o.steps;
      readbacks = (b.counters.readbacks - c0.readbacks) / o.steps;
    }
    const finalLoss = state.last ? await state.last.item() : Number.NaN;
    return { batch, fusion, msPerStep: median(samples), samples, steps: o.steps, dispatchesPerStep: dispatches, submitsPerStep: submits, readbacksPerStep: readbacks, cpuMsPerStep: isNode ? median(cpuSamples) : null, finalLoss };
  } finally {
    setFusion(saved);
    dispose();
  }
}
