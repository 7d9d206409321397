#!/usr/bin/env node
// The `wgflow` command. Plain JS. In an installed package it runs the prebuilt dist/cli.js
// (`npm run build`, run by prepack): no esbuild or TypeScript at run time. In a checkout (cli/main.ts
// is there) it bundles cli/main.ts with esbuild into node_modules/.cache/wgflow/ — only when a
// source file changed since the last build — and runs that, so edits take effect without a build
// step. Node 20 cannot run TypeScript itself.
//
// WGFLOW_JOBS=path/to/module.ts replaces the CLI's method registry (cli/jobs.ts) by a module with
// the same exports. It is a test seam (tests/fixtures/cli-fake-jobs.ts), not a user feature, and
// needs a checkout.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jobsOverride = process.env.WGFLOW_JOBS ? path.resolve(process.env.WGFLOW_JOBS) : undefined;

let bundle;
if (existsSync(path.join(root, 'cli', 'main.ts'))) {
  const { buildCached, cacheDir, shortHash } = await import('../cli/build.mjs');
  try {
    bundle = await buildCached({
      root,
      entry: path.join(root, 'cli', 'main.ts'),
      outfile: path.join(cacheDir(root), `cli-${shortHash(root, jobsOverride ?? '')}.mjs`),
      platform: 'node',
      jobsOverride,
    });
  } catch (err) {
    process.stderr.write(`wgflow: ${err && err.wgflowBuild ? err.message : (err && err.stack) || err}\n`);
    process.exit(1);
  }
} else {
  bundle = path.join(root, 'dist', 'cli.js');
  if (!existsSync(bundle)) {
    process.stderr.write(`wgflow: ${bundle} is missing: this package was not built (run \`npm run build\` in ${root})\n`);
    process.exit(1);
  }
}

// Stack traces through the bundle's inline source map point at the .ts sources.
if (typeof process.setSourceMapsEnabled === 'function') process.setSourceMapsEnabled(true);
const { main } = await import(pathToFileURL(bundle).href);
const code = await main(process.argv.slice(2), { root, jobsOverride });
// Explicit exit: Dawn (the Node WebGPU addon) can keep the event loop alive after the work is done.
process.exit(code);
