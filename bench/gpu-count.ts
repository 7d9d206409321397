/**
 * Counts compute dispatches and queue submits of every engine in this JS realm (wgflow, jax-js,
 * tfjs), by wrapping the WebGPU prototypes: GPUComputePassEncoder.prototype.dispatchWorkgroups /
 * dispatchWorkgroupsIndirect and GPUQueue.prototype.submit. The peers report no such counters, and
 * wgflow's own (backend.counters) would not be comparable evidence, so every engine is counted the
 * same way, at the API boundary.
 *
 * Works in a page (the prototypes are globals) and in Node with Dawn (the `webgpu` package's
 * `globals` put the same classes on globalThis; wgflow's init() and bench/peer-env.ts install them).
 * Only prototypes are patched, never a device: objects created before install() count too. No Node
 * imports here (the page bundles this file).
 */

export interface GpuCounts {
  dispatches: number;
  /** Dispatches issued through dispatchWorkgroupsIndirect (also included in `dispatches`). */
  indirect: number;
  /** queue.submit calls (one call with several command buffers counts once). */
  submits: number;
}

export interface GpuCounter {
  /** Counts so far (a copy). */
  read(): GpuCounts;
  /** Counts since `from` (a read() taken earlier). */
  since(from: GpuCounts): GpuCounts;
  /** Restores the original prototype methods (idempotent); nested counters unwind in reverse order. */
  uninstall(): void;
}

type Proto = Record<string, unknown>;

function protoOf(name: string): Proto | null {
  const ctor = (globalThis as Record<string, unknown>)[name] as { prototype?: Proto } | undefined;
  return ctor?.prototype ?? null;
}

/**
 * Wraps the three methods. Throws when the WebGPU classes are not globals (Node before the `webgpu`
 * globals are installed): a counter that silently counted nothing would report 0 dispatches.
 */
export function installGpuCounter(): GpuCounter {
  const pass = protoOf('GPUComputePassEncoder');
  const queue = protoOf('GPUQueue');
  if (!pass || !queue || typeof pass.dispatchWorkgroups !== 'function' || typeof queue.submit !== 'function') {
    throw new Error('installGpuCounter: GPUComputePassEncoder / GPUQueue are not globals here (in Node, install the webgpu package globals first)');
  }
  const counts: GpuCounts = { dispatches: 0, indirect: 0, submits: 0 };
  const orig = {
    dispatch: pass.dispatchWorkgroups as (...a: unknown[]) => unknown,
    indirect: pass.dispatchWorkgroupsIndirect as ((...a: unknown[]) => unknown) | undefined,
    submit: queue.submit as (...a: unknown[]) => unknown,
  };
  pass.dispatchWorkgroups = function (this: unknown, ...a: unknown[]) {
    counts.dispatches++;
    return orig.dispatch.apply(this, a);
  };
  if (orig.indirect) {
    const ind = orig.indirect;
    pass.dispatchWorkgroupsIndirect = function (this: unknown, ...a: unknown[]) {
      counts.dispatches++;
      counts.indirect++;
      return ind.apply(this, a);
    };
  }
  queue.submit = function (this: unknown, ...a: unknown[]) {
    counts.submits++;
    return orig.submit.apply(this, a);
  };
  let installed = true;
  return {
    read: () => ({ ...counts }),
    since: (f) => ({ dispatches: counts.dispatches - f.dispatches, indirect: counts.indirect - f.indirect, submits: counts.submits - f.submits }),
    uninstall() {
      if (!installed) return;
      installed = false;
      pass.dispatchWorkgroups = orig.dispatch;
      if (orig.indirect) pass.dispatchWorkgroupsIndirect = orig.indirect;
      queue.submit = orig.submit;
    },
  };
}
