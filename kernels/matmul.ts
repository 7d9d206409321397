/**
 * Matrix multiply C[M,N] = op(A)·op(B), either operand optionally transposed, with an optional
 * epilogue (bias row + unary activation) so a dense layer can be one dispatch.
 *
 * Variants (chosen by `chooseMatmul`): `reg4x4`, register tiling where each thread computes a 4×4
 * block straight from global memory (SPEC §5.4: on SwiftShader this beats workgroup-memory tiling,
 * whose barriers are expensive on a CPU), and `wgmem`, 64×64 tiles staged through workgroup memory,
 * which pays on real GPUs at large sizes.
 */
import type { KernelSpec } from '../engine/backend';
import { compileExpr, type UnaryOp } from './elementwise';
import { spec, u32, type Binding } from './wgsl';

export interface MatmulArgs {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly transA: boolean;
  readonly transB: boolean;
  /** Element offsets of A and B in their buffers. */
  readonly offsetA: number;
  readonly offsetB: number;
  /** Adds bias[n] (a length-N vector at `offsetBias`) before the activation. */
  readonly bias?: { readonly offset: number };
  readonly activation?: UnaryOp;
}

export type MatmulVariant = 'reg4x4' | 'wgmem';

/** Register tiling on software adapters and small problems; workgroup-memory tiles on GPUs at size. */
export function chooseMatmul(a: MatmulArgs, adapterKind: 'software' | 'hardware'): MatmulVariant {
  if (adapterKind === 'software') return 'reg4x4';
  return a.m * a.n * a.k >= 256 * 256 * 256 ? 'wgmem' : 'reg4x4';
}

function bindingsFor(a: MatmulArgs): Binding[] {
  const b: Binding[] = [{ name: 'A', kind: 'read' }, { name: 'B', kind: 'read' }];
  if (a.bias) b.push({ name: 'bias', kind: 'read' });
  b.push({ name: 'C', kind: 'read_write' });
  return b;
}

function loadA(a: MatmulArgs, row: string, kk: string): string {
  return a.transA ? `A[${kk} * ${u32(a.m)} + ${row} + ${u32(a.offsetA)}]` : `A[${row} * ${u32(a.k)} + ${kk} + ${u32(a.offsetA)}]`;
}
function loadB(a: MatmulArgs, kk: string, col: string): string {
  return a.transB ? `B[${col} * ${u32(a.k)} + ${kk} + ${u32(a.offsetB)}]` : `B[${kk} * ${u32(a.n)} + ${col} + ${u32(a.offsetB)}]`;
}

function epilogue(a: MatmulArgs, value: string, col: string): { lines: string[]; result: string } {
  let v = value;
  const pre: string[] = [];
  if (a.bias) {
    pre.push(`    let biased = ${v} + bias[${col} + ${u32(a.bias.offset)}];`);
    v = 'biased';
  }
  if (!a.activation) return { lines: pre, result: v };
  const c = compileExpr({ op: a.activation, a: { op: 'in', i: 0 } }, () => v);
  return { lines: [...pre, ...c.lines.map((l) => '    ' + l)], result: c.result };
}

function label(a: MatmulArgs, variant: string): string {
  const t = `${a.transA ? 'T' : 'N'}${a.transB ? 'T' : 'N'}`;
  const ep = `${a.bias ? '+bias' : ''}${a.activation ? `+${a.activation}` : ''}`;
  return `matmul_${variant}_${t}[${a.m}x${a.k}x${a.n}${ep}]`;
}

/**
 * Each thread computes a 4×4 block of C in 16 scalar registers (fully unrolled: SwiftShader's
 * compiler mishandles dynamically indexed private arrays); an 8×8 workgroup covers 32×32.
 */
function reg4x4(a: MatmulArgs): KernelSpec {
  const R = [0, 1, 2, 3];
  const loads = R.map((i) => `    let a${i} = ${loadA(a, `r${i}`, 'kk')};\n    let b${i} = ${loadB(a, 'kk', `c${i}`)};`).join('\n');
  const fmas = R.flatMap((i) => R.map((j) => `    acc${i}${j} = fma(a${i}, b${j}, acc${i}${j});`)).join('\n');
  const stores = R.flatMap((i) =>
    R.map((j) => {
      const ep = epilogue(a, `acc${i}${j}`, `(col0 + ${j}u)`);
      return `  if (row0 + ${i}u < ${u32(a.m)} && col0 + ${j}u < ${u32(a.n)}) {\n${ep.lines.join('\n')}\n    C[(row0 + ${i}u) * ${u32(a.n)} + col0 + ${j}u] = ${ep.result};\n  }`;
    }),
  ).join('\n');
  const src = `
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let row0 = gid.y * 4u;
  let col0 = gid.x * 4u;
  if (row0 >= ${u32(a.m)} || col0 >= ${u32(a.n)}) { return; }
${R.map((i) => `  let r${i} = min(row0 + ${i}u, ${u32(a.m - 1)});\n  let c${i} = min(col0 + ${i}u, ${u32(a.n - 1)});`).join('\n')}
${R.flatMap((i) => R.map((j) => `  var acc${i}${j} = 0.0;`)).join('\n')}
  for (var kk = 0u; kk < ${u32(a.k)}; kk++) {
${loads}
${fmas}
  }
${stores}
}`;
  return spec(label(a, 'reg4x4'), bindingsFor(a), src, [Math.ceil(a.n / 32), Math.ceil(a.m / 32), 1]);
}

/**
 * 64×64 output tile per 16×16 workgroup (4×4 per thread), K in steps of 16 staged through
 * workgroup memory; out-of-range loads read 0 so any shape works.
 */
function wgmem(a: MatmulArgs): KernelSpec {
  const ep = epilogue(a, 'acc[i][j]', 'col');
  const src = `
var<workgroup> As: array<array<f32, 64>, 16>;
var<workgroup> Bs: array<array<f32, 64>, 16>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tileRow = wid.y * 64u;
  let tileCol = wid.x * 64u;
  let t = lid.y * 16u + lid.x;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < ${u32(a.k)}; k0 += 16u) {
    for (var e = t; e < 1024u; e += 256u) {
      let kk = e / 64u;
      let mm = e % 64u;
      let gk = k0 + kk;
      let gr = tileRow + mm;
      var va = 0.0;
      if (gk < ${u32(a.k)} && gr < ${u32(a.m)}) { va = ${loadA(a, 'gr', 'gk')}; }
      As[kk][mm] = va;
      let gc = tileCol + mm;
      var vb = 0.0;
      if (gk < ${u32(a.k)} && gc < ${u32(a.n)}) { vb = ${loadB(a, 'gk', 'gc')}; }
      Bs[kk][mm] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) { av[i] = As[kk][lid.y * 4u + i]; bv[i] = Bs[kk][lid.x * 4u + i]; }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let row = tileRow + lid.y * 4u + i;
    if (row >= ${u32(a.m)}) { break; }
    for (var j = 0u; j < 4u; j++) {
      let col = tileCol + lid.x * 4u + j;
      if (col >= ${u32(a.n)}) { break; }
${ep.lines.join('\n')}
      C[row * ${u32(a.n)} + col] = ${ep.result};
    }
  }
}`;
  return spec(label(a, 'wgmem'), bindingsFor(a), src, [Math.ceil(a.n / 64), Math.ceil(a.m / 64), 1]);
}

export function matmulKernel(a: MatmulArgs, variant: MatmulVariant): KernelSpec {
  for (const [k, v] of [['m', a.m], ['n', a.n], ['k', a.k]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`matmul: ${k} must be a positive integer, got ${v}`);
  }
  return variant === 'wgmem' ? wgmem(a) : reg4x4(a);
}
