/**
 * Data movement that is not a strided view: concatenation of several inputs along an axis (also
 * used to pack many gradients into one flat buffer for Adam in one dispatch), gathering rows by
 * index, and its adjoint, scatter-adding rows. Indices are float32 holding integers (exact below
 * 2^24), so the engine keeps a single dtype.
 */
import type { KernelSpec } from '../engine/backend';
import { entry1d, grid1d, product, spec, u32, type Binding } from './wgsl';

const WG = 256;

/** Concatenation of contiguous inputs (at element `offsets`) along `axis` of the output. */
export function concatKernel(shapes: readonly (readonly number[])[], offsets: readonly number[], axis: number): KernelSpec {
  const outShape = [...shapes[0]!];
  outShape[axis] = shapes.reduce((s, sh) => s + sh[axis]!, 0);
  const inner = product(outShape.slice(axis + 1));
  const n = product(outShape);
  const bindings: Binding[] = shapes.map((_, i) => ({ name: `in${i}`, kind: 'read' as const }));
  bindings.push({ name: 'out', kind: 'read_write' });
  const axisLen = outShape[axis]!;
  let start = 0;
  const branches = shapes.map((sh, i) => {
    const len = sh[axis]!;
    const cond = i === shapes.length - 1 ? '' : `if (c < ${u32(start + len)}) `;
    const code = `${cond}{ out[index] = in${i}[(outer * ${u32(len)} + (c - ${u32(start)})) * ${u32(inner)} + rest + ${u32(offsets[i]!)}]; return; }`;
    start += len;
    return code;
  });
  const body = `  let rest = index % ${u32(inner)};
  let c = (index / ${u32(inner)}) % ${u32(axisLen)};
  let outer = index / ${u32(inner * axisLen)};
${branches.map((b) => '  ' + b).join('\n')}`;
  return spec(`concat${shapes.length}[${outShape.join('x')}@${axis}]`, bindings, entry1d(WG, n, body), grid1d(n, WG));
}

/** out[r, :] = x[idx[r], :] for x of `rows`×`inner`, idx of length m. Out-of-range indices give 0. */
export function gatherRowsKernel(rows: number, inner: number, m: number, xOffset: number, idxOffset: number): KernelSpec {
  const n = m * inner;
  const body = `  let r = index / ${u32(inner)};
  let k = index % ${u32(inner)};
  let src = u32(idx[r + ${u32(idxOffset)}]);
  if (src >= ${u32(rows)}) { out[index] = 0.0; return; }
  out[index] = x[src * ${u32(inner)} + k + ${u32(xOffset)}];`;
  const bindings: Binding[] = [{ name: 'x', kind: 'read' }, { name: 'idx', kind: 'read' }, { name: 'out', kind: 'read_write' }];
  return spec(`gatherRows[${rows}x${inner}→${m}]`, bindings, entry1d(WG, n, body), grid1d(n, WG));
}

/** out[r, :] = Σ_{j : idx[j] = r} g[j, :]: the adjoint of gatherRows, without float atomics. */
export function scatterAddRowsKernel(rows: number, inner: number, m: number, gOffset: number, idxOffset: number): KernelSpec {
  const n = rows * inner;
  const body = `  let r = index / ${u32(inner)};
  let k = index % ${u32(inner)};
  var acc = 0.0;
  for (var j = 0u; j < ${u32(m)}; j++) {
    if (u32(idx[j + ${u32(idxOffset)}]) == r) { acc += g[j * ${u32(inner)} + k + ${u32(gOffset)}]; }
  }
  out[index] = acc;`;
  const bindings: Binding[] = [{ name: 'g', kind: 'read' }, { name: 'idx', kind: 'read' }, { name: 'out', kind: 'read_write' }];
  return spec(`scatterAddRows[${m}→${rows}x${inner}]`, bindings, entry1d(WG, n, body), grid1d(n, WG));
}

/** out = zeros(outShape) with the block g (shape `inner`) placed at `starts`: the adjoint of slice. */
export function padKernel(outShape: readonly number[], starts: readonly number[], inner: readonly number[], gOffset: number): KernelSpec {
  const n = product(outShape);
  const lines: string[] = ['  var rem = index;', '  var src = 0u;', '  var inside = true;'];
  let innerStride = 1;
  const innerStrides = inner.map(() => 0);
  for (let i = inner.length - 1; i >= 0; i--) {
    innerStrides[i] = innerStride;
    innerStride *= inner[i]!;
  }
  for (let i = outShape.length - 1; i >= 0; i--) {
    lines.push(`  { let c = rem % ${u32(outShape[i]!)}; rem = rem / ${u32(outShape[i]!)};`);
    lines.push(`    if (c < ${u32(starts[i]!)} || c >= ${u32(starts[i]! + inner[i]!)}) { inside = false; } else { src += (c - ${u32(starts[i]!)}) * ${u32(innerStrides[i]!)}; } }`);
  }
  lines.push(`  if (inside) { out[index] = g[src + ${u32(gOffset)}]; } else { out[index] = 0.0; }`);
  const bindings: Binding[] = [{ name: 'g', kind: 'read' }, { name: 'out', kind: 'read_write' }];
  return spec(`pad[${inner.join('x')}→${outShape.join('x')}]`, bindings, entry1d(WG, n, lines.join('\n')), grid1d(n, WG));
}
