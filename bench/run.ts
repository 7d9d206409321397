/**
 * wgflow engine benchmark, in Node (Dawn) and/or headless Chromium, printed as markdown tables.
 *
 * Default: matmul GFLOP/s per kernel variant and the MLP + Adam training step (bench/engine-bench.ts).
 * --peers: wgflow at each fusion level against jax-js and tfjs-webgpu, measured in the same run on
 * the same adapter, interleaved (bench/peers-bench.ts), with dispatch/submit counts, issue 10's
 * targets marked met or not, and a PNG chart (--chart FILE). --profile: per-kernel GPU time of a
 * training step at each fusion level from timestamp queries (bench/gpu-profile.ts).
 *
 *   node scripts/run-ts.mjs bench/run.ts [--runtime node|browser|both] [--json] [--suite kernels|train|all]
 *        [--sections matmul,mlp,profile] [--sizes 256,512,1024] [--variants reg4x4,wgmem,...]
 *        [--reps 5] [--batches 256,4096] [--steps 50] [--blocks 3] [--fusion ops,layer,mlp] [--quick]
 *        [--peers] [--profile] [--acts silu,selu] [--peer-list jax-js,tfjs] [--chart FILE|none]
 *
 * The runtimes run one after the other, never at once (they would share the same two cores).
 * Timings on SwiftShader are noisy when other work shares the machine: every figure is a median of
 * several repetitions; repeat the run and compare.
 */
import { FUSION_LEVELS, init, type FusionLevel } from '../engine';
import { runInBrowser } from '../browser/run-in-page';
import { MATMUL_VARIANTS, type MatmulVariant } from '../kernels/matmul';
import { DEFAULT_BENCH, runEngineBench, type EngineBenchOptions, type EngineBenchResult } from './engine-bench';
import tune, { type TuneArgs } from './page-tune';
import { runPeersBench, type PeersOptions, type PeersResult } from './peers-bench';
import { renderPeersChart, renderPeersTables, peersJson } from './peers-report';
import type { PagePeersArgs } from './page-peers';

type Runtime = 'node' | 'browser';

interface Cli {
  runtimes: Runtime[];
  json: boolean;
  /** --peers / --profile: the peers comparison and/or the timestamp profile instead of the default suite. */
  peers: boolean;
  profile: boolean;
  /** --peers without the wgflow-only targets section. */
  noTargets: boolean;
  peerOpts: PeersOptions;
  /** PNG chart of --peers (null: none). */
  chart: string | null;
  /** --tune JSON: run the tuning tool (bench/page-tune.ts) instead of the benchmark. */
  tune: TuneArgs | null;
  opts: EngineBenchOptions;
}

const USAGE = `usage: node scripts/run-ts.mjs bench/run.ts [--runtime node|browser|both] [--json]
  [--suite kernels|train|all] [--peers] [--sections matmul,mlp,profile] [--sizes 256,512,1024] [--variants ${MATMUL_VARIANTS.join(',')}]
  [--reps N] [--batches 256,4096] [--steps N] [--blocks N] [--fusion ops,layer,mlp] [--quick]
  [--peers] [--no-targets] [--profile] [--acts silu,selu] [--peer-list jax-js,tfjs] [--chart FILE|none]
      --peers: wgflow (each fusion level) vs jax-js and tfjs-webgpu in the same run (defaults: --sizes 256,512,1024,2048
      --batches 256,4096 --acts silu,selu --reps 3 --steps 10), then issue 10's wgflow-only targets (flows steps at
      each level, RK4 sampling fused vs ops at n = 256 and 10 000, the OT-CFM step; --no-targets skips them);
      --profile: per-kernel GPU time (timestamp queries)
  [--tune JSON]  (the matmul tuning tool, see bench/page-tune.ts)`;

class UsageError extends Error {}

function parseArgs(argv: string[]): Cli {
  const cli: Cli = { runtimes: ['node', 'browser'], json: false, peers: false, profile: false, noTargets: false, peerOpts: {}, chart: 'bench-peers.png', tune: null, opts: {} };
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
      case '--peers': cli.peers = true; break;
      case '--profile': cli.profile = true; break;
      case '--no-targets': cli.noTargets = true; break;
      case '--acts': {
        const v = list(flag, next());
        for (const x of v) if (x !== 'silu' && x !== 'selu') throw new UsageError(`--acts: "${x}" is not one of silu, selu`);
        cli.peerOpts.acts = v as ('silu' | 'selu')[];
        break;
      }
      case '--peer-list': {
        const v = list(flag, next());
        for (const x of v) if (x !== 'jax-js' && x !== 'tfjs') throw new UsageError(`--peer-list: "${x}" is not one of jax-js, tfjs`);
        cli.peerOpts.peers = v as ('jax-js' | 'tfjs')[];
        break;
      }
      case '--chart': {
        const v = next();
        if (!v) throw new UsageError('--chart needs a file name (or none)');
        cli.chart = v === 'none' ? null : v;
        break;
      }
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
        for (const x of v) if (!(FUSION_LEVELS as readonly string[]).includes(x)) throw new UsageError(`--fusion: "${x}" is not one of ${FUSION_LEVELS.join(', ')}`);
        cli.opts.fusion = v as FusionLevel[];
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
  // The shared timing flags mean the same to the peers comparison.
  const { sizes, reps, batches, steps } = cli.opts;
  Object.assign(cli.peerOpts, Object.fromEntries(Object.entries({ sizes, reps, batches, steps }).filter(([, v]) => v !== undefined)));
  if (argv.includes('--quick')) Object.assign(cli.peerOpts, { sizes: [256, 512], reps: 2, steps: 5, targetRepMs: 200, profileReps: 3 }, { ...cli.peerOpts });
  cli.peerOpts.sections = [...(cli.peers ? ['peers' as const] : []), ...(cli.peers && !cli.noTargets ? ['targets' as const] : []), ...(cli.profile ? ['profile' as const] : [])];
  if (argv.includes('--quick')) cli.peerOpts.targets = { flowRounds: 2, flowSteps: 5, rk4N: [256, 2048], rk4Reps: 1, otSteps: 30 };
  if (cli.opts.fusion) cli.peerOpts.targets = { ...cli.peerOpts.targets, flowLevels: cli.opts.fusion.filter((l) => l !== 'step') };
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
    out.push('');
  }
  const batches = [...new Set(results.flatMap((r) => r.mlp.map((m) => m.batch)))];
  if (batches.length) {
    out.push('### MLP 3→64→64→64→2 (SELU) + MSE + valueAndGrad + Adam step at each fusion level (median ms/step; dispatches / submits per step)', '');
    out.push(`| batch | fusion | ${rts.map((rt) => `${col(rt)} ms | disp/sub | ÷ ops`).join(' | ')} |`, `|---|---|${rts.map(() => '---|---|---').join('|')}|`);
    const levels = FUSION_LEVELS.filter((l) => results.some((r) => r.mlp.some((m) => m.fusion === l)));
    for (const batch of batches) {
      for (const level of levels) {
        if (!results.some((r) => r.mlp.some((m) => m.batch === batch && m.fusion === level))) continue;
        const cells = rts.map((rt) => {
          const m = by(rt).mlp.find((x) => x.batch === batch && x.fusion === level);
          const ops = by(rt).mlp.find((x) => x.batch === batch && x.fusion === 'ops');
          const cpu = m?.cpuMsPerStep != null ? ` (${f1(m.cpuMsPerStep)} CPU-ms)` : '';
          const ratio = m && ops ? `${(ops.msPerStep / m.msPerStep).toFixed(2)}×` : '–';
          return m ? `${f2(m.msPerStep)}${cpu} | ${m.dispatchesPerStep} / ${m.submitsPerStep} | ${ratio}` : '– | – | –';
        });
        out.push(`| ${batch} | ${level} | ${cells.join(' | ')} |`);
      }
    }
  }
  const profCases = [...new Map(results.flatMap((r) => r.profile.map((p) => [`${p.batch} ${p.fusion}`, p] as const))).values()];
  for (const { batch, fusion } of profCases) {
    out.push('', `### Where a step's time goes, batch ${batch}, fusion ${fusion} (each dispatch timed on its own, median ms)`, '');
    out.push(`| # | kernel | workgroups | ${rts.map(col).join(' | ')} |`, `|---|---|---|${rts.map(() => '---').join('|')}|`);
    const lists = rts.map((rt) => by(rt).profile.filter((p) => p.batch === batch && p.fusion === fusion));
    const n = Math.max(...lists.map((l) => l.length));
    for (let i = 0; i < n; i++) {
      const e = lists.find((l) => l[i])![i]!;
      out.push(`| ${i + 1} | ${e.kernel} | ${e.workgroups.join('×')} | ${lists.map((l) => f2(l[i]?.ms)).join(' | ')} |`);
    }
    out.push(`| | **sum** | | ${lists.map((l) => f2(l.reduce((a, e) => a + e.ms, 0))).join(' | ')} |`);
  }
  out.push('', 'Peers (jax-js, tfjs-webgpu) are measured by `--peers`, in the same run.');
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
  if (cli.peers || cli.profile) return runPeers(cli, process.argv.slice(2), log);
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
  if (cli.json) console.log(JSON.stringify({ type: 'result', table, results: results.map((r) => ({ runtime: r.runtime, adapter: r.adapterSummary, matmul: r.matmul, mlp: r.mlp })) }));
  else console.log(table);
  return 0;
}

async function runPeersNode(opts: PeersOptions, log: (s: string) => void): Promise<PeersResult> {
  const b = await init({ runtime: 'node' });
  try {
    // After wgflow's init: the peers get navigator.gpu on the driver the engine chose.
    const { installNodeNavigatorGpu, loadTfjsForNode } = await import('./peer-env');
    await installNodeNavigatorGpu();
    return await runPeersBench(b, opts, (t) => log(`[node] ${t}`), loadTfjsForNode);
  } finally {
    b.destroy();
  }
}

async function runPeersBrowser(opts: PeersOptions, log: (s: string) => void): Promise<PeersResult> {
  const { bundleTfjs } = await import('./peer-env');
  const tfjsSource = (opts.peers ?? ['tfjs']).includes('tfjs') && opts.sections?.includes('peers') ? await bundleTfjs('browser') : null;
  const args: PagePeersArgs = { opts, tfjsSource };
  const { result } = await runInBrowser<PeersResult>('bench/page-peers.ts', {
    args,
    // Unquantised timestamps for --profile (Chromium rounds them to 100 µs otherwise).
    extraArgs: ['--enable-webgpu-developer-features'],
    onMessage: (m) => log(`[browser] ${(m as { text?: string }).text ?? JSON.stringify(m)}`),
    onLog: (line) => log(`[browser console] ${line}`),
    timeoutMs: 0,
  });
  return result;
}

/** --peers / --profile: each runtime in turn, then the tables (or one JSON line) and the chart. */
async function runPeers(cli: Cli, argv: string[], log: (s: string) => void): Promise<number> {
  const command = `wgflow bench ${argv.join(' ')}`;
  log(`bench: ${command}: runtimes ${cli.runtimes.join(', ')}; options ${JSON.stringify(cli.peerOpts)}`);
  const results: PeersResult[] = [];
  let failed = false;
  for (const rt of cli.runtimes) {
    const t0 = performance.now();
    try {
      results.push(rt === 'node' ? await runPeersNode(cli.peerOpts, log) : await runPeersBrowser(cli.peerOpts, log));
    } catch (e) {
      console.error(`bench: the ${rt} run failed: ${(e as Error).message}`);
      failed = true;
    }
    log(`bench: ${rt} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  let chart: string | null = null;
  if (cli.chart && results.some((r) => r.cases.length)) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(cli.chart, renderPeersChart(results));
    chart = cli.chart;
    log(`bench: chart written to ${chart}`);
  }
  if (cli.json) console.log(JSON.stringify(peersJson(results, command, chart)));
  else console.log(renderPeersTables(results, command));
  return failed || results.length === 0 ? 1 : 0;
}

process.exitCode = await main();
