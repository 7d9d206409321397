/**
 * The seam between the tape and the GPU (tinygrad's Device, jax-js's Backend): the tape and the ops
 * speak only this interface, and only the WebGPU backend touches GPUDevice. A kernel arrives as a
 * `KernelSpec` built by kernels/ (WGSL source plus its binding layout); the backend compiles it once
 * per source, and records each dispatch into the current command encoder. Nothing is submitted until
 * `flush()` (end of a training step) or `read()` (a readback), so a whole step is one submit.
 */

/** A GPU buffer owned by the backend; `bytes` is the requested size (the real one may be larger). */
export interface BufferHandle {
  readonly id: number;
  readonly bytes: number;
}

/** How a kernel sees one binding, in binding order (group 0, binding i). */
export type BindingKind = 'read' | 'read_write' | 'uniform';

export interface KernelSpec {
  /** Human name used in labels and error messages, e.g. `matmul[7x13x5]`. */
  readonly name: string;
  /** Complete WGSL source; the pipeline cache is keyed by it. Entry point is `main`. */
  readonly source: string;
  /** Bindings in order; buffers passed to dispatch() must match them one for one. */
  readonly bindings: readonly BindingKind[];
  /** Workgroups to launch (x, y, z). */
  readonly workgroups: readonly [number, number, number];
}

export interface PreparedKernel {
  readonly spec: KernelSpec;
}

/**
 * Counters that benchmarks and tests read. Monotonic: dispatches … pipelinesCompiled, and
 * `buffersCreated` / `bytesAllocated` (every GPU buffer the pool ever created: the allocations
 * total). Gauges: `buffersLive` / `bytesLive` (handed out and not yet freed), `poolBuffers` /
 * `poolBytes` (freed, kept for reuse) and `bindGroupsCached`. A long run whose gauges and
 * allocations total stop moving after warm-up does not leak (tests/memory.test.ts, bench/soak.ts).
 */
export interface Counters {
  dispatches: number;
  submits: number;
  readbacks: number;
  uploads: number;
  pipelinesCompiled: number;
  buffersCreated: number;
  bytesAllocated: number;
  buffersLive: number;
  bytesLive: number;
  poolBuffers: number;
  poolBytes: number;
  /** Bind groups in the backend's cache (bounded: the cache is dropped when it passes its cap). */
  bindGroupsCached: number;
}

export interface AdapterReport {
  runtime: 'node' | 'browser';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** SwiftShader (or any fallback adapter) is a CPU implementation: 'software'. */
  kind: 'software' | 'hardware';
  features: string[];
  limits: Record<string, number>;
}

export interface Backend {
  readonly adapter: AdapterReport;
  readonly counters: Counters;
  /** A buffer of at least `bytes`, from the pool when one fits. Contents are undefined. */
  alloc(bytes: number): BufferHandle;
  /** Returns the buffer to the pool; commands already recorded that read it stay valid. */
  free(buffer: BufferHandle): void;
  /** Uploads host data; ordered after every dispatch recorded so far. */
  write(buffer: BufferHandle, data: ArrayBufferView, byteOffset?: number): void;
  /** Submits pending work and reads `bytes` (default: all) back as float32. */
  read(buffer: BufferHandle, bytes?: number): Promise<Float32Array>;
  /** Same as read() but returns raw 32-bit words (for integer results). */
  readU32(buffer: BufferHandle, bytes?: number): Promise<Uint32Array>;
  /** Compiles (or finds in the cache) the pipeline for a kernel. */
  prepare(spec: KernelSpec): PreparedKernel;
  /** Records one dispatch; `uniforms` (if the spec has a uniform binding) is copied now. */
  dispatch(kernel: PreparedKernel, buffers: readonly BufferHandle[], uniforms?: ArrayBufferView): void;
  /** Submits everything recorded so far as one command buffer (no-op when nothing is pending). */
  flush(): void;
  /** Resolves when the GPU has finished all submitted work; throws GPU errors seen meanwhile. */
  sync(): Promise<void>;
  /** Releases every buffer and the device. */
  destroy(): void;
}

/**
 * The GPU device was lost (driver reset, GPU process crash, out of memory, or destroyed): nothing
 * on it survives, so a trainer cannot continue; the CLI keeps the last checkpoint and says how to
 * resume (cli/tasks.ts). Thrown by every backend call after the loss.
 */
export class DeviceLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceLostError';
  }
}
