/**
 * The OT-CFM paper's 2-D table (SPEC §5.2; Tong et al. 2024, as re-reported in [SF]2M's Table 2),
 * run by wgflow with the paper's protocol through the public API: batch 512, AdamW lr 1e-3 weight
 * decay 1e-5, 20 000 steps, Euler with 100 steps, W2 between N generated points and N fresh target
 * points by the exact assignment solver. N defaults to 10 000: at 2 048 points the sampling noise
 * alone is ≈ 0.35 on paper-8gaussians (above OT-CFM's 0.303), at 10 000 it is small enough to
 * compare (paper-moons: 0.054 at 2 048, 0.038 at 5 000, 0.028 at 10 000; the exact W2 of 10 000
 * points takes ~45 s on the 2-core machine).
 *
 *   node scripts/run-ts.mjs bench/paper-table.ts [--methods otcfm,icfm] [--tasks n-moons,n-8gaussians]
 *        [--seeds 0,1,2] [--steps 20000] [--eval-points 10000] [--json]
 *
 * Each (method, task, seed) prints one JSON line as it finishes (so a long run can be split across
 * processes); the last output is a markdown table of mean ± std next to the paper's.
 *
 *   node scripts/run-ts.mjs bench/paper-table.ts --merge FILE...
 *
 * prints that table from the JSON lines of earlier runs (files of `--json` output), without training.
 */
import { readFileSync } from 'node:fs';
import { train } from '../api';

/** Tasks of the paper's table: source → target (SPEC §2's paper set). */
const TASKS: Record<string, { source: string; target: string; paperKey: string }> = {
  'n-8gaussians': { source: 'gaussian', target: 'paper-8gaussians', paperKey: 'N→8g' },
  'moons-8gaussians': { source: 'paper-moons-std7', target: 'paper-8gaussians-r12', paperKey: 'moons→8g' },
  'n-moons': { source: 'gaussian', target: 'paper-moons', paperKey: 'N→moons' },
  'n-scurve': { source: 'gaussian', target: 'paper-scurve', paperKey: 'N→scurve' },
};

/** SPEC §5.2: W2 mean ± std over 5 seeds, by method and task. */
const PAPER_W2: Record<string, Record<string, string>> = {
  otcfm: { 'N→8g': '0.303±0.043', 'moons→8g': '0.601±0.027', 'N→moons': '0.130±0.016', 'N→scurve': '0.144±0.028' },
  icfm: { 'N→8g': '0.373±0.103', 'moons→8g': '1.557±0.407', 'N→moons': '0.178±0.014', 'N→scurve': '0.242±0.141' },
  sbcfm: { 'N→8g': '2.314±2.112', 'moons→8g': '–', 'N→moons': '0.434±0.594', 'N→scurve': '0.341±0.468' },
  fm: { 'N→8g': '0.343±0.058', 'moons→8g': '–', 'N→moons': '0.209±0.055', 'N→scurve': '0.198±0.037' },
  sf2m: { 'N→8g': '0.275±0.058', 'moons→8g': '0.726±0.137', 'N→moons': '0.124±0.023', 'N→scurve': '0.128±0.005' },
};

function list(flag: string, fallback: string): string[] {
  const i = process.argv.indexOf(`--${flag}`);
  return (i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

const methods = list('methods', 'otcfm,icfm');
const tasks = list('tasks', 'n-moons,n-8gaussians');
const seeds = list('seeds', '0,1,2').map(Number);
const steps = Number(list('steps', '20000')[0]);
const evalPoints = Number(list('eval-points', '10000')[0]);
const json = process.argv.includes('--json');
for (const t of tasks) if (!TASKS[t]) throw new Error(`--tasks: unknown task "${t}"; accepted: ${Object.keys(TASKS).join(', ')}`);

type Row = { method: string; task: string; seed: number; w2: number; npe: number; ms_per_step: number; steps?: number; eval_points?: number };
const rows: Row[] = [];
const merge = process.argv.indexOf('--merge');
if (merge >= 0) {
  const files = process.argv.slice(merge + 1).filter((f) => !f.startsWith('--'));
  if (!files.length) throw new Error('--merge: give the files holding the JSON lines of earlier runs');
  for (const f of files) for (const line of readFileSync(f, 'utf8').split('\n')) if (line.includes('"cell"')) rows.push(JSON.parse(line) as Row);
  if (!rows.length) throw new Error(`--merge: no "cell" lines in ${files.join(', ')}`);
  const uniq = <T,>(xs: T[]) => [...new Set(xs)];
  const runSteps = uniq(rows.map((r) => r.steps));
  const points = uniq(rows.map((r) => r.eval_points));
  if (runSteps.length > 1 || points.length > 1) throw new Error(`--merge: the runs differ in steps (${runSteps.join(', ')}) or evaluation points (${points.join(', ')})`);
  methods.splice(0, methods.length, ...uniq(rows.map((r) => r.method)));
  tasks.splice(0, tasks.length, ...uniq(rows.map((r) => r.task)));
  seeds.splice(0, seeds.length, ...uniq(rows.map((r) => r.seed)).sort((a, b) => a - b));
  console.log(`${rows.length} runs, ${runSteps[0]} steps, W2 at ${points[0]} points; mean ms/step ${(rows.reduce((a, r) => a + r.ms_per_step, 0) / rows.length).toFixed(1)}`);
}
for (const method of merge >= 0 ? [] : methods) {
  for (const task of tasks) {
    for (const seed of seeds) {
      const { source, target } = TASKS[task]!;
      const r = await train({
        method: method as 'otcfm',
        source: method === 'fm' ? null : source,
        target,
        steps,
        batch: 512,
        lr: 1e-3,
        seed,
        options: { weightDecay: 1e-5, solver: 'euler', solverSteps: 100, evalPoints },
        onProgress: (p) => {
          if (!json && p.step % 2000 === 0) console.error(`${method} ${task} seed ${seed}: step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)}`);
        },
      });
      const row = { method, task, seed, w2: r.metrics.w2!, npe: r.metrics.npe!, ms_per_step: r.metrics.ms_per_step };
      rows.push(row);
      console.log(JSON.stringify({ type: 'cell', steps, eval_points: evalPoints, ...row }));
    }
  }
}

const stat = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const s = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : NaN;
  // ± the seeds' standard deviation, then the standard error of the mean (std/√n) in brackets.
  return `${m.toFixed(3)}${Number.isNaN(s) ? ' (1 seed)' : `±${s.toFixed(3)} (${xs.length} seeds, SE ${(s / Math.sqrt(xs.length)).toFixed(3)})`}`;
};
if (!json) {
  console.log(`\n| method | task | wgflow W2 (seeds ${seeds.join(',')}, ${merge >= 0 ? rows[0]!.eval_points : evalPoints} points) | paper W2 | wgflow NPE |`);
  console.log('|---|---|---|---|---|');
  for (const method of methods) {
    for (const task of tasks) {
      const cell = rows.filter((r) => r.method === method && r.task === task);
      if (!cell.length) continue;
      console.log(`| ${method} | ${task} | ${stat(cell.map((r) => r.w2))} | ${PAPER_W2[method]?.[TASKS[task]!.paperKey] ?? '–'} | ${stat(cell.map((r) => r.npe))} |`);
    }
  }
}
process.exit(0);
