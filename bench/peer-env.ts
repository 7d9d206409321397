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
 * tfjs for Node: tfjs-core's `main` is a CommonJS build that registers no gradients, and the
 * packages' ES modules use extensionless imports that Node cannot load. So we bundle the ES modules
 * (core, its gradients, the WebGPU backend: one instance of core for all) with esbuild into
 * node_modules/.cache/wgflow and import that.
 */
export async function loadTfjsForNode(): Promise<typeof import('@tensorflow/tfjs-core')> {
  const path = await import('node:path');
  const { createRequire } = await import('node:module');
  const { pathToFileURL } = await import('node:url');
  const esbuild = await import('esbuild');
  const require = createRequire(path.join(process.cwd(), 'package.json'));
  const root = path.dirname(path.dirname(path.dirname(require.resolve('@tensorflow/tfjs-core/package.json'))));
  const out = path.join(root, '.cache', 'wgflow', `tfjs-peer-${process.pid}.mjs`);
  await esbuild.build({
    stdin: {
      contents: "export * from '@tensorflow/tfjs-core';\nimport '@tensorflow/tfjs-core/dist/register_all_gradients';\nimport '@tensorflow/tfjs-backend-webgpu';\n",
      resolveDir: path.dirname(root),
      loader: 'js',
    },
    bundle: true,
    format: 'esm',
    platform: 'node',
    mainFields: ['module', 'main'],
    outfile: out,
    logLevel: 'error',
    // The ES modules' own Node paths call require('util') etc.; give the ESM bundle a require.
    banner: { js: "import { createRequire as __wgflowCreateRequire } from 'node:module'; const require = __wgflowCreateRequire(import.meta.url);" },
  });
  const fs = await import('node:fs');
  try {
    return (await import(pathToFileURL(out).href)) as typeof import('@tensorflow/tfjs-core');
  } finally {
    fs.rmSync(out, { force: true });
  }
}
