/**
 * Matmul tuning tool (not part of `npm run bench`): times kernel configurations side by side,
 * interleaved, at given shapes. Register tiles are RegConfig objects, workgroup-memory tiles WgConfig
 * objects, named variants strings. Run through bench/run.ts (Node also prints GFLOP per CPU-second):
 *
 *   node scripts/run-ts.mjs bench/run.ts --runtime node|browser|both --tune '{"sizes":[512],"reps":4,
 *     "configs":["reg",{"tm":16,"nv":4,"wgx":8,"wgy":8,"fma":true,"vec4":true},{"tx":8,"ty":8,"tm":8,"nv":2,"vec4":true}]}'
 *
 * Shapes other than cubes: "shapes": [[m, k, n, transA, transB], …].
 */
import type { PageContext } from '../browser/page-context';
import { init } from '../engine';
import { matmulKernel, regKernel, wgmemKernel, type MatmulVariant, type RegConfig, type WgConfig } from '../kernels/matmul';
import { benchMatmulSpecs, median } from './engine-bench';

export interface TuneArgs {
  sizes?: number[];
  shapes?: [number, number, number, boolean, boolean][];
  configs: (RegConfig | WgConfig | MatmulVariant)[];
  reps: number;
}

export default async function tune(args: TuneArgs, ctx?: PageContext) {
  const b = await init({ runtime: typeof navigator !== 'undefined' && 'gpu' in navigator ? 'browser' : 'node' });
  const out: string[] = [];
  const shapes = args.shapes ?? (args.sizes ?? []).map((s) => [s, s, s, false, false] as [number, number, number, boolean, boolean]);
  for (const [m, k, n, transA, transB] of shapes) {
    const a = { m, n, k, transA, transB, offsetA: 0, offsetB: 0 };
    const entries = args.configs.map((c) =>
      typeof c === 'string' ? { name: c, spec: matmulKernel(a, c) } : { name: JSON.stringify(c), spec: 'tx' in c ? wgmemKernel(a, c, 'tunewg') : regKernel(a, c, 'tune') },
    );
    const runs = await benchMatmulSpecs(b, Math.max(m, n, k), entries, { reps: args.reps, targetRepMs: 300 }, 2 * m * n * k);
    entries.forEach((e, i) => {
      const r = runs[i]!;
      const cpu = r.cpuSamples.length ? `; ${median(r.cpuSamples).toFixed(2)} GFLOP per CPU-second` : '';
      const line = `${m}x${k}x${n}${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} ${e.name}: ${median(r.samples).toFixed(2)} GFLOP/s (${r.samples.map((x) => x.toFixed(2)).join(' ')})${cpu}`;
      out.push(line);
      if (ctx) ctx.post(line);
      else console.log(line);
    });
  }
  b.destroy();
  return out;
}
