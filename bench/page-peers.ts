/**
 * Page entry for `bench/run.ts --peers` / `--profile` in the browser: wgflow, jax-js and tfjs in the
 * same page, on the same adapter (bench/peers-bench.ts); progress lines go to ctx.post.
 */
import type { PageContext } from '../browser/page-context';
import { init } from '../engine';
import { runPeersBench, type PeersOptions, type PeersResult } from './peers-bench';

export default async function pagePeers(args: PeersOptions | null, ctx: PageContext): Promise<PeersResult> {
  const b = await init({ runtime: 'browser' });
  try {
    return await runPeersBench(b, args ?? {}, (text) => ctx.post({ type: 'progress', text }));
  } finally {
    b.destroy();
  }
}
