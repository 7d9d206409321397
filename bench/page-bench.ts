/**
 * Page entry for bench/run.ts --runtime browser: runs the shared benchmark body (bench/engine-bench.ts)
 * on navigator.gpu inside headless Chromium and returns its result; progress lines go to ctx.post.
 */
import type { PageContext } from '../browser/page-context';
import { init } from '../engine';
import { runEngineBench, type EngineBenchOptions, type EngineBenchResult } from './engine-bench';

export default async function pageBench(args: EngineBenchOptions | null, ctx: PageContext): Promise<EngineBenchResult> {
  const b = await init({ runtime: 'browser' });
  try {
    return await runEngineBench(b, args ?? {}, (m) => ctx.post(m));
  } finally {
    b.destroy();
  }
}
