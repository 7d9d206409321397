/**
 * GPU tensors: float32, contiguous row-major, living at an element offset inside a refcounted
 * storage buffer (so reshape and parameter views into one flat buffer cost no copy).
 *
 * Ownership (JavaScript has no destructors, so it is explicit, as in jax-js and tf.tidy):
 *  - whoever creates a tensor owns it and must `dispose()` it, or create it inside `scope(fn)`,
 *    which disposes everything made inside except what `fn` returns (or what was `keep()`-ed);
 *  - `dispose()` is idempotent; using a disposed tensor throws;
 *  - the tape holds its own internal references to what backward needs, so disposing an input
 *    during a `valueAndGrad` does not break the backward pass; the buffer goes back to the pool
 *    when the last reference (owner, tape, views) is gone.
 */
import type { Backend, BufferHandle } from './backend';

let current: Backend | null = null;

/** Makes `b` the backend used by every op (see engine/runtime.ts createBackend). */
export function setBackend(b: Backend | null): void {
  current = b;
}

export function getBackend(): Backend {
  if (!current) throw new Error('no backend: call `await init()` (or setBackend(await createBackend())) before creating tensors');
  return current;
}

class Storage {
  refs = 1;
  constructor(readonly backend: Backend, readonly buffer: BufferHandle) {}
  release(): void {
    if (--this.refs === 0) this.backend.free(this.buffer);
  }
}

let nextTensorId = 1;
/** True while the tape runs backward: it may read tensors whose owners already disposed them. */
let internalAccess = 0;

export function withInternalAccess<T>(fn: () => T): T {
  internalAccess++;
  try {
    return fn();
  } finally {
    internalAccess--;
  }
}

export class Tensor {
  readonly id = nextTensorId++;
  readonly size: number;
  private ownerReleased = false;
  private internalRefs = 0;
  private storageRef: Storage | null;

  private constructor(readonly shape: readonly number[], storage: Storage, readonly offset: number) {
    this.size = shape.reduce((a, b) => a * b, 1);
    this.storageRef = storage;
    trackInScope(this);
  }

  /** A tensor over a fresh buffer from the pool (contents undefined until a kernel writes it). */
  static empty(shape: readonly number[]): Tensor {
    const b = getBackend();
    const size = shape.reduce((a, c) => a * c, 1);
    return new Tensor([...shape], new Storage(b, b.alloc(Math.max(1, size) * 4)), 0);
  }

  /** A tensor sharing `base`'s storage at `offset` (elements): reshape, parameter views. */
  static view(base: Tensor, shape: readonly number[], offset = base.offset): Tensor {
    const s = base.liveStorage();
    s.refs++;
    return new Tensor([...shape], s, offset);
  }

  get rank(): number {
    return this.shape.length;
  }

  /** True once the owner disposed it (or its scope ended). */
  get disposed(): boolean {
    return this.ownerReleased;
  }

  get backend(): Backend {
    return this.liveStorage().backend;
  }

  /** The buffer, checking the tensor is still usable. */
  get buffer(): BufferHandle {
    if (this.ownerReleased && internalAccess === 0) {
      throw new Error(`tensor #${this.id} [${this.shape.join(', ')}] was disposed and can no longer be used`);
    }
    return this.liveStorage().buffer;
  }

  /** Whether two tensors share one storage buffer. */
  sharesStorageWith(other: Tensor): boolean {
    return this.storageRef !== null && this.storageRef === other.storageRef;
  }

  private liveStorage(): Storage {
    if (!this.storageRef) throw new Error(`tensor #${this.id} [${this.shape.join(', ')}] was disposed and can no longer be used`);
    return this.storageRef;
  }

  /** Internal reference (tape, optimizer): keeps the buffer alive past the owner's dispose. */
  retain(): this {
    this.liveStorage();
    this.internalRefs++;
    return this;
  }

  /** Drops an internal reference taken by retain(). */
  release(): void {
    if (this.internalRefs <= 0) throw new Error(`tensor #${this.id}: release() without retain()`);
    this.internalRefs--;
    this.maybeFree();
  }

  /** Drops the owner's reference. Idempotent. */
  dispose(): void {
    if (this.ownerReleased) return;
    this.ownerReleased = true;
    this.maybeFree();
  }

  private maybeFree(): void {
    if (this.ownerReleased && this.internalRefs === 0 && this.storageRef) {
      this.storageRef.release();
      this.storageRef = null;
    }
  }

  /** Reads the values back (submits pending work). */
  async data(): Promise<Float32Array> {
    const buf = this.buffer;
    const all = await this.backend.read(buf, (this.offset + this.size) * 4);
    return this.offset === 0 && all.length === this.size ? all : all.slice(this.offset, this.offset + this.size);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs a one-element tensor, got shape [${this.shape.join(', ')}]`);
    return (await this.data())[0]!;
  }

  toString(): string {
    return `Tensor#${this.id}[${this.shape.join('x')}]${this.ownerReleased ? ' (disposed)' : ''}`;
  }
}

// ---- scopes (tf.tidy) ----
const scopes: Set<Tensor>[] = [];

function trackInScope(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

function collectTensors(v: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 6 || v === null || typeof v !== 'object') return;
  if (v instanceof Tensor) {
    out.add(v);
    return;
  }
  if (ArrayBuffer.isView(v)) return;
  for (const x of Array.isArray(v) ? v : v instanceof Map ? v.values() : Object.values(v)) collectTensors(x, out, depth + 1);
}

/**
 * Runs `fn` and disposes every tensor created inside except those in its return value (searched in
 * arrays, plain objects and Maps) and those passed to keep(). Returned tensors move to the outer
 * scope. `fn` must be synchronous: an async function would escape the scope.
 */
export function scope<T>(fn: () => T): T {
  scopes.push(new Set());
  let result: T;
  let ok = false;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('scope(fn): fn returned a Promise; scopes must be synchronous (await outside, or dispose by hand)');
    ok = true;
  } finally {
    const mine = scopes.pop()!;
    const keepSet = new Set<Tensor>();
    if (ok) collectTensors(result!, keepSet);
    const parent = scopes[scopes.length - 1];
    for (const t of mine) {
      if (keepSet.has(t)) parent?.add(t);
      else t.dispose();
    }
  }
  return result!;
}

/** Lets `t` outlive every enclosing scope: the caller now owns it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}
