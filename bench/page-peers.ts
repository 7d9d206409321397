/**
 * Page entry for `bench/run.ts --peers` / `--profile` in the browser: wgflow, jax-js and tfjs in the
 * same page, on the same adapter (bench/peers-bench.ts); progress lines go to ctx.post. tfjs arrives
 * as prebuilt ES module source in the arguments (bench/peer-env.ts bundleTfjs: the page bundler
 * cannot take the package as published) and is imported from a blob: URL.
 */
import type * as TfNs from '@tensorflow/tfjs-core';
import type { PageContext } from '../browser/page-context';
import { init } from '../engine';
import { runPeersBench, type PeersOptions, type PeersResult } from './peers-bench';

export interface PagePeersArgs {
  opts: PeersOptions;
  /** tfjs as one ES module (null: tfjs not wanted). */
  tfjsSource: string | null;
}

export default async function pagePeers(args: PagePeersArgs, ctx: PageContext): Promise<PeersResult> {
  const b = await init({ runtime: 'browser' });
  const src = args.tfjsSource;
  const loader = src
    ? async () => {
        const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
        try {
          return (await import(/* @vite-ignore */ url)) as typeof TfNs;
        } finally {
          URL.revokeObjectURL(url);
        }
      }
    : null;
  try {
    return await runPeersBench(b, args.opts, (text) => ctx.post({ type: 'progress', text }), loader);
  } finally {
    b.destroy();
  }
}
