/**
 * RK4 sampling throughput (SPEC §6): the fused kernel (kernels/ode.ts: whole MLP and all four
 * stages per thread, 10 steps per dispatch) against the op-by-op path (engine ops: fill, concat,
 * one fused `linear` per layer, stage combinations; ~36 dispatches per RK4 step), default MLP,
 * n samples × `steps` RK4 steps, alternating the two paths `reps` times in one process. Reports
 * wall ms, process CPU ms, the ratio, and the max difference between the two results.
 *
 * Run: node scripts/run-ts.mjs bench/cfm-sample.ts [--n 10000] [--steps 100] [--reps 1] [--spt 8]
 */
import { getBackend, init, tensor } from '../engine';
import { Rng } from '../engine/philox';
import { VectorField } from '../cfm/mlp';
import { odeSolve } from '../cfm/ode';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => (args.indexOf(`--${n}`) >= 0 ? args[args.indexOf(`--${n}`) + 1]! : d);
const n = Number(arg('n', '10000'));
const steps = Number(arg('steps', '100'));
const reps = Number(arg('reps', '1'));
const spt = Number(arg('spt', '8'));
const paths = arg('paths', 'fused,ops').split(',') as ('fused' | 'ops')[];
const b = await init({ runtime: 'node' });
const vf = new VectorField({ dim: 2, hidden: [64, 64, 64], activation: 'selu' }, new Rng(1));
const rng = new Rng(2);
const x0 = tensor(Float32Array.from({ length: 2 * n }, () => rng.normal()), [n, 2]);
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
// Warm-up: compile both paths' pipelines on one step.
for (const path of paths) (await odeSolve(vf, x0, { steps: 1, path, samplesPerThread: spt })).x.dispose();
await b.sync();
const res: Record<string, { wall: number[]; cpu: number[]; dispatches: number }> = {};
const outs: Record<string, Float32Array> = {};
for (let r = 0; r < reps; r++) {
  for (const path of paths) {
    const d0 = b.counters.dispatches;
    const t0 = performance.now(), c0 = cpuNow();
    const sol = await odeSolve(vf, x0, { steps, path, samplesPerThread: spt });
    await b.sync();
    const wall = performance.now() - t0, cpu = cpuNow() - c0;
    (res[path] ??= { wall: [], cpu: [], dispatches: 0 }).wall.push(wall);
    res[path]!.cpu.push(cpu);
    res[path]!.dispatches = b.counters.dispatches - d0;
    outs[path] = await sol.x.data();
    sol.x.dispose();
    console.error(JSON.stringify({ path, n, steps, wallMs: Math.round(wall), processCpuMs: Math.round(cpu), load: (await import('node:os')).loadavg()[0] }));
  }
}
const best = (a: number[]) => Math.min(...a);
let diff = 0;
if (outs.fused && outs.ops) for (let k = 0; k < 2 * n; k++) diff = Math.max(diff, Math.abs(outs.fused[k]! - outs.ops[k]!));
const summary: Record<string, unknown> = { n, steps, samplesPerThread: spt, maxAbsDiff: diff };
for (const p of paths) summary[p] = { bestWallMs: Math.round(best(res[p]!.wall)), bestCpuMs: Math.round(best(res[p]!.cpu)), dispatches: res[p]!.dispatches, gflops: +((n * steps * 4 * 8706 * 2) / best(res[p]!.wall) / 1e6).toFixed(2) };
if (res.fused && res.ops) summary.ratioWall = +(best(res.ops.wall) / best(res.fused.wall)).toFixed(2);
console.log(JSON.stringify(summary));
process.exit(0);
