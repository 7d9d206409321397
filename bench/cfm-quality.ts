/**
 * CFM quality benchmark (SPEC §5.1's protocol): batch 256, σ 0.1, Adam lr 1e-3, 2 000 steps,
 * seeds 0–2; W2 (RK4-100, 2 048 generated vs 2 048 fresh target points) and NPE for icfm, otcfm
 * with the exact plan and otcfm with Sinkhorn (reg 0.05, ≤ 1000 iterations) on gaussian→moons and
 * 8gaussians→moons; prints a markdown table next to the PyTorch figures, with ms/step and
 * dispatches/step. NLL is skipped (not part of the table).
 *
 * Run: node scripts/run-ts.mjs bench/cfm-quality.ts [--steps 2000] [--seeds 0,1,2]
 *        [--tasks gaussian-moons,8gaussians-moons] [--methods icfm,otcfm-exact,otcfm-sinkhorn] [--json FILE]
 *        [--sinkhorn-iter 1000] [--sinkhorn-tol 1e-3] [--eps-scaling 20]  (defaults: the trainer's)
 */
import { writeFileSync } from 'node:fs';
import type { TrainConfig } from '../train/contract';
import { adapterSummary, getBackend, init } from '../engine';
import { cfmJob } from '../train/registry';

const args = process.argv.slice(2);
function arg(name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
}

const steps = Number(arg('steps', '2000'));
const seeds = arg('seeds', '0,1,2').split(',').map(Number);
const tasks = arg('tasks', 'gaussian-moons,8gaussians-moons').split(',');
const methods = arg('methods', 'icfm,otcfm-exact,otcfm-sinkhorn').split(',');
const jsonOut = arg('json', '');
const skIter = Number(arg('sinkhorn-iter', '1000'));
const skTol = Number(arg('sinkhorn-tol', '1e-3'));
const skScale = Number(arg('eps-scaling', '20'));

/** SPEC §5.1 (PyTorch on the CPU, 2 cores): median ms/step, W2 mean ± std, NPE. */
const PYTORCH: Record<string, { ms: number; w2: string; npe: string }> = {
  'gaussian-moons/icfm': { ms: 0.53, w2: '0.459 ± 0.045', npe: '0.38' },
  'gaussian-moons/otcfm-exact': { ms: 7.6, w2: '0.349 ± 0.020', npe: '0.034' },
  'gaussian-moons/otcfm-sinkhorn': { ms: 40, w2: '0.331', npe: '0.059' },
  '8gaussians-moons/icfm': { ms: 0.55, w2: '0.794 ± 0.115', npe: '1.21' },
  '8gaussians-moons/otcfm-exact': { ms: 7.4, w2: '0.512 ± 0.025', npe: '0.058' },
  '8gaussians-moons/otcfm-sinkhorn': { ms: 80, w2: '0.480', npe: '0.045' },
};

interface Row {
  task: string;
  method: string;
  seed: number;
  w2: number;
  npe: number;
  loss: number;
  msPerStep: number;
  dispatchesPerStep: number;
  wallS: number;
}

const b = await init({ runtime: 'node' });
console.error(`adapter: ${adapterSummary(b.adapter)}; steps ${steps}, seeds ${seeds.join(',')}; sinkhorn: ≤ ${skIter} it., tol ${skTol}, ε-scaling ${skScale}`);
const rows: Row[] = [];
for (const task of tasks) {
  const [source, target] = task.split('-') as [string, string];
  for (const m of methods) {
    for (const seed of seeds) {
      const [method, ot] = m.split('-') as ['icfm' | 'otcfm', string | undefined];
      const cfg: TrainConfig = {
        method,
        source,
        target,
        steps,
        batch: 256,
        lr: 1e-3,
        seed,
        options: { sigma: 0.1, ...(ot ? { ot } : {}), ...(ot === 'sinkhorn' ? { reg: 0.05, sinkhornMaxIter: skIter, sinkhornTol: skTol, sinkhornEpsScaling: skScale } : {}), nllPoints: 0, trajectoryPoints: 0 },
      };
      const t0 = performance.now();
      const out = await cfmJob.run(cfg, { progressIntervalMs: 5000 });
      const r: Row = {
        task,
        method: m,
        seed,
        w2: out.metrics.w2!,
        npe: out.metrics.npe!,
        loss: out.metrics.loss,
        msPerStep: out.metrics.ms_per_step,
        dispatchesPerStep: out.metrics.dispatches_per_step,
        wallS: (performance.now() - t0) / 1000,
      };
      rows.push(r);
      console.error(JSON.stringify(r));
      (getBackend() as unknown as { trimPool?: () => void }).trimPool?.();
    }
  }
}

const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
const std = (a: number[]) => (a.length > 1 ? Math.sqrt(a.reduce((s, x) => s + (x - mean(a)) ** 2, 0) / (a.length - 1)) : 0);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const lines = [
  `| task | method | wgflow W2 (RK4-100) | PyTorch W2 | wgflow NPE | PyTorch NPE | wgflow ms/step | PyTorch ms/step | dispatches/step | seeds |`,
  `|---|---|---|---|---|---|---|---|---|---|`,
];
for (const task of tasks) {
  for (const m of methods) {
    const rs = rows.filter((r) => r.task === task && r.method === m);
    if (!rs.length) continue;
    const ref = PYTORCH[`${task}/${m}`];
    const w2s = rs.map((r) => r.w2);
    lines.push(
      `| ${task.replace('-', '→')} | ${m.replace('-', ' ')} | ${mean(w2s).toFixed(3)}${rs.length > 1 ? ` ± ${std(w2s).toFixed(3)}` : ''} | ${ref?.w2 ?? '–'} | ${mean(rs.map((r) => r.npe)).toFixed(3)} | ${ref?.npe ?? '–'} | ${median(rs.map((r) => r.msPerStep)).toFixed(2)} | ${ref?.ms ?? '–'} | ${mean(rs.map((r) => r.dispatchesPerStep)).toFixed(1)} | ${rs.map((r) => r.seed).join(',')} |`,
    );
  }
}
console.log(lines.join('\n'));
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ adapter: b.adapter, steps, rows }, null, 2));
process.exit(0);
