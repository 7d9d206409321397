/**
 * wgflow engine benchmark: matmul GFLOP/s per kernel variant and the MLP + Adam training step, in
 * Node (Dawn) and/or headless Chromium, printed as a markdown table next to the peer figures of
 * SPEC §5.4 (measured elsewhere on this machine type: tfjs and jax-js are not installed here).
 *
 *   node scripts/run-ts.mjs bench/run.ts [--runtime node|browser|both] [--json] [--suite kernels|train|all] [--peers]
 *        [--sections matmul,mlp,profile] [--sizes 256,512,1024] [--variants reg4x4,wgmem,...]
 *        [--reps 5] [--batches 256,4096] [--steps 50] [--blocks 3] [--fusion fused,unfused] [--quick]
 *
 * The runtimes run one after the other, never at once (they would share the same two cores).
 * Timings on SwiftShader are noisy when other work shares the machine: every figure is a median of
 * several repetitions; repeat the run and compare.
 */
import { init } from '../engine';
import { runInBrowser } from '../browser/run-in-page';
import { MATMUL_VARIANTS, type MatmulVariant } from '../kernels/matmul';
import { DEFAULT_BENCH, runEngineBench, type EngineBenchOptions, type EngineBenchResult } from './engine-bench';
import tune, { type TuneArgs } from './page-tune';

/** SPEC §5.4: WebGPU peers on SwiftShader (2 cores), float32 — measured elsewhere on this machine type. */
export const SPEC_PEERS = {
  matmul1024: {
    'tfjs-webgpu 4.22': { node: 0.62, browser: 0.91 },
    'jax-js 0.1.25': { node: 1.97, browser: 4.07 },
    'hand-written 4×4 vec4, no workgroup memory': { node: 2.44, browser: 4.23 },
    'hand-written 64×64 workgroup-memory tile, vec4': { node: 1.52, browser: 2.71 },
  },
  mlpMs: {
    'tfjs-webgpu': { node: { 256: 205, 4096: 1763 }, browser: { 256: 104, 4096: 1051 }, dispatches: 165, submits: 12 },
    'jax-js jit': { node: { 256: 19, 4096: 190 }, browser: { 256: 13, 4096: 130 }, dispatches: 65, submits: 65 },
  },
} as const;
const SPEC_NOTE = 'SPEC §5.4, measured elsewhere on this machine type';

type Runtime = 'node' | 'browser';

interface Cli {
  runtimes: Runtime[];
  json: boolean;
  peersNote: boolean;
  /** --tune JSON: run the tuning tool (bench/page-tune.ts) instead of the benchmark. */
  tune: TuneArgs | null;
  opts: EngineBenchOptions;
}

const USAGE = `usage: node scripts/run-ts.mjs bench/run.ts [--runtime node|browser|both] [--json]
  [--suite kernels|train|all] [--peers] [--sections matmul,mlp,profile] [--sizes 256,512,1024] [--variants ${MATMUL_VARIANTS.join(',')}]
  [--reps N] [--batches 256,4096] [--steps N] [--blocks N] [--fusion fused,unfused] [--quick]
  [--tune JSON]  (the matmul tuning tool, see bench/page-tune.ts)`;

class UsageError extends Error {}

function parseArgs(argv: string[]): Cli {
  const cli: Cli = { runtimes: ['node', 'browser'], json: false, peersNote: false, tune: null, opts: {} };
  const list = (flag: string, v: string | undefined) => {
    if (!v) throw new UsageError(`${flag} needs a value`);
    return v.split(',').map((s) => s.trim()).filter(Boolean);
  };
  const ints = (flag: string, v: string | undefined) =>
    list(flag, v).map((s) => {
      const x = Number(s);
      if (!Number.isInteger(x) || x < 1) throw new UsageError(`${flag}: "${s}" is not a positive integer`);
      return x;
    });
  const int = (flag: string, v: string | undefined) => {
    const xs = ints(flag, v);
    if (xs.length !== 1) throw new UsageError(`${flag} takes one positive integer`);
    return xs[0]!;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const next = () => inline ?? argv[++i];
    switch (flag) {
      case '--runtime': {
        const v = next();
        if (v === 'both') cli.runtimes = ['node', 'browser'];
        else if (v === 'node' || v === 'browser') cli.runtimes = [v];
        else throw new UsageError(`--runtime: "${v ?? ''}" is not one of node, browser, both`);
        break;
      }
      case '--json': cli.json = true; break;
      case '--suite': {
        // SPEC §4's suites: kernels (matmul), train (the MLP step and its profile), all.
        const v = next();
        if (v === 'kernels') cli.opts.sections = ['matmul'];
        else if (v === 'train') cli.opts.sections = ['mlp', 'profile'];
        else if (v === 'all') cli.opts.sections = ['matmul', 'mlp', 'profile'];
        else if (v === 'sample' || v === 'ot') throw new UsageError(`--suite ${v} is not part of this suite yet (see bench/cfm-sample.ts and bench/cfm-ot.ts); accepted here: kernels, train, all`);
        else throw new UsageError(`--suite: "${v ?? ''}" is not one of kernels, train, all`);
        break;
      }
      case '--tune': {
        const v = next();
        try {
          cli.tune = JSON.parse(v ?? '') as TuneArgs;
        } catch {
          throw new UsageError('--tune needs a JSON object (see bench/page-tune.ts)');
        }
        break;
      }
      case '--peers':
        // tfjs and jax-js are not installed (no new dependencies): their SPEC §5.4 figures are always printed.
        cli.peersNote = true;
        break;
      case '--sections': {
        const s = list(flag, next());
        for (const x of s) if (x !== 'matmul' && x !== 'mlp' && x !== 'profile') throw new UsageError(`--sections: "${x}" is not one of matmul, mlp, profile`);
        cli.opts.sections = s as ('matmul' | 'mlp' | 'profile')[];
        break;
      }
      case '--sizes': cli.opts.sizes = ints(flag, next()); break;
      case '--variants': {
        const v = list(flag, next());
        for (const x of v) if (!(MATMUL_VARIANTS as readonly string[]).includes(x)) throw new UsageError(`--variants: "${x}" is not one of ${MATMUL_VARIANTS.join(', ')}`);
        cli.opts.variants = v as MatmulVariant[];
        break;
      }
      case '--fusion': {
        const v = list(flag, next());
        for (const x of v) if (x !== 'fused' && x !== 'unfused') throw new UsageError(`--fusion: "${x}" is not one of fused, unfused`);
        cli.opts.fusion = v as ('fused' | 'unfused')[];
        break;
      }
      case '--reps': cli.opts.reps = int(flag, next()); break;
      case '--batches': cli.opts.batches = ints(flag, next()); break;
      case '--steps': cli.opts.steps = int(flag, next()); break;
      case '--blocks': cli.opts.blocks = int(flag, next()); break;
      case '--quick': Object.assign(cli.opts, { sizes: [256, 512], reps: 3, steps: 20, blocks: 2, targetRepMs: 300 }, { ...cli.opts }); break;
      case '-h': case '--help': console.log(USAGE); process.exit(0); break;
      default: throw new UsageError(`unknown argument "${a}"`);
    }
  }
  return cli;
}

async function runNode(opts: EngineBenchOptions, log: (s: string) => void): Promise<EngineBenchResult> {
  const b = await init({ runtime: 'node' });
  try {
    return await runEngineBench(b, opts, (m) => log(`[node] ${m.text}`));
  } finally {
    b.destroy();
  }
}

async function runBrowser(opts: EngineBenchOptions, log: (s: string) => void): Promise<EngineBenchResult> {
  const { result } = await runInBrowser<EngineBenchResult>('bench/page-bench.ts', {
    args: opts,
    onMessage: (m) => log(`[browser] ${(m as { text?: string }).text ?? JSON.stringify(m)}`),
    onLog: (line) => log(`[browser console] ${line}`),
    timeoutMs: 0,
  });
  return result;
}

const f2 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(2));
const f1 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(1));

export function renderTables(results: EngineBenchResult[]): string {
  const rts = results.map((r) => r.runtime);
  const col = (rt: Runtime) => (rt === 'node' ? 'Node + Dawn' : 'Chromium');
  const by = (rt: Runtime) => results.find((r) => r.runtime === rt)!;
  const out: string[] = [];
  out.push('Adapters: ' + results.map((r) => `${col(r.runtime)}: ${r.adapterSummary} — ${r.userAgent}`).join('; '));
  out.push('');
  const sizes = [...new Set(results.flatMap((r) => r.matmul.map((m) => m.size)))];
  const variants = [...new Set(results.flatMap((r) => r.matmul.map((m) => m.variant)))];
  if (sizes.length) {
    out.push('### matmul f32 GFLOP/s (median wall; * = chooseMatmul picks it for this shape; Node also GFLOP per CPU-second)', '');
    const head = ['variant', ...sizes.flatMap((s) => rts.map((rt) => `${s}³ ${col(rt)}`))];
    out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`);
    for (const v of variants) {
      const cells = sizes.flatMap((s) =>
        rts.map((rt) => {
          const m = by(rt).matmul.find((x) => x.variant === v && x.size === s);
          const cpu = m?.gflopsPerCpuSecond != null ? ` (${f2(m.gflopsPerCpuSecond)}/CPU-s)` : '';
          return m ? `${f2(m.gflops)}${m.chosen ? '*' : ''}${cpu}` : '–';
        }),
      );
      out.push(`| ${v} | ${cells.join(' | ')} |`);
    }
    if (sizes.includes(1024)) {
      out.push('', `Peers at 1024³ (${SPEC_NOTE}):`, '', `| peer | ${rts.map(col).join(' | ')} |`, `|---|${rts.map(() => '---').join('|')}|`);
      for (const [name, v] of Object.entries(SPEC_PEERS.matmul1024)) out.push(`| ${name} | ${rts.map((rt) => f2(v[rt])).join(' | ')} |`);
      const ratio = rts.map((rt) => {
        const chosen = by(rt).matmul.find((x) => x.size === 1024 && x.chosen);
        return chosen ? `${(chosen.gflops / SPEC_PEERS.matmul1024['jax-js 0.1.25'][rt]).toFixed(2)}× (${chosen.variant})` : '–';
      });
      out.push(`| **wgflow chosen variant ÷ jax-js** (target ≥ 1.2×, SPEC §6) | ${ratio.join(' | ')} |`);
    }
    out.push('');
  }
  const batches = [...new Set(results.flatMap((r) => r.mlp.map((m) => m.batch)))];
  if (batches.length) {
    out.push('### MLP 3→64→64→64→2 (SELU) + MSE + valueAndGrad + Adam step (median ms/step; dispatches / submits per step)', '');
    out.push(`| batch | flavour | ${rts.map((rt) => `${col(rt)} ms | disp/sub`).join(' | ')} |`, `|---|---|${rts.map(() => '---|---').join('|')}|`);
    for (const batch of batches) {
      for (const fused of [true, false]) {
        if (!results.some((r) => r.mlp.some((m) => m.batch === batch && m.fused === fused))) continue;
        const cells = rts.map((rt) => {
          const m = by(rt).mlp.find((x) => x.batch === batch && x.fused === fused);
          const cpu = m?.cpuMsPerStep != null ? ` (${f1(m.cpuMsPerStep)} CPU-ms)` : '';
          return m ? `${f2(m.msPerStep)}${cpu} | ${m.dispatchesPerStep} / ${m.submitsPerStep}` : '– | –';
        });
        out.push(`| ${batch} | wgflow ${fused ? 'fused' : 'unfused'} | ${cells.join(' | ')} |`);
      }
      const ratio = rts.map((rt) => {
        const f = by(rt).mlp.find((x) => x.batch === batch && x.fused);
        const u = by(rt).mlp.find((x) => x.batch === batch && !x.fused);
        return f && u ? `${(u.msPerStep / f.msPerStep).toFixed(2)}× | ` : '– | ';
      });
      out.push(`| ${batch} | unfused ÷ fused | ${ratio.join(' | ')} |`);
      for (const [name, v] of Object.entries(SPEC_PEERS.mlpMs)) {
        const b = batch as 256 | 4096;
        out.push(`| ${batch} | ${name} (${SPEC_NOTE}) | ${rts.map((rt) => `${f1(v[rt][b])} | ${v.dispatches} / ${v.submits}`).join(' | ')} |`);
      }
      const vsJax = rts.map((rt) => {
        const f = by(rt).mlp.find((x) => x.batch === batch && x.fused);
        const j = SPEC_PEERS.mlpMs['jax-js jit'][rt][batch as 256 | 4096];
        return f && j ? `${(f.msPerStep / j).toFixed(3)} | ` : '– | ';
      });
      out.push(`| ${batch} | wgflow fused ÷ jax-js (target ≤ ${batch === 256 ? '1/4' : '1/2'} in Chromium, SPEC §6) | ${vsJax.join(' | ')} |`);
    }
  }
  const profBatches = [...new Set(results.flatMap((r) => r.profile.map((p) => p.batch)))];
  for (const batch of profBatches) {
    out.push('', `### Where a fused step's time goes, batch ${batch} (each dispatch timed on its own, median ms)`, '');
    out.push(`| # | kernel | workgroups | ${rts.map(col).join(' | ')} |`, `|---|---|---|${rts.map(() => '---').join('|')}|`);
    const lists = rts.map((rt) => by(rt).profile.filter((p) => p.batch === batch));
    const n = Math.max(...lists.map((l) => l.length));
    for (let i = 0; i < n; i++) {
      const e = lists.find((l) => l[i])![i]!;
      out.push(`| ${i + 1} | ${e.kernel} | ${e.workgroups.join('×')} | ${lists.map((l) => f2(l[i]?.ms)).join(' | ')} |`);
    }
    out.push(`| | **sum** | | ${lists.map((l) => f2(l.reduce((a, e) => a + e.ms, 0))).join(' | ')} |`);
  }
  out.push('', 'Node CPU-ms and GFLOP per CPU-second: CPU time of the whole process (SwiftShader threads included), a figure that other processes on the shared cores disturb far less than wall time.');
  return out.join('\n');
}

async function main(): Promise<number> {
  let cli: Cli;
  try {
    cli = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`bench: ${e.message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  const log = (s: string) => console.error(s);
  if (cli.tune) {
    for (const rt of cli.runtimes) {
      console.log(`## tuning in ${rt}`);
      if (rt === 'node') await tune(cli.tune);
      else await runInBrowser('bench/page-tune.ts', { args: cli.tune, onMessage: (m) => console.log(String(m)), timeoutMs: 0 });
    }
    return 0;
  }
  const results: EngineBenchResult[] = [];
  const opts = { ...DEFAULT_BENCH, ...cli.opts };
  if (cli.peersNote) log(`bench: --peers: tfjs and jax-js are not installed here; their figures are the ${SPEC_NOTE} and are printed next to ours`);
  log(`bench: runtimes ${cli.runtimes.join(', ')}; options ${JSON.stringify(cli.opts)} (2 shared cores: timings are medians and noisy)`);
  for (const rt of cli.runtimes) {
    const t0 = performance.now();
    try {
      const r = rt === 'node' ? await runNode(opts, log) : await runBrowser(opts, log);
      results.push(r);
      if (cli.json) console.log(JSON.stringify({ type: 'bench', ...r }));
    } catch (e) {
      console.error(`bench: the ${rt} run failed: ${(e as Error).message}`);
      return 1;
    }
    log(`bench: ${rt} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const table = renderTables(results);
  if (cli.json) console.log(JSON.stringify({ type: 'result', peers: SPEC_PEERS, peersNote: SPEC_NOTE, table, results: results.map((r) => ({ runtime: r.runtime, adapter: r.adapterSummary, matmul: r.matmul, mlp: r.mlp })) }));
  else console.log(table);
  return 0;
}

process.exitCode = await main();
