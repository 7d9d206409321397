/**
 * The MLP kernel family, every kernel built by the one emitter (kernels/mlp/emit.ts):
 *
 *  - `mlpForwardKernel`: Y = mlp([X, C]) for a batch, one dispatch;
 *  - `mlpJvpKernel`: Y and the forward-mode tangent TY = J·TX (one tangent per sample; the CNF
 *    kernels push d unit tangents through the same emitter for the exact divergence);
 *  - `mlpReverseKernel` + `mlpReduceKernel`: given the output cotangent G, the input cotangents
 *    (X's block then C's block of DIN) and each thread's partial parameter gradients (PART, one row
 *    per thread in [W0, b0, W1, b1, …] order), then the sum over threads: two dispatches for every
 *    cotangent of the network.
 *
 * The network reads its parameters (and masks) from `slots` read-only storage buffers named in0…,
 * at element offsets baked into the source: parameters that are views into one flat buffer (a
 * ParamSet) bind one buffer, however many layers. Batch size and offsets are constants, so each
 * shape has its own pipeline, cached by source in the backend.
 */
import type { KernelSpec } from '../../engine/backend';
import { spec, u32, type Binding } from '../wgsl';
import type { Activation } from '../activations';
import { declareArrays, emitForward, emitReverse, range, type Loc, type MlpNet } from './emit';

/** A tensor's place among the kernel's read bindings: slot (in{slot}) and element offset. */
export interface SlotRef {
  readonly slot: number;
  readonly offset: number;
}

export interface MlpDesc {
  readonly batch: number;
  /** Widths: [x columns (+ context columns), hidden…, outputs]. */
  readonly dims: readonly number[];
  /** Context columns appended to x's (0 = none). */
  readonly contextCols: number;
  readonly activation: Activation;
  /** Number of distinct read buffers (in0 … in{slots−1}). */
  readonly slots: number;
  readonly x: SlotRef;
  readonly ctx: SlotRef | null;
  readonly w: readonly SlotRef[];
  readonly b: readonly SlotRef[];
  readonly mask: readonly SlotRef[] | null;
  /** Samples per thread. */
  readonly samples: number;
}

const loc = (r: SlotRef): Loc => ({ buf: `in${r.slot}`, off: r.offset });

export function net(d: MlpDesc): MlpNet {
  return { dims: d.dims, activation: d.activation, w: d.w.map(loc), b: d.b.map(loc), mask: d.mask ? d.mask.map(loc) : undefined };
}

/** Parameter count of the network (Σ |W_k| + |b_k|): the width of a PART row and of the gradient. */
export function mlpParamCount(dims: readonly number[]): number {
  let n = 0;
  for (let k = 0; k + 1 < dims.length; k++) n += dims[k]! * dims[k + 1]! + dims[k + 1]!;
  return n;
}

/** Offsets of W_k and b_k in the packed [W0, b0, W1, b1, …] order. */
export function packedOffsets(dims: readonly number[]): { w: number[]; b: number[] } {
  const w: number[] = [];
  const b: number[] = [];
  let off = 0;
  for (let k = 0; k + 1 < dims.length; k++) {
    w.push(off);
    off += dims[k]! * dims[k + 1]!;
    b.push(off);
    off += dims[k + 1]!;
  }
  return { w, b };
}

export function mlpThreads(d: MlpDesc): number {
  return Math.ceil(d.batch / d.samples);
}

/**
 * Threads per workgroup: at most 64, and at least two workgroups so SwiftShader (which runs a
 * workgroup on one CPU thread) uses two cores. Every kernel that owns S samples per thread sizes
 * its workgroups with this (mlp, flow heads, the ODE/CNF and SDE solvers).
 */
export function workgroup(threads: number): number {
  return Math.max(1, Math.min(64, Math.ceil(threads / 2)));
}

export function readBindings(d: MlpDesc): Binding[] {
  return range(d.slots).map((i) => ({ name: `in${i}`, kind: 'read' as const }));
}

/** Prologue: thread → samples base + q, rows clamped for loads, valid{q} = 1 for real samples. */
export function prologue(d: MlpDesc): string[] {
  const S = d.samples;
  const T = mlpThreads(d);
  return [
    `  let tid = gid.x;`,
    `  if (tid >= ${u32(T)}) { return; }`,
    ...range(S).flatMap((q) => [
      `  let row${q} = min(tid * ${u32(S)} + ${u32(q)}, ${u32(d.batch - 1)});`,
      `  let valid${q} = tid * ${u32(S)} + ${u32(q)} < ${u32(d.batch)};`,
    ]),
  ];
}

/** Fills a0_{q} from X's row (and C's row after it), or the tangent rows from TX. */
function loadInputs(d: MlpDesc, into: (q: number) => string, xs: { buf: string; off: number }, cs: { buf: string; off: number } | null): string[] {
  const nx = d.dims[0]! - d.contextCols;
  const nc = d.contextCols;
  const out: string[] = [];
  const idx = (l: { buf: string; off: number }, n: number, q: number, i: number) => `${l.buf}[${l.off ? `${u32(l.off)} + ` : ''}row${q} * ${u32(n)} + ${u32(i)}]`;
  for (const q of range(d.samples)) {
    for (let i = 0; i < nx; i++) out.push(`  ${into(q)}[${i}] = ${idx(xs, nx, q, i)};`);
    if (cs) for (let i = 0; i < nc; i++) out.push(`  ${into(q)}[${nx + i}] = ${idx(cs, nc, q, i)};`);
  }
  return out;
}

function storeRows(d: MlpDesc, from: (q: number) => string, buf: string, n: number): string[] {
  return range(d.samples).map((q) => `  if (valid${q}) {\n${range(n).map((j) => `    ${buf}[row${q} * ${u32(n)} + ${u32(j)}] = ${from(q)}[${j}];`).join('\n')}\n  }`);
}

function xLoc(d: MlpDesc): { buf: string; off: number } {
  return { buf: `in${d.x.slot}`, off: d.x.offset };
}
function cLoc(d: MlpDesc): { buf: string; off: number } | null {
  return d.ctx ? { buf: `in${d.ctx.slot}`, off: d.ctx.offset } : null;
}

function name(kind: string, d: MlpDesc): string {
  return `mlp_${kind}[${d.batch}x${d.dims.join('-')}${d.contextCols ? `+c${d.contextCols}` : ''}${d.mask ? '+mask' : ''}/${d.activation}/S${d.samples}]`;
}

/** A kernel over the samples of `d` (one thread per `samples` rows); `label` replaces the mlp_ name. */
export function kernel(kind: string, d: MlpDesc, bindings: Binding[], body: string[], label?: string): KernelSpec {
  const T = mlpThreads(d);
  const wg = workgroup(T);
  const src = `@compute @workgroup_size(${wg})\nfn main(@builtin(global_invocation_id) gid: vec3u) {\n${body.join('\n')}\n}`;
  return spec(label ?? name(kind, d), bindings, src, [Math.ceil(T / wg), 1, 1]);
}

/** Bindings: in0…, Y [B, dims[L]]. */
export function mlpForwardKernel(d: MlpDesc): KernelSpec {
  const n = net(d);
  const L = d.dims.length - 1;
  const bindings = [...readBindings(d), { name: 'Y', kind: 'read_write' as const }];
  return kernel('fwd', d, bindings, [
    ...prologue(d),
    ...declareArrays(n, d.samples),
    ...loadInputs(d, (q) => `a0_${q}`, xLoc(d), cLoc(d)),
    ...emitForward(n, d.samples),
    ...storeRows(d, (q) => `o_${q}`, 'Y', d.dims[L]!),
  ]);
}

/**
 * Bindings: in0…, TX [B, dims[0]] (tangents of x and context), Y, TY [B, dims[L]]: TY = J·TX,
 * forward mode through the same emitter.
 */
export function mlpJvpKernel(d: MlpDesc): KernelSpec {
  const n = net(d);
  const L = d.dims.length - 1;
  const bindings: Binding[] = [...readBindings(d), { name: 'TX', kind: 'read' }, { name: 'Y', kind: 'read_write' }, { name: 'TY', kind: 'read_write' }];
  const nin = d.dims[0]!;
  return kernel('jvp', d, bindings, [
    ...prologue(d),
    ...declareArrays(n, d.samples, { tangents: 1 }),
    ...loadInputs(d, (q) => `a0_${q}`, xLoc(d), cLoc(d)),
    ...range(d.samples).flatMap((q) => range(nin).map((i) => `  ta0_${q}_0[${i}] = TX[row${q} * ${u32(nin)} + ${u32(i)}];`)),
    ...emitForward(n, d.samples, { tangents: 1 }),
    ...storeRows(d, (q) => `o_${q}`, 'Y', d.dims[L]!),
    ...storeRows(d, (q) => `to_${q}_0`, 'TY', d.dims[L]!),
  ]);
}

/**
 * Bindings: in0…, G [B, dims[L]] (output cotangent), [DIN: X's cotangent [B, x cols] then C's
 * [B, context cols]], PART [threads, params]. `withInput` = false skips DIN (no input needs it).
 */
export function mlpReverseKernel(d: MlpDesc, withInput: boolean, g: SlotRef): KernelSpec {
  const n = net(d);
  const L = d.dims.length - 1;
  const nOut = d.dims[L]!;
  const np = mlpParamCount(d.dims);
  const off = packedOffsets(d.dims);
  const nx = d.dims[0]! - d.contextCols;
  const bindings: Binding[] = [...readBindings(d)];
  if (withInput) bindings.push({ name: 'DIN', kind: 'read_write' });
  bindings.push({ name: 'PART', kind: 'read_write' });
  const gIdx = (q: number, j: number) => `in${g.slot}[${g.offset ? `${u32(g.offset)} + ` : ''}row${q} * ${u32(nOut)} + ${u32(j)}]`;
  const body = [
    ...prologue(d),
    ...declareArrays(n, d.samples, { keep: true }),
    ...loadInputs(d, (q) => `a0_${q}`, xLoc(d), cLoc(d)),
    ...emitForward(n, d.samples, { keep: true }),
    ...range(d.samples).flatMap((q) => [`  var gz${L - 1}_${q}: array<f32, ${nOut}>;`, ...range(nOut).map((j) => `  gz${L - 1}_${q}[${j}] = select(0.0, ${gIdx(q, j)}, valid${q});`)]),
    `  let po = tid * ${u32(np)};`,
    ...emitReverse(n, d.samples, {
      gradB: (k, j, v) => `PART[po + ${u32(off.b[k]!)} + ${j}] = ${v};`,
      gradW: (k, i, j, v) => `PART[po + ${u32(off.w[k]!)} + ${i} * ${u32(d.dims[k + 1]!)} + ${j}] = ${v};`,
      gradIn: withInput
        ? (q, i, v) => `if (valid${q}) { if (${i} < ${u32(nx)}) { DIN[row${q} * ${u32(nx)} + ${i}] = ${v}; } else { DIN[${u32(d.batch * nx)} + row${q} * ${u32(Math.max(1, d.contextCols))} + ${i} - ${u32(nx)}] = ${v}; } }`
        : null,
    }),
  ];
  return kernel(withInput ? 'rev' : 'rev_params', d, bindings, body);
}

/** GRAD[p] = Σ_t PART[t, p]: one thread per parameter. Bindings: PART, GRAD. */
export function mlpReduceKernel(threads: number, np: number): KernelSpec {
  const bindings: Binding[] = [{ name: 'PART', kind: 'read' }, { name: 'GRAD', kind: 'read_write' }];
  const src = `@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let p = gid.x;
  if (p >= ${u32(np)}) { return; }
  var g = 0.0;
  for (var t = 0u; t < ${u32(threads)}; t++) { g += PART[t * ${u32(np)} + p]; }
  GRAD[p] = g;
}`;
  return spec(`mlp_reduce[${threads}x${np}]`, bindings, src, [Math.ceil(np / 64), 1, 1]);
}
