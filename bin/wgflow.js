#!/usr/bin/env node
// The `wgflow` command. Plain JS: it bundles cli/main.ts (TypeScript) with esbuild into
// node_modules/.cache/wgflow/ — only when a source file changed since the last build — and runs it.
// Node 20 cannot run TypeScript itself; esbuild is already a dependency of the project.
//
// WGFLOW_JOBS=path/to/module.ts replaces the trainer registry (cli/jobs.ts) by a module with the
// same exports. It is a test seam (tests/fixtures/cli-fake-jobs.ts), not a user feature.

import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildCached, cacheDir, shortHash } from '../cli/build.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jobsOverride = process.env.WGFLOW_JOBS ? path.resolve(process.env.WGFLOW_JOBS) : undefined;

let bundle;
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

// Stack traces through the bundle's inline source map point at the .ts sources.
if (typeof process.setSourceMapsEnabled === 'function') process.setSourceMapsEnabled(true);
const { main } = await import(pathToFileURL(bundle).href);
const code = await main(process.argv.slice(2), { root, jobsOverride });
// Explicit exit: Dawn (the Node WebGPU addon) can keep the event loop alive after the work is done.
process.exit(code);
