/**
 * Bundle a TypeScript entry into one ESM file that a browser page can import.
 *
 * Page code is our own TypeScript plus browser-safe dependencies; everything is bundled into one
 * file so the static server only has to serve that file. Source maps are inlined so the bundle is
 * self-describing: `runInBrowser` reads the map back out of it to translate page stack traces to
 * .ts locations (V8 does not apply source maps to `error.stack` itself).
 */
import { builtinModules } from 'node:module';
import path from 'node:path';
// Loaded when a bundle is made, not when this module is: an installed wgflow runs prebuilt page
// bundles (RunOptions.bundled) and needs no esbuild.
import type * as esbuild from 'esbuild';
const loadEsbuild = () => import('esbuild');

export interface BundleOptions {
  /** Minify the output (smaller, harder to debug). Default false. */
  minify?: boolean;
  /** Compile-time constants, as esbuild's `define` (values are JS source text). */
  define?: Record<string, string>;
  /** Directory that relative entry paths and source-map paths are resolved against. Default process.cwd(). */
  cwd?: string;
}

/** Node built-ins by every name an import can use: `fs`, `fs/promises`, `node:fs`, `node:test`. */
const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => (m.startsWith('node:') ? [m] : [m, `node:${m}`])));

function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || NODE_BUILTINS.has(specifier);
}

/**
 * Returns the JS source of an ESM bundle of `entry` for the browser (es2022, inline source map).
 *
 * Fails with a message naming the whole import chain (entry → … → module → `node:fs`) when
 * anything the entry imports statically pulls in a Node built-in, because esbuild's own error
 * names only the last importer, which is rarely the file you need to change. Dynamic
 * `import('node:…')` is left in place (external): it is the usual way to reach Node-only code
 * behind a runtime check.
 */
export async function bundleForBrowser(entry: string, opts: BundleOptions = {}): Promise<string> {
  const cwd = path.resolve(opts.cwd ?? process.cwd());
  const entryPath = path.resolve(cwd, entry);
  const builtinHits: { specifier: string; importer: string }[] = [];

  // Intercept Node built-ins: keep them out of the bundle (as externals) so the build completes
  // and the metafile gives us the import graph for the error message. A bare `fs` that a package
  // maps away for the browser (package.json "browser": {"fs": false}) or that a polyfill package
  // provides resolves normally and is not an error.
  const builtinGuard: esbuild.Plugin = {
    name: 'wgflow-no-node-builtins',
    setup(build) {
      build.onResolve({ filter: /^[a-z_:][a-z0-9_/:.-]*$/ }, async (args) => {
        if (!isNodeBuiltin(args.path) || args.pluginData?.wgflowSkip) return undefined;
        if (!args.path.startsWith('node:')) {
          const viaPackages = await build.resolve(args.path, {
            importer: args.importer,
            resolveDir: args.resolveDir,
            kind: args.kind,
            pluginData: { wgflowSkip: true },
          });
          // A package's browser map may send a built-in to `false` (tfjs-core: "util": false):
          // esbuild then resolves it to an empty module under a non-file path, which a plugin may
          // not hand back; leave that case to esbuild's own resolver, which applies the map.
          if (viaPackages.errors.length === 0) return path.isAbsolute(viaPackages.path) ? viaPackages : undefined;
        }
        // `await import('node:fs')` behind a runtime check is how shared code (engine/runtime.ts)
        // reaches Node-only APIs; it stays a dynamic import and fails only if executed in a page.
        if (args.kind !== 'dynamic-import') builtinHits.push({ specifier: args.path, importer: args.importer });
        return { path: args.path, external: true };
      });
    },
  };

  const esbuild = await loadEsbuild();
  let result: esbuild.BuildResult<{ write: false; metafile: true }>;
  try {
    result = await esbuild.build({
      entryPoints: [entryPath],
      absWorkingDir: cwd,
      bundle: true,
      write: false,
      metafile: true,
      platform: 'browser',
      format: 'esm',
      target: 'es2022',
      sourcemap: 'inline',
      minify: opts.minify ?? false,
      define: opts.define,
      logLevel: 'silent',
      plugins: [builtinGuard],
      // Never written (write: false); it fixes where source-map paths are relative to: `cwd`,
      // so mapped stack frames read like `tests/fixtures/page-throw.ts:3:9`.
      outfile: path.join(cwd, 'bundle.js'),
    });
  } catch (err) {
    throw new Error(`bundleForBrowser: could not bundle ${entry}:\n${await formatEsbuildFailure(err)}`);
  }

  if (builtinHits.length > 0) {
    const lines = builtinHits.map((hit) => {
      const chain = importChain(result.metafile, cwd, entryPath, hit.importer);
      return `  ${[...chain, hit.specifier].join(' → ')}`;
    });
    throw new Error(
      `bundleForBrowser: ${entry} cannot run in a browser: it imports Node built-in module(s):\n` +
        `${[...new Set(lines)].join('\n')}\n` +
        'Move the Node-only code behind a separate entry (or inject it from the Node side) so page code never imports it.',
    );
  }

  const out = result.outputFiles.find((f) => f.path.endsWith('.js'));
  if (!out) throw new Error(`bundleForBrowser: esbuild produced no JS output for ${entry}`);
  return out.text;
}

/** Shortest import path from the entry to `target` in the metafile graph, as display paths. */
function importChain(meta: esbuild.Metafile, cwd: string, entryPath: string, target: string): string[] {
  const key = (abs: string) => path.relative(cwd, abs).split(path.sep).join('/');
  const start = key(entryPath);
  const goal = key(target);
  const prev = new Map<string, string | null>([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const cur = queue.shift()!;
    if (cur === goal) break;
    for (const imp of meta.inputs[cur]?.imports ?? []) {
      if (imp.external || prev.has(imp.path)) continue;
      prev.set(imp.path, cur);
      queue.push(imp.path);
    }
  }
  if (!prev.has(goal)) return [start, '…', goal];
  const chain: string[] = [];
  for (let node: string | null | undefined = goal; node != null; node = prev.get(node)) chain.unshift(node);
  return chain;
}

async function formatEsbuildFailure(err: unknown): Promise<string> {
  const errors = (err as { errors?: esbuild.Message[] })?.errors;
  if (Array.isArray(errors) && errors.length > 0) {
    const formatted = await (await loadEsbuild()).formatMessages(errors, { kind: 'error', color: false });
    return formatted.join('\n').trimEnd();
  }
  return String(err);
}
