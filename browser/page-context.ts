/**
 * Page-side contract for entries run by `runInBrowser` (browser/run-in-page.ts).
 *
 * An entry is a module whose default export is `async (args, ctx) => result`. This file is safe
 * to import from page code: it uses only browser globals and has no Node imports.
 */
import type { AdapterReport } from '../engine/backend';
import { describeAdapter } from '../engine/runtime';

/** What the host hands the entry besides its args. */
export interface PageContext {
  /**
   * Sends `msg` to the host's `onMessage`, in call order. Fire-and-forget: messages are batched
   * and posted one request at a time, so frequent calls (progress at 10/s or more) are cheap.
   * `msg` must be JSON-like; typed arrays and ArrayBuffers anywhere inside it (PNG bytes,
   * samples) arrive on the host as typed arrays of the same kind, and NaN/±Infinity survive.
   */
  post(msg: unknown): void;
}

/** The shape of an entry module's default export. */
export type PageEntry<A = unknown, R = unknown> = (args: A, ctx: PageContext) => R | Promise<R>;

/** The adapter facts reported: the engine's one type (engine/backend.ts), for Node and page alike. */
export type { AdapterReport } from '../engine/backend';

/** requestAdapter() may never settle (Chromium with Vulkan flags on a machine without a GPU driver). */
export const DEFAULT_ADAPTER_TIMEOUT_MS = 20_000;

/**
 * navigator.gpu.requestAdapter() with a deadline and errors that say what to do, instead of a
 * page that hangs or a null that surfaces later as "cannot read properties of null".
 */
export async function requestAdapterOrThrow(
  options?: GPURequestAdapterOptions,
  timeoutMs: number = DEFAULT_ADAPTER_TIMEOUT_MS,
): Promise<GPUAdapter> {
  if (typeof navigator === 'undefined' || !navigator.gpu) {
    throw new Error(
      'navigator.gpu is missing: WebGPU needs a secure context (http://127.0.0.1, not about:blank or file://) and Chromium started with --enable-unsafe-webgpu',
    );
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `navigator.gpu.requestAdapter() did not settle within ${timeoutMs} ms; Chromium's GPU flags on a machine without a working Vulkan GPU driver do this — run with gpu: false (SwiftShader)`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    const adapter = await Promise.race([navigator.gpu.requestAdapter(options), timeout]);
    if (!adapter) {
      throw new Error('navigator.gpu.requestAdapter() returned null: no WebGPU adapter (is SwiftShader/Vulkan available to Chromium?)');
    }
    return adapter;
  } finally {
    clearTimeout(timer);
  }
}

/** The engine's report of `adapter` (requests one if none given): info, software/hardware, features, limits. */
export async function reportAdapter(adapter?: GPUAdapter): Promise<AdapterReport> {
  return describeAdapter(adapter ?? (await requestAdapterOrThrow()), 'browser');
}
