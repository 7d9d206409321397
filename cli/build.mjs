// Build helpers shared by bin/wgflow.js (plain JS, bundles the CLI for Node) and the CLI itself
// (bundles the page entries for Chromium). Plain JS on purpose: bin/wgflow.js must run before any
// TypeScript has been compiled.
//
// Caching: a bundle is rebuilt only when one of the files it was built from changed (size or
// mtime), or when the esbuild version or build key changed. The check is a stat() per input file,
// a few milliseconds, so `wgflow --help` starts fast from a warm cache and a fresh clone builds on
// first use.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const NODE_BUILTIN = /^(node:|(assert|buffer|child_process|cluster|crypto|dgram|dns|events|fs|fs\/promises|http|http2|https|module|net|os|path|perf_hooks|process|querystring|readline|stream|string_decoder|timers|tls|tty|url|util|v8|vm|worker_threads|zlib)$)/;

/**
 * esbuild plugin: the WGFLOW_JOBS test seam (replaces cli/jobs.ts by another module exporting the
 * same API, e.g. a fake trainer for tests) and, for the browser, Node built-ins left as imports.
 */
export function wgflowPlugin(root, opts = {}) {
  const jobsFile = path.join(root, 'cli', 'jobs.ts');
  return {
    name: 'wgflow',
    setup(build) {
      if (opts.jobsOverride) {
        build.onResolve({ filter: /^\.\.?\// }, (args) => {
          const target = path.resolve(args.resolveDir, args.path).replace(/\.(ts|js|mjs)$/, '');
          return target === jobsFile.replace(/\.ts$/, '') ? { path: path.resolve(opts.jobsOverride) } : undefined;
        });
      }
      if (opts.browser) {
        // Node built-ins stay imports: dynamic `import('node:fs')` behind a runtime check is how the
        // engine reaches Node APIs. browser/bundle.ts rejects static ones when the page is loaded.
        build.onResolve({ filter: NODE_BUILTIN }, (args) => ({ path: args.path, external: true }));
      }
    },
  };
}

function stampOk(outfile, stampFile, key, esbuildVersion) {
  if (!existsSync(outfile) || !existsSync(stampFile)) return false;
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
  } catch {
    return false;
  }
  if (stamp.key !== key || (esbuildVersion && stamp.esbuild !== esbuildVersion)) return false;
  for (const [file, size, mtime] of stamp.inputs) {
    let st;
    try {
      st = statSync(file);
    } catch {
      return false;
    }
    if (st.size !== size || st.mtimeMs !== mtime) return false;
  }
  return true;
}

/**
 * Bundles `entry` into `outfile` unless an up-to-date build is there. Returns the output path.
 * opts: { root, entry, outfile, platform: 'node'|'browser', jobsOverride?, key? }.
 */
export async function buildCached(opts) {
  const { root, entry, outfile, platform } = opts;
  const stampFile = `${outfile}.stamp.json`;
  const key = JSON.stringify({ entry, platform, jobsOverride: opts.jobsOverride ?? null, key: opts.key ?? null, version: 4 });
  if (stampOk(outfile, stampFile, key, null)) return outfile;

  const esbuild = await import('esbuild');
  const browser = platform === 'browser';
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      absWorkingDir: root,
      bundle: true,
      write: false,
      metafile: true,
      outfile,
      platform,
      format: 'esm',
      target: browser ? 'es2022' : 'node20',
      packages: browser ? undefined : 'external',
      sourcemap: 'inline',
      sourcesContent: false,
      logLevel: 'silent',
      plugins: [wgflowPlugin(root, { jobsOverride: opts.jobsOverride, browser })],
      banner: browser
        ? undefined
        : { js: "import { createRequire as __wgflowCreateRequire } from 'node:module'; const require = __wgflowCreateRequire(import.meta.url);" },
    });
  } catch (err) {
    const messages = err && Array.isArray(err.errors) ? await esbuild.formatMessages(err.errors, { kind: 'error', color: false }) : [String(err)];
    const e = new Error(`could not bundle ${path.relative(root, entry)}:\n${messages.join('\n').trimEnd()}`);
    e.wgflowBuild = true;
    throw e;
  }
  const out = result.outputFiles.find((f) => f.path.endsWith('.js') || f.path.endsWith('.mjs'));
  mkdirSync(path.dirname(outfile), { recursive: true });
  // Write then rename (atomic): concurrent runs never import a half-written bundle.
  const tmp = `${outfile}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, out.contents);
  renameSync(tmp, outfile);
  const inputs = [];
  for (const rel of Object.keys(result.metafile.inputs)) {
    if (rel.includes(':')) continue; // virtual (namespaced) modules
    const file = path.resolve(root, rel);
    try {
      const st = statSync(file);
      inputs.push([file, st.size, st.mtimeMs]);
    } catch {
      /* vanished meanwhile: the next run rebuilds */
    }
  }
  const stamp = { key, esbuild: esbuild.version, inputs };
  const tmpStamp = `${stampFile}.${process.pid}.tmp`;
  writeFileSync(tmpStamp, JSON.stringify(stamp));
  renameSync(tmpStamp, stampFile);
  return outfile;
}

/** A short stable hash, for cache file names. */
export function shortHash(...parts) {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 12);
}

/** node_modules/.cache/wgflow under `root`: bare imports in bundles there resolve against root's node_modules. */
export function cacheDir(root) {
  return path.join(root, 'node_modules', '.cache', 'wgflow');
}
