#!/usr/bin/env node
// Run a TypeScript entry in Node without a separate build step:
//
//   node scripts/run-ts.mjs path/to/entry.ts [args...]
//
// The entry is bundled with esbuild (our own sources are bundled; node_modules imports stay
// imports, so native addons such as `webgpu` load from node_modules as usual) into
// node_modules/.cache/wgflow/<hash>.mjs and then imported. The entry sees its own arguments at
// process.argv.slice(2), exactly as if it had been run with `node entry.js args...`.
//
// We always rebuild: esbuild takes tens of milliseconds for this project, and a stale cache is a
// worse failure than a slow start. The output file name is a hash of the entry's absolute path so
// that concurrent runs of different entries do not overwrite each other, and the bundle lives
// under node_modules so that bare imports in it resolve against this project's node_modules.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const USAGE = 'usage: node scripts/run-ts.mjs path/to/entry.ts [args...]';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function main() {
  const [entryArg, ...entryArgs] = process.argv.slice(2);
  if (!entryArg || entryArg === '-h' || entryArg === '--help') {
    console.error(USAGE);
    process.exit(entryArg ? 0 : 2);
  }
  const entry = path.resolve(entryArg);
  if (!existsSync(entry) || !statSync(entry).isFile()) {
    console.error(`run-ts: entry ${JSON.stringify(entryArg)} is not a file (resolved to ${entry}); ${USAGE}`);
    process.exit(2);
  }

  // Imported lazily so that `--help` and a bad path answer without loading esbuild.
  const esbuild = await import('esbuild');

  const cacheDir = path.join(projectRoot, 'node_modules', '.cache', 'wgflow');
  mkdirSync(cacheDir, { recursive: true });
  const hash = createHash('sha256').update(entry).digest('hex').slice(0, 16);
  const outfile = path.join(cacheDir, `${hash}.mjs`);

  let code;
  try {
    const result = await esbuild.build({
      entryPoints: [entry],
      outfile,
      write: false,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      sourcemap: 'inline',
      logLevel: 'silent',
      // Bundled CommonJS dependencies (none today) would call require(); give them one.
      banner: {
        js: "import { createRequire as __wgflowCreateRequire } from 'node:module'; const require = __wgflowCreateRequire(import.meta.url);",
      },
      absWorkingDir: projectRoot,
    });
    code = result.outputFiles[0].contents;
  } catch (err) {
    const messages = err && Array.isArray(err.errors) ? await esbuild.formatMessages(err.errors, { kind: 'error' }) : [String(err)];
    console.error(`run-ts: could not bundle ${entryArg}:\n${messages.join('\n')}`);
    process.exit(1);
  }

  // Write then rename: rename is atomic, so a concurrent run of the same entry (vitest workers,
  // two CLI invocations) never imports a half-written file. The file is left in place because
  // code may legitimately re-read its own module file (e.g. `new Worker(import.meta.url)`).
  const tmp = `${outfile}.${process.pid}.tmp`;
  writeFileSync(tmp, code);
  renameSync(tmp, outfile);

  // The entry reads its arguments from process.argv.slice(2): argv[1] becomes the entry itself.
  process.argv = [process.argv[0], entry, ...entryArgs];
  // Source maps make stack traces point at the .ts sources instead of the bundle.
  if (typeof process.setSourceMapsEnabled === 'function') process.setSourceMapsEnabled(true);

  await import(pathToFileURL(outfile).href);
}

await main();
