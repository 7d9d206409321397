#!/usr/bin/env node
// `npm run build` (and `prepack`): the installable package in dist/ — ESM JavaScript by esbuild,
// .d.ts by tsc — so an installed wgflow runs without esbuild or TypeScript.
//
//   dist/index.js, dist/engine.js  the library ('wgflow', 'wgflow/engine'), built together with
//                                   code splitting: both import one shared chunk, so the engine's
//                                   state (the current device) is the same object through either
//                                   entry. Platform neutral (Node and bundlers for the web); npm
//                                   packages and node: built-ins stay imports.
//   dist/cli.js                     the command line (bin/wgflow.js runs it in an installed package)
//   dist/page/entry.js, serve.js    the browser runtime's page bundles and the page runner that loads
//   dist/page/page-runner.js        them (browser/page-runner.ts), prebuilt (the checkout builds them
//                                   on demand instead: cli/runner.ts, browser/run-in-page.ts)
//   dist/types/                     declarations (tsc --emitDeclarationOnly -p tsconfig.build.json)
//
// Why esbuild for the JavaScript and not tsc: the sources use extensionless relative imports
// (moduleResolution "bundler"), which Node's ESM loader cannot follow in tsc's one-file-per-source
// output; a bundle has none left.

import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');

// Node built-ins stay imports everywhere: the engine reaches them behind runtime checks.
const builtinsExternal = {
  name: 'node-builtins-external',
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, external: true }));
  },
};

const common = { absWorkingDir: root, bundle: true, format: 'esm', logLevel: 'warning', legalComments: 'none', charset: 'utf8' };
const requireBanner = "import { createRequire as __wgflowCreateRequire } from 'node:module'; const require = __wgflowCreateRequire(import.meta.url);";

async function main() {
  rmSync(dist, { recursive: true, force: true });
  await esbuild.build({
    ...common,
    entryPoints: { index: 'api/index.ts', engine: 'engine/index.ts' },
    outdir: dist,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    platform: 'neutral',
    target: 'es2022',
    packages: 'external',
    plugins: [builtinsExternal],
  });
  await esbuild.build({
    ...common,
    entryPoints: { cli: 'cli/main.ts' },
    outdir: dist,
    platform: 'node',
    target: 'node20',
    packages: 'external',
    banner: { js: requireBanner },
  });
  await esbuild.build({
    ...common,
    entryPoints: { entry: 'page/entry.ts', serve: 'page/serve.ts', 'page-runner': 'browser/page-runner.ts' },
    outdir: path.join(dist, 'page'),
    platform: 'browser',
    target: 'es2022',
    plugins: [builtinsExternal],
  });
  const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
  if (tsc.status !== 0) throw new Error(`tsc --emitDeclarationOnly failed (exit ${tsc.status})`);
}

main().catch((e) => {
  console.error(`build: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
