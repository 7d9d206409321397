/**
 * Philox4x32-10 counter-based random numbers (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC 2011). The same function runs in WGSL (kernels/random.ts), so CPU and GPU streams of
 * one seed agree bit for bit: the CPU version is both a generator for host-side sampling (datasets,
 * shuffles) and the reference the GPU kernel is tested against.
 *
 * Stream layout, shared with the GPU: element i of draw number `draw` under `seed` uses
 * counter = (i, draw, 0, 0), key = (seed_lo, seed_hi), and takes lane 0 (lanes 0 and 1 for normals).
 */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** 32×32 → 64-bit product split into (hi, lo), exact in float64 via 16-bit halves. */
function mulhilo(a: number, b: number): [number, number] {
  const lo = Math.imul(a, b) >>> 0;
  const aH = a >>> 16, aL = a & 0xffff, bH = b >>> 16, bL = b & 0xffff;
  const mid1 = aH * bL, mid2 = aL * bH;
  const carry = ((aL * bL) / 65536 + (mid1 & 0xffff) + (mid2 & 0xffff)) / 65536;
  const hi = (aH * bH + Math.floor(mid1 / 65536) + Math.floor(mid2 / 65536) + Math.floor(carry)) >>> 0;
  return [hi, lo];
}

/** Philox4x32 with 10 rounds; returns four uint32 words. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number] {
  let x0 = c0 >>> 0, x1 = c1 >>> 0, x2 = c2 >>> 0, x3 = c3 >>> 0;
  let key0 = k0 >>> 0, key1 = k1 >>> 0;
  for (let r = 0; r < 10; r++) {
    const [h0, l0] = mulhilo(M0, x0);
    const [h1, l1] = mulhilo(M1, x2);
    const n0 = (h1 ^ x1 ^ key0) >>> 0;
    const n2 = (h0 ^ x3 ^ key1) >>> 0;
    x0 = n0; x1 = l1; x2 = n2; x3 = l0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  return [x0, x1, x2, x3];
}

/** Uniform in [0, 1) with 24 random bits: exactly representable in float32, as on the GPU. */
export function u32ToUniform(u: number): number {
  return (u >>> 8) * 5.9604644775390625e-8;
}

/** Uniform in (0, 1], safe for log() in Box–Muller. */
export function u32ToUniformOpenZero(u: number): number {
  return ((u >>> 8) + 1) * 5.9604644775390625e-8;
}

/** Splits a JS number seed (integer, |seed| < 2^53) into two uint32 key words. */
export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed)) throw new TypeError(`seed must be a safe integer, got ${seed}`);
  const s = seed < 0 ? 2 ** 53 + seed : seed;
  return [s % 2 ** 32 >>> 0, Math.floor(s / 2 ** 32) >>> 0];
}

/**
 * Host-side generator: a seeded stream of draws. Each call advances an internal counter, so a
 * sequence of calls is reproducible for a seed. Use `fork(tag)` for an independent sub-stream.
 */
export class Rng {
  private readonly k0: number;
  private readonly k1: number;
  private counter = 0;
  private stream: number;
  private buf: number[] = [];
  private spareNormal: number | null = null;

  constructor(readonly seed: number, stream = 0) {
    [this.k0, this.k1] = seedKey(seed);
    this.stream = stream >>> 0;
  }

  /** An independent generator for the same seed, keyed by `tag` (e.g. one per purpose). */
  fork(tag: number): Rng {
    return new Rng(this.seed, (this.stream * 0x9e3779b1 + tag + 1) >>> 0);
  }

  /** Next uint32. */
  nextU32(): number {
    if (this.buf.length === 0) {
      const c = this.counter++;
      const w = philox4x32(c % 2 ** 32, Math.floor(c / 2 ** 32), this.stream, 0xc0ffee, this.k0, this.k1);
      this.buf = [w[3], w[2], w[1], w[0]];
    }
    return this.buf.pop()!;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return u32ToUniform(this.nextU32());
  }

  /** Uniform in [lo, hi). */
  uniformIn(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Standard normal by Box–Muller (the pair's second value is kept for the next call). */
  normal(): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return z;
    }
    const u1 = u32ToUniformOpenZero(this.nextU32());
    const u2 = u32ToUniform(this.nextU32());
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spareNormal = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  /** Integer uniform in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.uniform() * n) % n;
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(a: T[] | Float32Array | Float64Array | Int32Array | Uint32Array): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      (a as T[])[j] = t as T;
    }
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    this.shuffle(p);
    return p;
  }
}
