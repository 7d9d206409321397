/**
 * Per-kernel GPU time from timestamp queries (issue 10 item 7), without touching the engine.
 *
 * 1. `captureDispatches(fn)` records every dispatch `fn` issues at the WebGPU API boundary (the
 *    GPUComputePassEncoder prototype: the pipeline, the bind groups with their dynamic offsets and
 *    the workgroup counts in force at each dispatchWorkgroups). The engine keeps one compute pass
 *    open for a whole step, so the step's own passes cannot carry per-kernel timestamps.
 * 2. `timeDispatches(device, captured)` replays them in order, each in a compute pass of its own
 *    with beginning/end-of-pass timestamp writes, all in one submit, and reads the query set back.
 *    Call it right after the captured step has finished and before anything else is recorded:
 *    bind groups then still point at the step's buffers and the engine's uniform arena still holds
 *    the step's uniforms (the values computed are garbage by then; the work is the same).
 *
 * Needs the device to have been created with 'timestamp-query' (wgflow requests it when the
 * adapter offers it; SwiftShader does). In Chromium timestamps are quantised (100 µs) unless it runs
 * with --enable-webgpu-developer-features, which bench/run.ts passes for --profile.
 * No Node imports here (the page bundles this file).
 */
import { median } from './engine-bench';

export interface CapturedDispatch {
  /** The pipeline's label (wgflow labels pipelines with the kernel name). */
  label: string;
  pipeline: GPUComputePipeline;
  groups: { index: number; group: GPUBindGroup | null; offsets: number[] }[];
  workgroups: [number, number, number];
}

export interface KernelTime {
  index: number;
  kernel: string;
  workgroups: readonly number[];
  /** Median GPU ms over the replays (end-of-pass minus beginning-of-pass timestamp). */
  ms: number;
  samples: number[];
}

type Proto = Record<string, (...a: unknown[]) => unknown>;

/** Runs `fn` while recording its dispatches (indirect dispatches are refused: they cannot be replayed here). */
export function captureDispatches<T>(fn: () => T): { result: T; dispatches: CapturedDispatch[] } {
  const g = globalThis as unknown as { GPUComputePassEncoder?: { prototype: Proto } };
  const proto = g.GPUComputePassEncoder?.prototype;
  if (!proto) throw new Error('captureDispatches: GPUComputePassEncoder is not a global here');
  const state = new WeakMap<object, { pipeline: GPUComputePipeline | null; groups: Map<number, { group: GPUBindGroup | null; offsets: number[] }> }>();
  const get = (pass: object) => {
    let s = state.get(pass);
    if (!s) state.set(pass, (s = { pipeline: null, groups: new Map() }));
    return s;
  };
  const out: CapturedDispatch[] = [];
  const orig = { setPipeline: proto.setPipeline!, setBindGroup: proto.setBindGroup!, dispatch: proto.dispatchWorkgroups!, indirect: proto.dispatchWorkgroupsIndirect as Proto[string] | undefined };
  proto.setPipeline = function (this: object, ...a: unknown[]) {
    get(this).pipeline = a[0] as GPUComputePipeline;
    return orig.setPipeline.apply(this, a);
  };
  proto.setBindGroup = function (this: object, ...a: unknown[]) {
    const offs = a[2];
    // setBindGroup(index, group, offsets[]) or (index, group, Uint32Array, start, length)
    const offsets = offs == null ? [] : Array.isArray(offs) ? [...(offs as number[])] : [...(offs as Uint32Array).subarray(a[3] as number, (a[3] as number) + (a[4] as number))];
    get(this).groups.set(a[0] as number, { group: a[1] as GPUBindGroup | null, offsets });
    return orig.setBindGroup.apply(this, a);
  };
  proto.dispatchWorkgroups = function (this: object, ...a: unknown[]) {
    const s = get(this);
    if (s.pipeline) {
      out.push({
        label: s.pipeline.label || '(unlabelled)',
        pipeline: s.pipeline,
        groups: [...s.groups].map(([index, v]) => ({ index, ...v })),
        workgroups: [a[0] as number, (a[1] as number | undefined) ?? 1, (a[2] as number | undefined) ?? 1],
      });
    }
    return orig.dispatch.apply(this, a);
  };
  if (orig.indirect) {
    proto.dispatchWorkgroupsIndirect = function () {
      throw new Error('captureDispatches: an indirect dispatch cannot be replayed for timing');
    };
  }
  try {
    return { result: fn(), dispatches: out };
  } finally {
    proto.setPipeline = orig.setPipeline;
    proto.setBindGroup = orig.setBindGroup;
    proto.dispatchWorkgroups = orig.dispatch;
    if (orig.indirect) proto.dispatchWorkgroupsIndirect = orig.indirect;
  }
}

/**
 * Replays `dispatches` `reps` times (one submit per replay, one pass per dispatch) and returns each
 * dispatch's median GPU time. Throws when the device lacks 'timestamp-query'.
 */
export async function timeDispatches(device: GPUDevice, dispatches: readonly CapturedDispatch[], reps = 5): Promise<KernelTime[]> {
  if (!device.features.has('timestamp-query')) throw new Error("this device has no 'timestamp-query'");
  const n = dispatches.length;
  if (n === 0) return [];
  if (2 * n > 4096) throw new Error(`timeDispatches: ${n} dispatches exceed one query set (2048)`);
  const querySet = device.createQuerySet({ type: 'timestamp', count: 2 * n });
  const resolve = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const samples: number[][] = dispatches.map(() => []);
  try {
    for (let r = 0; r < reps; r++) {
      const readback = device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const enc = device.createCommandEncoder();
      dispatches.forEach((d, i) => {
        const pass = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
        pass.setPipeline(d.pipeline);
        for (const g of d.groups) pass.setBindGroup(g.index, g.group, g.offsets);
        pass.dispatchWorkgroups(...d.workgroups);
        pass.end();
      });
      enc.resolveQuerySet(querySet, 0, 2 * n, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, readback, 0, 16 * n);
      device.queue.submit([enc.finish()]);
      await readback.mapAsync(GPUMapMode.READ);
      const t = new BigInt64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      readback.destroy();
      for (let i = 0; i < n; i++) samples[i]!.push(Number(t[2 * i + 1]! - t[2 * i]!) / 1e6);
    }
  } finally {
    querySet.destroy();
    resolve.destroy();
  }
  return dispatches.map((d, i) => ({ index: i, kernel: d.label, workgroups: d.workgroups, ms: median(samples[i]!), samples: samples[i]! }));
}
