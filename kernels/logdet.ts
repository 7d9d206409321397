/**
 * Batched LU factorisation with partial pivoting (LAPACK getrf's row-swapping, right-looking
 * variant), one workgroup per matrix, for the `logdet` primitive:
 *
 *  - mode `logdet`: out[b] = log|det W_b| = Σ_k log|U_kk|;
 *  - mode `grad`:   out[b] = g[b] · W_b^{-T}   (the VJP of logdet: d log|det W| = W^{-T});
 *  - mode `inverseT`: out[b] = W_b^{-T}         (no cotangent; used outside the tape, e.g. as the
 *    starting point of a Newton-refined inverse in flows/linalg.ts).
 *
 * The gradient is a second kernel (the forward stays a plain factorisation): it factorises again,
 * then solves W x = e_j for every column j, one thread per column (forward substitution with the
 * unit-lower L after applying the recorded row swaps, then back substitution with U). Column j of
 * W^{-1} is row j of W^{-T}, so each thread writes one contiguous output row.
 *
 * Layout: W is [B, n, n] row-major at element offset `offset` (a parameter view into a flat buffer
 * works as is); `A` is a caller-provided scratch buffer of B·n·n floats holding the factors. The
 * factorisation is in float32: log|det| has an absolute error of roughly n·ε·κ(W) in the worst case,
 * small for well-conditioned matrices (tests/flows-properties.test.ts measures it up to 64×64).
 *
 * Parallelism: within a workgroup of 64 threads, the pivot search is serial in thread 0 (n loads),
 * the row swap is split over columns and the elimination over rows, with a storage barrier between
 * steps (n steps). On SwiftShader barriers are costly, but n is small in flows (the data dimension).
 */
import type { KernelSpec } from '../engine/backend';
import { MAX_WORKGROUPS_PER_DIM, spec, u32, type Binding } from './wgsl';

export type LogdetMode = 'logdet' | 'grad' | 'inverseT';

export interface LogdetArgs {
  /** Number of matrices. */
  readonly batch: number;
  /** Matrix order. */
  readonly n: number;
  /** Element offset of W in its buffer. */
  readonly offset: number;
  /** Element offset of the cotangent g (mode `grad`). */
  readonly gOffset?: number;
}

const WG = 64;
/** Workgroup memory holds the pivot rows: n·4 bytes, well inside the 16 KiB minimum limit. */
export const LOGDET_MAX_N = 2048;

function groups(batch: number): [number, number, number] {
  if (batch <= MAX_WORKGROUPS_PER_DIM) return [batch, 1, 1];
  return [MAX_WORKGROUPS_PER_DIM, Math.ceil(batch / MAX_WORKGROUPS_PER_DIM), 1];
}

/**
 * Bindings, in order: `logdet`: W, A (scratch), out[B]; `grad`: W, g[B], A, out[B·n·n];
 * `inverseT`: W, A, out[B·n·n].
 */
export function logdetKernel(mode: LogdetMode, a: LogdetArgs): KernelSpec {
  const { batch, n, offset } = a;
  for (const [k, v] of [['batch', batch], ['n', n]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`logdet: ${k} must be a positive integer, got ${v}`);
  }
  if (n > LOGDET_MAX_N) throw new RangeError(`logdet: matrices of order ${n} exceed the kernel's limit of ${LOGDET_MAX_N}`);
  const bindings: Binding[] = [{ name: 'W', kind: 'read' }];
  if (mode === 'grad') bindings.push({ name: 'G', kind: 'read' });
  bindings.push({ name: 'A', kind: 'read_write' }, { name: 'out', kind: 'read_write' });
  const [gx] = groups(batch);
  const N = u32(n);
  const solve =
    mode === 'logdet'
      ? `  if (lid == 0u) { out[b] = logabs; }`
      : `  let scale = ${mode === 'grad' ? `G[b + ${u32(a.gOffset ?? 0)}]` : '1.0'};
  for (var j = lid; j < ${N}; j += ${u32(WG)}) {
    let o = b * ${u32(n * n)} + j * ${N};
    for (var i = 0u; i < ${N}; i++) { out[o + i] = select(0.0, 1.0, i == j); }
    for (var k = 0u; k < ${N}; k++) {
      let p = piv[k];
      if (p != k) { let t = out[o + k]; out[o + k] = out[o + p]; out[o + p] = t; }
    }
    for (var i = 1u; i < ${N}; i++) {
      var s = out[o + i];
      for (var m = 0u; m < i; m++) { s -= A[base + i * ${N} + m] * out[o + m]; }
      out[o + i] = s;
    }
    for (var ii = 0u; ii < ${N}; ii++) {
      let i = ${u32(n - 1)} - ii;
      var s = out[o + i];
      for (var m = i + 1u; m < ${N}; m++) { s -= A[base + i * ${N} + m] * out[o + m]; }
      out[o + i] = s / A[base + i * ${N} + i];
    }
    if (scale != 1.0) { for (var i = 0u; i < ${N}; i++) { out[o + i] = out[o + i] * scale; } }
  }`;
  const src = `
var<workgroup> piv: array<u32, ${N}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let b = wid.x + wid.y * ${u32(gx)};
  if (b >= ${u32(batch)}) { return; }
  let base = b * ${u32(n * n)};
  for (var e = lid; e < ${u32(n * n)}; e += ${u32(WG)}) { A[base + e] = W[base + e + ${u32(offset)}]; }
  var logabs = 0.0;
  storageBarrier();
  for (var k = 0u; k < ${N}; k++) {
    if (lid == 0u) {
      var p = k;
      var best = abs(A[base + k * ${N} + k]);
      for (var i = k + 1u; i < ${N}; i++) {
        let v = abs(A[base + i * ${N} + k]);
        if (v > best) { best = v; p = i; }
      }
      piv[k] = p;
    }
    workgroupBarrier();
    let p = piv[k];
    if (p != k) {
      for (var j = lid; j < ${N}; j += ${u32(WG)}) {
        let t = A[base + k * ${N} + j];
        A[base + k * ${N} + j] = A[base + p * ${N} + j];
        A[base + p * ${N} + j] = t;
      }
    }
    storageBarrier();
    let pivot = A[base + k * ${N} + k];
    if (lid == 0u) { logabs += log(abs(pivot)); }
    for (var i = k + 1u + lid; i < ${N}; i += ${u32(WG)}) {
      let l = A[base + i * ${N} + k] / pivot;
      A[base + i * ${N} + k] = l;
      for (var j = k + 1u; j < ${N}; j++) { A[base + i * ${N} + j] -= l * A[base + k * ${N} + j]; }
    }
    storageBarrier();
  }
${solve}
}`;
  return spec(`logdet_${mode}[${batch}x${n}x${n}]`, bindings, src, groups(batch));
}
