// Types of cli/build.mjs (plain JS so that bin/wgflow.js can use it before anything is compiled).
export interface BuildCachedOptions {
  root: string;
  entry: string;
  outfile: string;
  platform: 'node' | 'browser';
  jobsOverride?: string;
  key?: string;
}
export declare function buildCached(opts: BuildCachedOptions): Promise<string>;
export declare function shortHash(...parts: string[]): string;
export declare function cacheDir(root: string): string;
export declare function wgflowPlugin(root: string, opts?: { jobsOverride?: string; browser?: boolean }): unknown;
