/**
 * Minibatch OT cost per training step at batch n (default 256 and 1024), the "OT alone" column of
 * SPEC §5.1: the exact plan on the CPU (cost matrix + assignment, cfm/ot/assignment.ts) and the GPU
 * log-domain Sinkhorn (cost kernel + Sinkhorn with pair sampling, one dispatch each; reg 0.05,
 * tol 1e-4 L1, ≤ 1000 iterations), each timed to completion (sync) over fresh batches; median ms.
 *
 * Run: node scripts/run-ts.mjs bench/cfm-ot.ts [--n 256,1024] [--reps 5] [--tasks gaussian-moons,8gaussians-moons]
 */
import { getBackend, init, tensor } from '../engine';
import { Rng } from '../engine/philox';
import { getDataset } from '../datasets/toy2d';
import { otPlanExact } from '../cfm/ot/assignment';
import { costMatrix, GpuSinkhorn } from '../cfm/ot';

const args = process.argv.slice(2);
const arg = (n: string, d: string) => (args.indexOf(`--${n}`) >= 0 ? args[args.indexOf(`--${n}`) + 1]! : d);
const sizes = arg('n', '256,1024').split(',').map(Number);
const reps = Number(arg('reps', '5'));
const tasks = arg('tasks', 'gaussian-moons,8gaussians-moons').split(',');
const reg = Number(arg('reg', '0.05'));
const epsScaling = Number(arg('eps-scaling', '0'));
const threads = args.includes('--threads') ? Number(arg('threads', '0')) : undefined;
const b = await init({ runtime: 'node' });
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
for (const task of tasks) {
  const [s, t] = task.split('-') as [string, string];
  for (const n of sizes) {
    const exact: number[] = [];
    const sk: number[] = [];
    const skCpu: number[] = [];
    const iters: number[] = [];
    const conv: number[] = [];
    const sinkhorn = new GpuSinkhorn(n, n, n, { reg, maxIter: 1000, tol: 1e-4, epsScaling, threads }, 0);
    for (let r = 0; r <= reps; r++) {
      const x0 = getDataset(s).sample(n, new Rng(r, 1));
      const x1 = getDataset(t).sample(n, new Rng(r, 2));
      let t0 = performance.now();
      otPlanExact(x0, x1, n, 2);
      const te = performance.now() - t0;
      const a = tensor(x0, [n, 2]), c = tensor(x1, [n, 2]);
      await b.sync();
      t0 = performance.now();
      const c0 = cpuNow();
      const C = costMatrix(a, c);
      const { out, pairs } = sinkhorn.run(C, 'replacement');
      b.flush();
      await new Promise((res) => setTimeout(res, 2));
      await b.sync();
      const ts = performance.now() - t0;
      const tc = cpuNow() - c0;
      const o = await out.data();
      for (const x of [a, c, C, out, pairs]) x.dispose();
      if (r === 0) continue; // warm-up (pipeline compilation)
      exact.push(te);
      sk.push(ts);
      skCpu.push(tc);
      iters.push(o[3 * n]!);
      conv.push(o[3 * n + 3]!);
    }
    console.log(JSON.stringify({ task, n, exactMs: +median(exact).toFixed(2), sinkhornMs: +median(sk).toFixed(1), sinkhornProcessCpuMs: +median(skCpu).toFixed(1), sinkhornIterations: iters, converged: conv, reg, epsScaling, threads, load: (await import('node:os')).loadavg()[0] }));
  }
}
process.exit(0);
