/**
 * Reductions (sum, max) over any set of axes, with an elementwise prologue fused in: the reduced
 * value is `expr(inputs)` evaluated on the full (broadcast) index space, so a VJP such as
 * "sum over the broadcast axes of g·b" is one dispatch. Short reductions run one thread per output;
 * long ones one workgroup per output with a tree reduction in workgroup memory.
 */
import type { KernelSpec } from '../engine/backend';
import { compileExpr, exprArity, type Expr, type InputView } from './elementwise';
import { f32, grid1d, product, spec, stridesOf, u32, type Binding } from './wgsl';

export type ReduceOp = 'sum' | 'max';

/** Reductions at most this long run serially in one thread per output. */
export const SERIAL_REDUCE_MAX = 128;
/** With this many outputs, one thread per output already fills the device: no tree needed. */
export const SERIAL_OUTPUTS_MIN = 64;
const TREE = 256;

/**
 * Serial (one thread per output) unless there are few outputs each reducing many values. A
 * workgroup tree costs barriers, which on a CPU adapter such as SwiftShader are fiber switches:
 * a [256, 64] column sum (a bias gradient) took ~16 ms as 64 trees and well under 1 ms serially.
 */
export function reduceStrategy(outputs: number, reduced: number): 'serial' | 'tree' {
  return reduced <= SERIAL_REDUCE_MAX || outputs >= SERIAL_OUTPUTS_MIN ? 'serial' : 'tree';
}

export interface ReduceArgs {
  readonly op: ReduceOp;
  readonly expr: Expr;
  /** Views in the full index space `fullShape`. */
  readonly views: readonly InputView[];
  readonly fullShape: readonly number[];
  /** Axes of fullShape to reduce (sorted, unique). */
  readonly axes: readonly number[];
  /** Multiplies the result (mean = sum with scale 1/n). */
  readonly scale: number;
}

/** Decomposes a flat index over `dims` (with the full-space `strides` of each) into an offset. */
function offsetExpr(idx: string, dims: readonly number[], viewStrides: readonly number[]): string {
  const terms: string[] = [];
  const total = product(dims);
  let below = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    const d = dims[i]!;
    const s = viewStrides[i]!;
    if (d !== 1 && s !== 0) {
      let c = below === 1 ? idx : `(${idx} / ${u32(below)})`;
      if (below * d < total) c = `(${c} % ${u32(d)})`;
      terms.push(s === 1 ? c : `${c} * ${u32(s)}`);
    }
    below *= d;
  }
  return terms.length ? terms.join(' + ') : '0u';
}

export function reduceKernel(name: string, a: ReduceArgs): KernelSpec {
  const rank = a.fullShape.length;
  if (a.views.length !== exprArity(a.expr)) throw new Error(`${name}: expression/view count mismatch`);
  const kept = [...Array(rank).keys()].filter((d) => !a.axes.includes(d));
  const keptDims = kept.map((d) => a.fullShape[d]!);
  const redDims = a.axes.map((d) => a.fullShape[d]!);
  const outCount = product(keptDims);
  const redCount = product(redDims);
  const bindings: Binding[] = a.views.map((_, i) => ({ name: `in${i}`, kind: 'read' as const }));
  bindings.push({ name: 'out', kind: 'read_write' });
  const baseLines = a.views.map((v, i) => `  let base${i} = ${offsetExpr('o', keptDims, kept.map((d) => v.strides[d]!))} + ${u32(v.offset)};`);
  const { lines, result } = compileExpr(a.expr, (i) => `in${i}[base${i} + ${offsetExpr('r', redDims, a.axes.map((d) => a.views[i]!.strides[d]!))}]`);
  const combine = a.op === 'sum' ? (x: string, y: string) => `${x} + ${y}` : (x: string, y: string) => `max(${x}, ${y})`;
  // -FLT_MAX, not -inf: WGSL rejects non-finite constant expressions.
  const identity = a.op === 'sum' ? '0.0' : '-3.4028234663852886e38';
  const finish = (acc: string) => (a.scale === 1 ? acc : `${acc} * ${f32(a.scale)}`);
  const label = `${name}[${a.fullShape.join('x')}→${keptDims.join('x') || 'scalar'}]`;
  if (reduceStrategy(outCount, redCount) === 'serial') {
    const WG = 64;
    const [gx] = grid1d(outCount, WG);
    const src = `
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let o = gid.x + gid.y * ${u32(gx * WG)};
  if (o >= ${u32(outCount)}) { return; }
${baseLines.join('\n')}
  var acc = ${identity};
  for (var r = 0u; r < ${u32(redCount)}; r++) {
${lines.map((l) => '  ' + l).join('\n')}
    acc = ${combine('acc', result)};
  }
  out[o] = ${finish('acc')};
}`;
    return spec(label, bindings, src, grid1d(outCount, WG));
  }
  const groups = grid1d(outCount, 1);
  const src = `
var<workgroup> partial: array<f32, ${TREE}>;
@compute @workgroup_size(${TREE})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let o = wid.x + wid.y * ${u32(groups[0])};
  let live = o < ${u32(outCount)};
  var acc = ${identity};
  if (live) {
${baseLines.map((l) => '  ' + l).join('\n')}
    for (var r = lid; r < ${u32(redCount)}; r += ${u32(TREE)}) {
${lines.map((l) => '    ' + l).join('\n')}
      acc = ${combine('acc', result)};
    }
  }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = ${u32(TREE / 2)}; s > 0u; s >>= 1u) {
    if (lid < s) { partial[lid] = ${combine('partial[lid]', 'partial[lid + s]')}; }
    workgroupBarrier();
  }
  if (live && lid == 0u) { out[o] = ${finish('partial[0]')}; }
}`;
  return spec(label, bindings, src, groups);
}

export { stridesOf };
