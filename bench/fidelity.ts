/**
 * OT-CFM fidelity against PyTorch over seeds (issue 13 item 5): trains OT-CFM with one of two
 * protocols and reports W2 per seed, then mean ± std and the standard error of the mean (std/√n),
 * next to the PyTorch figures of SPEC §5.1 / §5.2, so "worse by more than the seeds' standard error"
 * can be read off directly.
 *
 *  - gaussian-moons (SPEC §5.1, the torchcfm recipe): batch 256, σ 0.1, Adam lr 1e-3, 2 000 steps,
 *    RK4-100; W2 at --eval-points (default 5 000) and, for a like-for-like column with PyTorch's
 *    figure (measured at 2 048), at 2 048 points.
 *  - n-paper-moons (SPEC §5.2, the OT-CFM paper): N(0, I) → paper-moons, batch 512, AdamW lr 1e-3
 *    wd 1e-5, 20 000 steps, Euler-100; W2 at --eval-points (default 5 000, the issue's PyTorch size).
 *
 *   node scripts/run-ts.mjs bench/fidelity.ts --task gaussian-moons|n-paper-moons [--seeds 0,1,2,3,4]
 *        [--steps N] [--eval-points 5000] [--pairing replacement|permutation]
 *
 * One JSON line per seed as it finishes (runs can be split across processes and merged by hand),
 * then a summary line. Pairing: 'replacement' (the default; torchcfm's OTPlanSampler, i ~ U{0..B−1}
 * i.i.d., j = σ(i)) or 'permutation' (every point once, (b, σ(b))).
 */
import { evaluate, train } from '../api';

const args = process.argv.slice(2);
function arg(name: string, dflt: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
}

const PROTOCOLS = {
  'gaussian-moons': { source: 'gaussian', target: 'moons', batch: 256, steps: 2000, options: { solver: 'rk4', solverSteps: 100 }, pytorch: 'W2 0.349 ± 0.020 over seeds 0–2 at 2 048 points (SPEC §5.1)', compareAt: 2048 },
  'n-paper-moons': { source: 'gaussian', target: 'paper-moons', batch: 512, steps: 20000, options: { weightDecay: 1e-5, solver: 'euler', solverSteps: 100 }, pytorch: 'W2 0.133, 0.150 (seeds 0, 1) at 5 000 points (SPEC §5.2); paper 0.130 ± 0.016 over 5 seeds', compareAt: 0 },
} as const;

const task = arg('task', 'gaussian-moons') as keyof typeof PROTOCOLS;
const p = PROTOCOLS[task];
if (!p) {
  console.error(`--task: "${task}" is not a protocol; accepted: ${Object.keys(PROTOCOLS).join(', ')}`);
  process.exit(2);
}
const seeds = arg('seeds', '0,1,2,3,4').split(',').map(Number);
const steps = Number(arg('steps', String(p.steps)));
const evalPoints = Number(arg('eval-points', '5000'));
const pairing = arg('pairing', 'replacement');
if (pairing !== 'replacement' && pairing !== 'permutation') {
  console.error(`--pairing: "${pairing}" is not accepted; accepted: replacement, permutation`);
  process.exit(2);
}

const w2s: number[] = [];
const w2c: number[] = [];
for (const seed of seeds) {
  const t0 = performance.now();
  const r = await train({
    method: 'otcfm', source: p.source, target: p.target, steps, batch: p.batch, lr: 1e-3, seed, runtime: 'node',
    options: { ...p.options, pairing, evalPoints, trajectoryPoints: 0, nllPoints: 0 },
  });
  const row: Record<string, unknown> = { type: 'seed', task, seed, steps, pairing, eval_points: evalPoints, w2: r.metrics.w2, npe: r.metrics.npe, ms_per_step: r.metrics.ms_per_step };
  w2s.push(r.metrics.w2!);
  if (p.compareAt) {
    const e = await evaluate(r.model, { n: p.compareAt, seed, solver: 'rk4', solverSteps: 100 });
    row[`w2_at_${p.compareAt}`] = e.w2;
    w2c.push(e.w2 as number);
  }
  row.wall_s = (performance.now() - t0) / 1000;
  console.log(JSON.stringify(row));
}

/** Mean, sample std (n − 1) and standard error of the mean. */
function stats(xs: number[]): { mean: number; std: number; se: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : NaN;
  return { mean, std, se: std / Math.sqrt(n) };
}
const summary: Record<string, unknown> = { type: 'summary', task, seeds, steps, pairing, [`w2_at_${evalPoints}`]: stats(w2s), pytorch: p.pytorch };
if (p.compareAt) summary[`w2_at_${p.compareAt}`] = stats(w2c);
console.log(JSON.stringify(summary));
process.exit(0);
