/**
 * Runtime acquisition: one call, `createBackend()`, returns a ready WebGPU backend in a browser
 * (navigator.gpu) or in Node (Dawn, the npm package `webgpu`). In Node on a machine without a GPU
 * driver Dawn finds no adapter; we then retry with the SwiftShader Vulkan driver that Debian's
 * Chromium ships (SPEC §1), so tests and CI run real WebGPU on the CPU.
 */
import type { AdapterReport } from './backend';
import { builtin, prepareDawnEnvironment, SWIFTSHADER_ICD_PATHS } from './dawn-env';
import { WebGPUBackend } from './webgpu-backend';

export interface RuntimeOptions {
  /** 'auto' uses navigator.gpu when present, else Node's Dawn. */
  runtime?: 'auto' | 'node' | 'browser';
  powerPreference?: GPUPowerPreference;
  /** Path of a Vulkan ICD JSON to use in Node (default: system driver, then Chromium's SwiftShader). */
  vulkanIcd?: string;
}

export { SWIFTSHADER_ICD_PATHS } from './dawn-env';

const NO_ADAPTER_HELP =
  'no WebGPU adapter found. On Linux without a GPU driver, install Chromium (it ships the SwiftShader ' +
  'Vulkan driver) and the Vulkan loader: `sudo apt-get install -y chromium libvulkan1`; or point ' +
  'VK_ICD_FILENAMES at a Vulkan ICD JSON file.';

export async function createBackend(opts: RuntimeOptions = {}): Promise<WebGPUBackend> {
  const runtime = opts.runtime ?? 'auto';
  if (!['auto', 'node', 'browser'].includes(runtime)) throw new Error(`unknown runtime "${runtime}"; accepted: auto, node, browser`);
  const hasNavigatorGpu = typeof navigator !== 'undefined' && !!(navigator as Navigator & { gpu?: GPU }).gpu;
  if (runtime === 'browser' || (runtime === 'auto' && hasNavigatorGpu)) {
    if (!hasNavigatorGpu) throw new Error('navigator.gpu is missing: this browser or page has no WebGPU (serve the page over http://127.0.0.1, not about:blank; Chromium needs --enable-unsafe-webgpu on Linux)');
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null: ' + NO_ADAPTER_HELP);
    return openDevice(adapter, 'browser');
  }
  const adapter = await nodeAdapter(opts);
  return openDevice(adapter, 'node');
}

const keptInstances: GPU[] = [];

async function nodeAdapter(opts: RuntimeOptions): Promise<GPUAdapter> {
  const moduleName = 'webgpu'; // a variable: bundlers leave Node-only imports out of browser bundles
  const dawn = (await import(/* @vite-ignore */ moduleName)) as { create(o: string[]): GPU; globals: Record<string, unknown> };
  for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const env = process.env;
  if (opts.vulkanIcd) env.VK_ICD_FILENAMES = opts.vulkanIcd;
  // Before the first instance: SwiftShader straight away when there is no GPU, and a private
  // XDG_RUNTIME_DIR, so Vulkan drivers Dawn would reject do not print warnings (engine/dawn-env.ts).
  prepareDawnEnvironment();
  const request = async () => {
    const instance = dawn.create([]);
    // Dawn instances must outlive the process: one collected by the GC tears down driver threads
    // that SwiftShader still uses, which aborts the process later ("futex facility returned…").
    keptInstances.push(instance);
    return instance.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  };
  let adapter = await request();
  if (!adapter && !opts.vulkanIcd) {
    const { existsSync } = builtin<typeof import('node:fs')>('node:fs');
    const icd = SWIFTSHADER_ICD_PATHS.find((p) => existsSync(p));
    if (icd && env.VK_ICD_FILENAMES !== icd) {
      env.VK_ICD_FILENAMES = icd;
      adapter = await request();
    }
  }
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
  return adapter;
}

async function openDevice(adapter: GPUAdapter, runtime: 'node' | 'browser'): Promise<WebGPUBackend> {
  const L = adapter.limits;
  const want = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxStorageBuffersPerShaderStage', 'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupsPerDimension'] as const;
  const requiredLimits: Record<string, number> = {};
  for (const k of want) requiredLimits[k] = L[k];
  const requiredFeatures = (['timestamp-query', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  return new WebGPUBackend(device, describeAdapter(adapter, runtime));
}

export function describeAdapter(adapter: GPUAdapter, runtime: 'node' | 'browser'): AdapterReport {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`.toLowerCase();
  const software = !!info.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|warp|software/.test(text);
  const limits: Record<string, number> = {};
  for (const k in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[k];
    if (typeof v === 'number') limits[k] = v;
  }
  return {
    runtime,
    vendor: info.vendor || 'unknown',
    architecture: info.architecture || 'unknown',
    device: info.device || '',
    description: info.description || '',
    kind: software ? 'software' : 'hardware',
    features: [...adapter.features].map(String).sort(),
    limits,
  };
}

/** One line for logs: `google swiftshader (software, node)`. */
export function adapterSummary(a: AdapterReport): string {
  return `${a.vendor} ${a.architecture}${a.description ? ` [${a.description}]` : ''} (${a.kind}, ${a.runtime})`;
}
