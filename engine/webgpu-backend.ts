/**
 * The WebGPU implementation of Backend. Design rules, from SPEC §6 (a small step is bound by
 * dispatch and submit count):
 *  - every dispatch is recorded into one open command encoder (one compute pass kept open across
 *    dispatches); `flush()` submits it, so a training step is one `queue.submit`;
 *  - pipelines are cached by WGSL source, bind groups by (pipeline, buffers, uniform slot);
 *  - buffers come from a size-class pool; a buffer freed while recorded commands still read it may
 *    be handed out again at once, because later dispatches in the same queue run after them;
 *  - uploads and uniforms keep queue order: a write while commands are pending goes through a
 *    staging copy inside the encoder; uniforms live in a per-submit arena written just before submit.
 */
import { DeviceLostError, type AdapterReport, type Backend, type BufferHandle, type Counters, type KernelSpec, type PreparedKernel } from './backend';

const UNIFORM_SLOT = 256; // minUniformBufferOffsetAlignment on every adapter we target
const ARENA_SLOTS = 512;

interface GpuBuffer extends BufferHandle {
  readonly gpu: GPUBuffer;
  readonly capacity: number;
}

interface Prepared extends PreparedKernel {
  readonly id: number;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly uniformIndex: number;
}

/** Pool size classes: powers of two from 256 B, so reuse is frequent and waste below 2×. */
function sizeClass(bytes: number): number {
  let c = 256;
  while (c < bytes) c *= 2;
  return c;
}

export class WebGPUBackend implements Backend {
  readonly counters: Counters = {
    dispatches: 0, submits: 0, readbacks: 0, uploads: 0, pipelinesCompiled: 0,
    buffersCreated: 0, bytesAllocated: 0, buffersLive: 0, bytesLive: 0, poolBuffers: 0, poolBytes: 0, bindGroupsCached: 0,
  };
  private nextId = 1;
  private readonly pool = new Map<number, GpuBuffer[]>();
  private readonly pipelines = new Map<string, Prepared>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private pendingDispatches = 0;
  private readonly recentKernels: string[] = [];
  private readonly stagingToDestroy: GPUBuffer[] = [];
  private readonly arena: GPUBuffer;
  private readonly arenaHost = new Uint8Array(UNIFORM_SLOT * ARENA_SLOTS);
  private arenaUsed = 0;
  private errors: string[] = [];
  private lost: string | null = null;
  private destroyed = false;

  constructor(readonly device: GPUDevice, readonly adapter: AdapterReport) {
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.errors.push(`${ev.error.message} (recent kernels: ${this.recentKernels.join(', ') || 'none'})`);
    };
    void device.lost.then((info) => {
      if (!this.destroyed) this.lost = `GPU device lost (${info.reason}): ${info.message}; last kernels: ${this.recentKernels.join(', ')}`;
    });
    this.arena = device.createBuffer({ label: 'uniform-arena', size: this.arenaHost.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  }

  /** Throws the first GPU error seen since the last check, naming the kernels that ran. */
  private check(): void {
    if (this.lost) throw new DeviceLostError(this.lost);
    if (this.errors.length) {
      const e = this.errors;
      this.errors = [];
      throw new Error(`WebGPU error: ${e.join('\n')}`);
    }
    if (this.destroyed) throw new Error('the backend was destroyed; acquire a new one with createBackend()');
  }

  alloc(bytes: number): BufferHandle {
    if (!(bytes > 0) || !Number.isFinite(bytes)) throw new RangeError(`alloc: bytes must be a positive number, got ${bytes}`);
    const cls = sizeClass(bytes);
    const max = this.device.limits.maxStorageBufferBindingSize;
    if (cls > max && bytes > max) throw new RangeError(`alloc: ${bytes} bytes exceeds this adapter's maxStorageBufferBindingSize (${max})`);
    const free = this.pool.get(cls);
    let buf = free?.pop();
    if (buf) {
      this.counters.poolBuffers--;
      this.counters.poolBytes -= cls;
    } else {
      const capacity = Math.min(cls, Math.max(max, bytes));
      const gpu = this.device.createBuffer({
        size: capacity,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      buf = { id: this.nextId++, bytes: capacity, gpu, capacity };
      this.counters.buffersCreated++;
      this.counters.bytesAllocated += capacity;
    }
    this.counters.buffersLive++;
    this.counters.bytesLive += buf.capacity;
    return { ...buf, bytes } as GpuBuffer;
  }

  free(buffer: BufferHandle): void {
    const b = buffer as GpuBuffer;
    const cls = b.capacity;
    let list = this.pool.get(cls);
    if (!list) this.pool.set(cls, (list = []));
    list.push(b);
    this.counters.buffersLive--;
    this.counters.bytesLive -= cls;
    this.counters.poolBuffers++;
    this.counters.poolBytes += cls;
  }

  write(buffer: BufferHandle, data: ArrayBufferView, byteOffset = 0): void {
    this.check();
    const b = buffer as GpuBuffer;
    const n = data.byteLength;
    if (byteOffset + n > b.capacity) throw new RangeError(`write: ${n} bytes at offset ${byteOffset} overflow a ${b.capacity}-byte buffer`);
    this.counters.uploads++;
    const src = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, n);
    if (!this.encoder) {
      // Nothing pending: a queue write is ordered correctly and costs no copy command.
      this.device.queue.writeBuffer(b.gpu, byteOffset, src);
      return;
    }
    // Commands are pending: copy through a staging buffer inside the encoder to keep order.
    const size = Math.ceil(n / 4) * 4;
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(src);
    staging.unmap();
    this.endPass();
    this.encoder.copyBufferToBuffer(staging, 0, b.gpu, byteOffset, size);
    this.stagingToDestroy.push(staging);
  }

  prepare(spec: KernelSpec): PreparedKernel {
    const hit = this.pipelines.get(spec.source);
    if (hit) return { ...hit, spec };
    const module = this.device.createShaderModule({ label: spec.name, code: spec.source });
    // An explicit layout from the spec, not 'auto': 'auto' drops bindings the shader never reads,
    // and the dispatching code would then bind one buffer too many.
    const layout = this.device.createBindGroupLayout({
      label: spec.name,
      entries: spec.bindings.map((kind, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: kind === 'uniform' ? 'uniform' : kind === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
    const pipeline = this.device.createComputePipeline({
      label: spec.name,
      layout: this.device.createPipelineLayout({ label: spec.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    this.counters.pipelinesCompiled++;
    const p: Prepared = { id: this.pipelines.size + 1, spec, pipeline, layout, uniformIndex: spec.bindings.indexOf('uniform') };
    this.pipelines.set(spec.source, p);
    return p;
  }

  dispatch(kernel: PreparedKernel, buffers: readonly BufferHandle[], uniforms?: ArrayBufferView): void {
    this.check();
    const k = kernel as Prepared;
    const spec = k.spec;
    const storageCount = spec.bindings.filter((b) => b !== 'uniform').length;
    if (buffers.length !== storageCount) {
      throw new Error(`dispatch ${spec.name}: kernel has ${storageCount} storage bindings, got ${buffers.length} buffers`);
    }
    if ((k.uniformIndex >= 0) !== (uniforms !== undefined)) {
      throw new Error(`dispatch ${spec.name}: uniforms ${uniforms ? 'given to a kernel without' : 'missing for a kernel with'} a uniform binding`);
    }
    const [x, y, z] = spec.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    let slot = -1;
    if (uniforms) {
      if (uniforms.byteLength > UNIFORM_SLOT) throw new Error(`dispatch ${spec.name}: uniforms over ${UNIFORM_SLOT} bytes`);
      if (this.arenaUsed === ARENA_SLOTS) this.flush();
      slot = this.arenaUsed++;
      this.arenaHost.set(new Uint8Array(uniforms.buffer, uniforms.byteOffset, uniforms.byteLength), slot * UNIFORM_SLOT);
    }
    let key = `${k.id}|${slot}`;
    for (const b of buffers) key += `|${b.id}`;
    let group = this.bindGroups.get(key);
    if (!group) {
      const entries: GPUBindGroupEntry[] = [];
      let bi = 0;
      spec.bindings.forEach((kind, i) => {
        if (kind === 'uniform') entries.push({ binding: i, resource: { buffer: this.arena, offset: slot * UNIFORM_SLOT, size: UNIFORM_SLOT } });
        else entries.push({ binding: i, resource: { buffer: (buffers[bi++] as GpuBuffer).gpu } });
      });
      group = this.device.createBindGroup({ label: spec.name, layout: k.layout, entries });
      if (this.bindGroups.size > 8192) this.bindGroups = new Map();
      this.bindGroups.set(key, group);
      this.counters.bindGroupsCached = this.bindGroups.size;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    this.pass.setPipeline(k.pipeline);
    this.pass.setBindGroup(0, group);
    this.pass.dispatchWorkgroups(x, y, z);
    this.pendingDispatches++;
    this.counters.dispatches++;
    this.recentKernels.push(spec.name);
    if (this.recentKernels.length > 8) this.recentKernels.shift();
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  flush(): void {
    this.check();
    if (!this.encoder) return;
    this.endPass();
    if (this.arenaUsed > 0) {
      this.device.queue.writeBuffer(this.arena, 0, this.arenaHost, 0, this.arenaUsed * UNIFORM_SLOT);
      this.arenaUsed = 0;
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.pendingDispatches = 0;
    this.counters.submits++;
    for (const s of this.stagingToDestroy.splice(0)) s.destroy();
  }

  async read(buffer: BufferHandle, bytes?: number): Promise<Float32Array> {
    return new Float32Array(await this.readRaw(buffer, bytes));
  }

  async readU32(buffer: BufferHandle, bytes?: number): Promise<Uint32Array> {
    return new Uint32Array(await this.readRaw(buffer, bytes));
  }

  private async readRaw(buffer: BufferHandle, bytes?: number): Promise<ArrayBuffer> {
    this.check();
    const b = buffer as GpuBuffer;
    const n = Math.ceil((bytes ?? b.bytes) / 4) * 4;
    const staging = this.device.createBuffer({ size: n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    this.endPass();
    this.encoder.copyBufferToBuffer(b.gpu, 0, staging, 0, n);
    this.flush();
    this.counters.readbacks++;
    await this.lostAware(politeWait(() => staging.mapAsync(GPUMapMode.READ)));
    const out = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    this.check();
    return out;
  }

  async sync(): Promise<void> {
    this.flush();
    await this.lostAware(politeWait(() => this.device.queue.onSubmittedWorkDone()));
    this.check();
  }

  /** Whether the device was lost (not destroyed by destroy()); the reason, else null. */
  get lostReason(): string | null {
    return this.lost;
  }

  /**
   * A map or a wait on a lost device rejects with a bare DOMException (no message in Dawn) before
   * device.lost resolves: wait a moment for it, so the caller gets a DeviceLostError that says so.
   */
  private async lostAware<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (!this.lost && !this.destroyed) await Promise.race([this.device.lost, new Promise((r) => setTimeout(r, 1000))]);
      await Promise.resolve();
      this.check();
      throw e;
    }
  }

  /** Drops pooled buffers (e.g. between benchmark cases); live tensors are untouched. */
  trimPool(): void {
    for (const list of this.pool.values()) for (const b of list) b.gpu.destroy();
    this.pool.clear();
    this.bindGroups = new Map();
    this.counters.bindGroupsCached = 0;
    this.counters.poolBuffers = 0;
    this.counters.poolBytes = 0;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.trimPool();
    this.arena.destroy();
    this.device.destroy();
  }
}

/**
 * Dawn for Node busy-polls its event loop while a GPU promise is pending (SPEC §1), stealing a core
 * from SwiftShader. Waiting in timer-sized steps first, and only then creating the promise, keeps the
 * spin short: we learn the typical wait from the previous ones.
 *
 * The typical wait is the shortest of the last few, not a running mean: one long wait (a read behind
 * hundreds of queued steps) would otherwise make every later read sleep for seconds; and since each
 * wait includes our own sleep, a wait that ends at once after the sleep is recorded as half of it
 * (we overslept by an unknown amount), so the estimate cannot feed on itself.
 */
const recentWaitsMs: number[] = [];
const isNode = typeof process !== 'undefined' && !!process.versions?.node;
async function politeWait<T>(start: () => Promise<T>): Promise<T> {
  if (!isNode) return start();
  const t0 = performance.now();
  const typicalWaitMs = recentWaitsMs.length ? Math.min(...recentWaitsMs) : 0;
  const sleepMs = typicalWaitMs > 4 ? typicalWaitMs * 0.8 : 0;
  if (sleepMs > 0) await new Promise((r) => setTimeout(r, sleepMs));
  const t1 = performance.now();
  const v = await start();
  const t2 = performance.now();
  recentWaitsMs.push(sleepMs > 0 && t2 - t1 < 1 ? (t2 - t0) / 2 : t2 - t0);
  if (recentWaitsMs.length > 5) recentWaitsMs.shift();
  return v;
}
