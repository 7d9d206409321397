/**
 * Memory soak (issue 12 item 3; a benchmark, not a timed test): long training runs of OT-CFM and
 * RealNVP, in Node (Dawn) and/or headless Chromium, recording the engine's pool and allocation
 * counters every --every steps (bench/soak-run.ts says which and why). One case at a time, never
 * two at once (they would share the cores). The JSON is rewritten atomically after every row, so a
 * run stopped early still leaves every row it reached.
 *
 *   node scripts/run-ts.mjs bench/soak.ts [--methods otcfm,realnvp] [--runtimes node,browser]
 *        [--steps 20000] [--every 1000] [--batch 256] [--seed 0] [--out runs/soak.json]
 *
 * Prints one line per row to stderr and a summary per case to stdout: for each counter, its value
 * at the first row after warm-up (step = --every) and at the last row, and whether it moved.
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runInBrowser } from '../browser/run-in-page';
import type { Method } from '../train/contract';
import { writeFileAtomic } from '../io/atomic';
import { runSoak, type SoakArgs, type SoakResult, type SoakRow } from './soak-run';

const USAGE = 'usage: node scripts/run-ts.mjs bench/soak.ts [--methods otcfm,realnvp] [--runtimes node,browser] [--steps 20000] [--every 1000] [--batch 256] [--seed 0] [--out runs/soak.json]';

function usage(msg: string): never {
  console.error(`soak: ${msg}\n${USAGE}`);
  process.exit(2);
}

const flags = new Map<string, string>();
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i]!;
  if (k === '--help' || k === '-h') {
    console.log(USAGE);
    process.exit(0);
  }
  if (!k.startsWith('--') || argv[i + 1] === undefined) usage(`bad argument "${k}"`);
  flags.set(k.slice(2), argv[i + 1]!);
}
const known = ['methods', 'runtimes', 'steps', 'every', 'batch', 'seed', 'out'];
for (const k of flags.keys()) if (!known.includes(k)) usage(`unknown flag --${k}`);
const int = (k: string, d: number, min: number) => {
  const v = Number(flags.get(k) ?? d);
  if (!Number.isInteger(v) || v < min) usage(`--${k}: "${flags.get(k)}" is not an integer ≥ ${min}`);
  return v;
};
const list = (k: string, d: string, ok: readonly string[]) => {
  const xs = (flags.get(k) ?? d).split(',').filter(Boolean);
  for (const x of xs) if (!ok.includes(x)) usage(`--${k}: "${x}" is not one of ${ok.join(', ')}`);
  return xs;
};
const methods = list('methods', 'otcfm,realnvp', ['otcfm', 'icfm', 'realnvp', 'maf', 'nice', 'glow']) as Method[];
const runtimes = list('runtimes', 'node,browser', ['node', 'browser']) as ('node' | 'browser')[];
const steps = int('steps', 20_000, 1);
const every = int('every', 1_000, 1);
const base = { steps, every, batch: int('batch', 256, 1), seed: int('seed', 0, 0) };
const out = path.resolve(flags.get('out') ?? 'runs/soak.json');
mkdirSync(path.dirname(out), { recursive: true });

/** Counters that must not move after warm-up in a run that does not leak. */
const FLAT_COUNTERS = ['buffersLive', 'bytesLive', 'poolBuffers', 'poolBytes', 'buffersCreated', 'bytesAllocated', 'bindGroupsCached', 'pipelinesCompiled'] as const;

interface Case {
  method: Method;
  runtime: 'node' | 'browser';
  status: 'running' | 'done' | 'failed';
  error?: string;
  result?: Omit<SoakResult, 'rows'>;
  rows: SoakRow[];
}

const doc = {
  command: `node scripts/run-ts.mjs bench/soak.ts ${argv.join(' ')}`.trim(),
  started: new Date().toISOString(),
  machine: `${os.cpus().length} cores, load ${os.loadavg()[0]!.toFixed(2)} at start`,
  ...base,
  cases: [] as Case[],
};
const save = () => writeFileAtomic(out, JSON.stringify(doc, null, 1) + '\n');

function summary(c: Case): string {
  const warm = c.rows.find((r) => r.step >= every);
  const last = c.rows[c.rows.length - 1];
  if (!warm || !last) return `${c.method} ${c.runtime}: no row after warm-up`;
  const parts = FLAT_COUNTERS.map((k) => `${k} ${warm[k]}${warm[k] === last[k] ? '' : ` → ${last[k]} (MOVED)`}`);
  const mb = (x: number | null) => (x === null ? '–' : `${(x / 2 ** 20).toFixed(1)} MiB`);
  return `${c.method} ${c.runtime}, steps ${warm.step}..${last.step}: ${parts.join(', ')}; heap ${mb(warm.heapBytes)} → ${mb(last.heapBytes)}; rss ${mb(warm.rssBytes)} → ${mb(last.rssBytes)}`;
}

let failed = false;
for (const method of methods) {
  for (const runtime of runtimes) {
    const c: Case = { method, runtime, status: 'running', rows: [] };
    doc.cases.push(c);
    const onRow = (r: SoakRow) => {
      c.rows.push(r);
      console.error(`[${method} ${runtime}] step ${r.step} (${r.elapsedS} s): live ${r.buffersLive} buffers / ${r.bytesLive} B, pool ${r.poolBuffers} / ${r.poolBytes} B, created ${r.buffersCreated} / ${r.bytesAllocated} B, bind groups ${r.bindGroupsCached}, heap ${r.heapBytes ?? '–'}${r.rssBytes !== null ? `, rss ${r.rssBytes}` : ''}`);
      save();
    };
    const args: SoakArgs = { method, ...base };
    try {
      const res =
        runtime === 'node'
          ? await runSoak('node', args, onRow)
          : (await runInBrowser<SoakResult>('bench/soak-run.ts', { args, timeoutMs: 0, onMessage: (m) => onRow(m as SoakRow), onLog: (l) => console.error(`[browser console] ${l}`) })).result;
      const { rows: _rows, ...rest } = res;
      c.result = rest;
      c.status = 'done';
    } catch (e) {
      c.status = 'failed';
      c.error = (e as Error).message;
      failed = true;
      console.error(`[${method} ${runtime}] failed: ${c.error}`);
    }
    save();
    console.log(summary(c));
  }
}
console.log(`wrote ${out}`);
process.exit(failed ? 1 : 0);
