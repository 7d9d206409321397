/**
 * Node only: gives the peers (jax-js, tfjs) the `navigator.gpu` they look for, from Dawn (the npm
 * `webgpu` package), on the same Vulkan driver wgflow's engine chose. Call it after wgflow's init():
 * the engine has then installed Dawn's classes as globals and set VK_ICD_FILENAMES to SwiftShader
 * where there is no GPU (engine/runtime.ts), so the peers' adapter is the one wgflow measures on.
 */
const kept: unknown[] = [];

export async function installNodeNavigatorGpu(): Promise<void> {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator?.gpu) return;
  const moduleName = 'webgpu';
  const dawn = (await import(/* @vite-ignore */ moduleName)) as { create(o: string[]): GPU; globals: Record<string, unknown> };
  for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const gpu = dawn.create([]);
  // Like the engine's instances: a Dawn instance collected by the GC tears down SwiftShader threads still in use.
  kept.push(gpu);
  if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu, userAgent: `node ${process.version}` }, configurable: true, writable: true });
}

/**
 * tfjs as one ES module (core, its gradients, the WebGPU backend: a single instance of core), built
 * with esbuild from the packages' ES modules. Why: tfjs-core's `main` is a CommonJS build that
 * registers no gradients and its ES modules use extensionless imports Node cannot load, so Node
 * needs a bundle; the page gets the same one (built once per run, minified) so that both runtimes
 * load the same code. For Node the bundle gets a `require` (the ES modules' Node paths call
 * require('util')).
 */
export async function bundleTfjs(platform: 'node' | 'browser'): Promise<string> {
  const path = await import('node:path');
  const { createRequire } = await import('node:module');
  const esbuild = await import('esbuild');
  const require = createRequire(path.join(process.cwd(), 'package.json'));
  const core = path.dirname(require.resolve('@tensorflow/tfjs-core/package.json'));
  const out = await esbuild.build({
    stdin: {
      contents: "export * from '@tensorflow/tfjs-core';\nimport '@tensorflow/tfjs-core/dist/register_all_gradients';\nimport '@tensorflow/tfjs-backend-webgpu';\n",
      resolveDir: path.dirname(path.dirname(path.dirname(core))),
      loader: 'js',
    },
    bundle: true,
    write: false,
    format: 'esm',
    platform,
    mainFields: ['module', 'main'],
    minify: platform === 'browser',
    logLevel: 'error',
    banner: platform === 'node' ? { js: "import { createRequire as __wgflowCreateRequire } from 'node:module'; const require = __wgflowCreateRequire(import.meta.url);" } : undefined,
  });
  return out.outputFiles[0]!.text;
}

/** The Node loader: the bundle written next to run-ts's (bare imports resolve from node_modules), imported, removed. */
export async function loadTfjsForNode(): Promise<typeof import('@tensorflow/tfjs-core')> {
  const path = await import('node:path');
  const fs = await import('node:fs');
  const { pathToFileURL } = await import('node:url');
  const dir = path.join(process.cwd(), 'node_modules', '.cache', 'wgflow');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `tfjs-peer-${process.pid}.mjs`);
  fs.writeFileSync(file, await bundleTfjs('node'));
  try {
    return (await import(pathToFileURL(file).href)) as typeof import('@tensorflow/tfjs-core');
  } finally {
    fs.rmSync(file, { force: true });
  }
}
