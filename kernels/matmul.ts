/**
 * Matrix multiply C[M,N] = op(A)·op(B), either operand optionally transposed, with an optional
 * epilogue (bias row + unary activation) so a dense layer is one dispatch.
 *
 * Two tilings, both register-tiled (each thread owns a block of C in unrolled vec4 registers:
 * SwiftShader's compiler was suspected of mishandling dynamically indexed private arrays, so no
 * register tile is an array, and no kernel here declares a private array at all):
 *  - register tiling (`reg`, `reg4x4`): a TM×4·NV block per thread read straight from global
 *    (storage) memory, no workgroup memory and no barriers. On SwiftShader (a CPU) barriers are
 *    expensive and wide per-thread tiles cut the loads per FMA: this wins there.
 *  - workgroup-memory tiling (`wgmem`): 64×64 output tiles per 8×8 workgroup (8×8 per thread), K
 *    staged 16 at a time through workgroup memory; the classic GPU kernel for large problems.
 *
 * Loads are vec4 where the layout allows it: a binding typed array<vec4<f32>> must start on a
 * 16-byte boundary and every row read must be too, so an operand is read as vec4 only when its
 * element offset is a multiple of 4 and its contiguous dimension (K for A, N for B, or M / K when
 * transposed) is a multiple of 4; otherwise that operand falls back to scalar loads (gathered into
 * the same vec4 registers). The engine binds whole buffers and passes element offsets, so the
 * offsets are baked into the source. C is written as vec4 when N is a multiple of 4 (the output is
 * always a fresh buffer at offset 0).
 *
 * `chooseMatmul` picks by adapter and shape from measurements (bench/run.ts; see its doc comment).
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

/**
 * - `reg`: register tiling sized by shape (up to 16×16 of C per thread in 64 vec4 registers, the
 *   workgroup shrunk until there are enough workgroups to spread over the cores), vec4 loads
 *   where aligned; the software-adapter default.
 * - `reg4x4`: the classic fixed form, 4×4 per thread, 8×8 threads, vec4 loads where aligned.
 * - `wgmem`: 64×64 workgroup-memory tiles, vec4 where aligned.
 * - `reg-scalar`, `wgmem-scalar`: the same with scalar loads everywhere (the fallback path,
 *   benchmarked and tested on its own).
 */
export const MATMUL_VARIANTS = ['reg', 'reg4x4', 'wgmem', 'reg-scalar', 'wgmem-scalar'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

/**
 * Measured on SwiftShader (2 shared cores; bench/run.ts and bench/page-tune.ts, medians, Node and
 * Chromium): register tiling without workgroup memory beats the workgroup-memory kernel at every
 * size, and bigger per-thread tiles beat 4×4 (fewer, wider loads per FMA; SwiftShader runs a
 * workgroup's invocations 4 at a time on one core, so it is the number of workgroups, not of
 * threads, that spreads work over cores), so software adapters get `reg`. On hardware adapters the
 * workgroup-memory tile is the standard choice once there are enough 64×64 tiles to fill the
 * device; small problems keep 4×4 register tiling (many threads).
 */
export function chooseMatmul(a: MatmulArgs, adapterKind: 'software' | 'hardware'): MatmulVariant {
  if (adapterKind === 'software') return 'reg';
  return a.m * a.n * a.k >= 256 * 256 * 256 ? 'wgmem' : 'reg4x4';
}

/** Workgroups `reg` aims for (enough to balance over the CPU's cores on SwiftShader). */
const REG_MIN_WORKGROUPS = 8;
/** SwiftShader's SIMD width: smaller workgroups would leave lanes idle. */
const REG_MIN_INVOCATIONS = 4;

/** Problems at least this big (M·N·K) get 16×16 per thread; smaller ones at most 8×8, which */
/** compiles ~5× faster (~0.1 s vs ~0.45 s on SwiftShader) and runs almost as fast there. */
const REG_BIG_TILE_MIN_VOLUME = 1 << 22;

/**
 * The `reg` tile for a shape: 16 (8, 4) rows per thread when M allows, 16 (8, 4) columns when N
 * does (no clamped duplicate rows/columns wasted on thin matrices; 16 only for large problems),
 * then the largest workgroup up to 8×8 that still leaves REG_MIN_WORKGROUPS workgroups, halving
 * the longer side first.
 */
export function regConfigFor(a: MatmulArgs, vec4 = true): RegConfig {
  const big = a.m * a.n * a.k >= REG_BIG_TILE_MIN_VOLUME;
  const tm = a.m >= 16 && big ? 16 : a.m >= 8 ? 8 : 4;
  const nv = a.n >= 16 && big ? 4 : a.n >= 8 ? 2 : 1;
  const tx = Math.ceil(a.n / (4 * nv));
  const ty = Math.ceil(a.m / tm);
  const pow2 = (x: number) => 2 ** Math.ceil(Math.log2(Math.max(1, x)));
  let wgx = Math.min(8, pow2(tx));
  let wgy = Math.min(8, pow2(ty));
  const groups = () => Math.ceil(tx / wgx) * Math.ceil(ty / wgy);
  while (groups() < REG_MIN_WORKGROUPS && wgx * wgy > REG_MIN_INVOCATIONS) {
    if (wgx >= wgy) wgx /= 2;
    else wgy /= 2;
  }
  return { tm, nv, wgx, wgy, fma: true, vec4 };
}

/** Which operands can be read (and C written) as vec4, given alignment and layout. */
export interface VecPlan {
  readonly a4: boolean;
  readonly b4: boolean;
  readonly c4: boolean;
}

export function vecPlan(a: MatmulArgs, vec4 = true): VecPlan {
  return {
    a4: vec4 && a.offsetA % 4 === 0 && (a.transA ? a.m % 4 === 0 : a.k % 4 === 0),
    b4: vec4 && a.offsetB % 4 === 0 && (a.transB ? a.k % 4 === 0 : a.n % 4 === 0),
    c4: vec4 && a.n % 4 === 0,
  };
}

const V = 'vec4<f32>';
const COMP = ['x', 'y', 'z', 'w'] as const;
const range = (n: number) => [...Array(n).keys()];

function bindingsFor(a: MatmulArgs, p: VecPlan): Binding[] {
  const b: Binding[] = [
    { name: 'A', kind: 'read', type: p.a4 ? V : 'f32' },
    { name: 'B', kind: 'read', type: p.b4 ? V : 'f32' },
  ];
  if (a.bias) b.push({ name: 'bias', kind: 'read' });
  b.push({ name: 'C', kind: 'read_write', type: p.c4 ? V : 'f32' });
  return b;
}

function label(a: MatmulArgs, variant: string, p: VecPlan): string {
  const t = `${a.transA ? 'T' : 'N'}${a.transB ? 'T' : 'N'}`;
  const ep = `${a.bias ? '+bias' : ''}${a.activation ? `+${a.activation}` : ''}`;
  const v = `${p.a4 ? 'a4' : ''}${p.b4 ? 'b4' : ''}${p.c4 ? 'c4' : ''}`;
  return `matmul_${variant}_${t}${v ? `_${v}` : ''}[${a.m}x${a.k}x${a.n}${ep}]`;
}

/** Bias + activation for one element; `lines` must run in their own block (names repeat). */
function epilogue(a: MatmulArgs, value: string, col: string): { lines: string[]; result: string } {
  let v = value;
  const pre: string[] = [];
  if (a.bias) {
    pre.push(`  let biased = ${v} + bias[${col} + ${u32(a.bias.offset)}];`);
    v = 'biased';
  }
  if (!a.activation) return { lines: pre, result: v };
  const c = compileExpr({ op: a.activation, a: { op: 'in', i: 0 } }, () => v);
  return { lines: [...pre, ...c.lines], result: c.result };
}

/**
 * Stores a 4-wide row segment `acc` (vec4 over columns col0..col0+3) of row `row` as it is (the
 * epilogue runs afterwards, see epiloguePass): one vec4 store when N % 4 == 0, else guarded scalars.
 */
function storeRow(a: MatmulArgs, p: VecPlan, acc: string, row: string, col0: string, ind: string): string {
  const M = u32(a.m);
  const N = u32(a.n);
  const out: string[] = [];
  if (p.c4) {
    out.push(`if (${row} < ${M} && ${col0} < ${N}) { C[(${row} * ${N} + ${col0}) / 4u] = ${acc}; }`);
  } else {
    for (const j of range(4)) out.push(`if (${row} < ${M} && ${col0} + ${j}u < ${N}) { C[${row} * ${N} + ${col0} + ${j}u] = ${acc}.${COMP[j]}; }`);
  }
  return out.map((l) => ind + l).join('\n');
}

/**
 * Bias + activation over the thread's rows×cols block of C starting at (row0, col0), in place,
 * as a loop: one copy of the epilogue code (four with vec4 stores) instead of one per register,
 * which keeps large tiles quick to compile (an unrolled SELU per element took ~1 s on SwiftShader).
 */
function epiloguePass(a: MatmulArgs, p: VecPlan, rows: number, cols: number): string[] {
  if (!a.bias && !a.activation) return [];
  const M = u32(a.m);
  const N = u32(a.n);
  const L = [`for (var i = 0u; i < ${u32(rows)}; i++) {`, '  let row = row0 + i;', `  if (row >= ${M}) { break; }`];
  if (p.c4) {
    L.push(`  for (var cv = 0u; cv < ${u32(cols / 4)}; cv++) {`, '    let col = col0 + cv * 4u;', `    if (col >= ${N}) { break; }`);
    L.push(`    let ci = (row * ${N} + col) / 4u;`, '    let q = C[ci];');
    for (const j of range(4)) {
      const ep = epilogue(a, `q.${COMP[j]}`, `col + ${j}u`);
      L.push(`    var e${j}: f32;`, '    {', ...ep.lines.map((l) => '    ' + l), `      e${j} = ${ep.result};`, '    }');
    }
    L.push('    C[ci] = vec4<f32>(e0, e1, e2, e3);', '  }');
  } else {
    L.push(`  for (var j = 0u; j < ${u32(cols)}; j++) {`, '    let col = col0 + j;', `    if (col >= ${N}) { break; }`);
    const ep = epilogue(a, 'C[ci]', 'col');
    L.push(`    let ci = row * ${N} + col;`, ...ep.lines.map((l) => '    ' + l), `    C[ci] = ${ep.result};`, '  }');
  }
  L.push('}');
  return L;
}

/** Register-tiling shape: rows per thread, vec4 column groups per thread, workgroup size, FMA form. */
export interface RegConfig {
  readonly tm: number;
  /** Columns per thread = 4·nv. */
  readonly nv: number;
  readonly wgx: number;
  readonly wgy: number;
  /** fma(a, b, acc) or acc + a * b. */
  readonly fma: boolean;
  readonly vec4: boolean;
}

/**
 * Register tiling: each thread owns rows row0..row0+TM-1 × columns col0..col0+4·NV-1 of C as TM·NV
 * vec4 accumulators; K advances 4 at a time (one vec4 along K where A or Bᵀ is contiguous in K),
 * then a scalar tail for K % 4 (only possible when neither operand is read as vec4 along K).
 */
export function regKernel(a: MatmulArgs, cfg: RegConfig, name: string): KernelSpec {
  const { tm, nv, wgx, wgy } = cfg;
  const p = vecPlan(a, cfg.vec4);
  const { m, n, k, transA, transB } = a;
  const M = u32(m), N = u32(n), K = u32(k);
  const offA = a.offsetA, offB = a.offsetB;
  const R = range(tm);
  const Vs = range(nv);
  const J = range(4);
  const TN = 4 * nv;
  const JN = range(TN);
  const K4 = Math.floor(k / 4) * 4;
  const L: string[] = [];
  const ind = (s: string) => '  ' + s;
  const acc = (i: number, v: number) => `acc${i}_${v}`;
  const madd = (x: string, y: string, z: string) => (cfg.fma ? `fma(${x}, ${y}, ${z})` : `${z} + ${x} * ${y}`);

  L.push(`let row0 = gid.y * ${u32(tm)};`, `let col0 = gid.x * ${u32(TN)};`, `if (row0 >= ${M} || col0 >= ${N}) { return; }`);
  // Clamped row / column indices keep every load in bounds; stores are guarded instead.
  for (const i of R) L.push(`let r${i} = min(row0 + ${i}u, ${u32(m - 1)});`);
  for (const j of JN) L.push(`let c${j} = min(col0 + ${j}u, ${u32(n - 1)});`);
  // Loop-invariant bases.
  if (!transA) {
    for (const i of R) L.push(p.a4 ? `let ab${i} = (r${i} * ${K} + ${u32(offA)}) / 4u;` : `let ab${i} = r${i} * ${K} + ${u32(offA)};`);
  } else if (p.a4) {
    for (const q of range(Math.ceil(tm / 4))) L.push(`let aq${q} = (min(row0 + ${q * 4}u, ${u32(m - 4)}) + ${u32(offA)}) / 4u;`);
  }
  if (!transB) {
    if (p.b4) for (const v of Vs) L.push(`let bq${v} = (min(col0 + ${4 * v}u, ${u32(n - 4)}) + ${u32(offB)}) / 4u;`);
  } else {
    for (const j of JN) L.push(p.b4 ? `let bb${j} = (c${j} * ${K} + ${u32(offB)}) / 4u;` : `let bb${j} = c${j} * ${K} + ${u32(offB)};`);
  }
  for (const i of R) for (const v of Vs) L.push(`var ${acc(i, v)} = vec4<f32>(0.0);`);

  // ---- main loop: 4 k at a time ----
  const body: string[] = [];
  // aOf(i, kk) gives the WGSL scalar A(row i, k kk) of this chunk.
  let aOf: (i: number, kk: number) => string;
  if (!transA) {
    for (const i of R) {
      body.push(p.a4 ? `let a${i} = A[ab${i} + kq];` : `let a${i} = vec4<f32>(${J.map((c) => `A[ab${i} + kk + ${c}u]`).join(', ')});`);
    }
    aOf = (i, kk) => `a${i}.${COMP[kk]}`;
  } else if (p.a4) {
    for (const kk of J) for (const q of range(Math.ceil(tm / 4))) body.push(`let at${kk}_${q} = A[(kk + ${kk}u) * ${u32(m / 4)} + aq${q}];`);
    aOf = (i, kk) => `at${kk}_${Math.floor(i / 4)}.${COMP[i % 4]}`;
  } else {
    for (const kk of J) for (const i of R) body.push(`let at${kk}_${i} = A[(kk + ${kk}u) * ${M} + r${i} + ${u32(offA)}];`);
    aOf = (i, kk) => `at${kk}_${i}`;
  }
  // b${kk}_${v}: B(k kk, columns of group v) as a vec4.
  if (!transB) {
    for (const kk of J) {
      for (const v of Vs) {
        body.push(
          p.b4
            ? `let b${kk}_${v} = B[(kk + ${kk}u) * ${u32(n / 4)} + bq${v}];`
            : `let b${kk}_${v} = vec4<f32>(${J.map((j) => `B[(kk + ${kk}u) * ${N} + c${4 * v + j} + ${u32(offB)}]`).join(', ')});`,
        );
      }
    }
  } else {
    for (const j of JN) body.push(p.b4 ? `let bt${j} = B[bb${j} + kq];` : `let bt${j} = vec4<f32>(${J.map((c) => `B[bb${j} + kk + ${c}u]`).join(', ')});`);
    for (const kk of J) for (const v of Vs) body.push(`let b${kk}_${v} = vec4<f32>(${J.map((j) => `bt${4 * v + j}.${COMP[kk]}`).join(', ')});`);
  }
  for (const kk of J) for (const i of R) for (const v of Vs) body.push(`${acc(i, v)} = ${madd(`vec4<f32>(${aOf(i, kk)})`, `b${kk}_${v}`, acc(i, v))};`);

  if (K4 > 0) {
    L.push(`for (var kq = 0u; kq < ${u32(K4 / 4)}; kq++) {`, ind('let kk = kq * 4u;'), ...body.map(ind), '}');
  }
  // ---- tail: K % 4 remaining k, one at a time (vec4-along-K layouts have K % 4 == 0) ----
  if (k > K4) {
    const t: string[] = [];
    if (!transA) for (const i of R) t.push(`let a${i} = A[ab${i} + kk];`);
    else if (p.a4) for (const q of range(Math.ceil(tm / 4))) t.push(`let at_${q} = A[kk * ${u32(m / 4)} + aq${q}];`);
    else for (const i of R) t.push(`let a${i} = A[kk * ${M} + r${i} + ${u32(offA)}];`);
    const aT = (i: number) => (transA && p.a4 ? `at_${Math.floor(i / 4)}.${COMP[i % 4]}` : `a${i}`);
    for (const v of Vs) {
      if (!transB) t.push(p.b4 ? `let b_${v} = B[kk * ${u32(n / 4)} + bq${v}];` : `let b_${v} = vec4<f32>(${J.map((j) => `B[kk * ${N} + c${4 * v + j} + ${u32(offB)}]`).join(', ')});`);
      else t.push(`let b_${v} = vec4<f32>(${J.map((j) => `B[bb${4 * v + j} + kk]`).join(', ')});`);
    }
    for (const i of R) for (const v of Vs) t.push(`${acc(i, v)} = ${madd(`vec4<f32>(${aT(i)})`, `b_${v}`, acc(i, v))};`);
    L.push(`for (var kk = ${u32(K4)}; kk < ${K}; kk++) {`, ...t.map(ind), '}');
  }
  for (const i of R) for (const v of Vs) L.push(storeRow(a, p, acc(i, v), `(row0 + ${i}u)`, `(col0 + ${4 * v}u)`, ''));
  L.push(...epiloguePass(a, p, tm, TN));

  const src = `
@compute @workgroup_size(${wgx}, ${wgy})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${L.map((l) => l.split('\n').map((s) => '  ' + s).join('\n')).join('\n')}
}`;
  return spec(label(a, name, p), bindingsFor(a, p), src, [Math.ceil(n / (wgx * TN)), Math.ceil(m / (wgy * tm)), 1]);
}

/** Workgroup-memory tiling shape: threads per workgroup and rows / vec4 columns per thread. */
export interface WgConfig {
  readonly tx: number;
  readonly ty: number;
  readonly tm: number;
  readonly nv: number;
  readonly vec4: boolean;
}

/**
 * The `wgmem` default: a 64×64 tile per 8×8 workgroup, 8×8 per thread. On SwiftShader this was
 * ~1.5× faster than 16×16 threads of 4×4 (fewer invocations to run through each barrier), and it
 * is a common shape on GPUs (64 threads, 16 vec4 accumulators each).
 */
export const WGMEM_CONFIG: WgConfig = { tx: 8, ty: 8, tm: 8, nv: 2, vec4: true };

/** Depth of the K slab staged per iteration. */
const KT = 16;

/**
 * Workgroup-memory tiling: a (TY·TM)×(TX·4·NV) tile of C per TX×TY workgroup, each thread a TM×4NV
 * block in vec4 accumulators. Per K step of 16 the workgroup stages A (tile rows × 16 k, as 4 vec4
 * along k per row) and B (16 k × tile columns, as vec4 along n) in workgroup memory;
 * out-of-range elements read as 0 so any shape works.
 */
export function wgmemKernel(a: MatmulArgs, cfg: WgConfig, name: string): KernelSpec {
  const { tx, ty, tm, nv } = cfg;
  // Staging reads vec4 along K of A and along N of B; transposed operands are read as scalars.
  const full = vecPlan(a, cfg.vec4);
  const p: VecPlan = { a4: full.a4 && !a.transA, b4: full.b4 && !a.transB, c4: full.c4 };
  const { m, n, k, transA, transB } = a;
  const M = u32(m), N = u32(n), K = u32(k);
  const offA = u32(a.offsetA), offB = u32(a.offsetB);
  const J = range(4);
  const T = tx * ty;
  const tileM = ty * tm;
  const tileN = tx * 4 * nv;
  const aVecs = (tileM * KT) / 4; // vec4s of the A slab
  const bVecs = (KT * tileN) / 4;
  const KQ = KT / 4;
  const NQ = tileN / 4;
  // A tile element (row gr, k gk..gk+3) as a vec4 along k.
  let loadA: string;
  if (!transA && p.a4) {
    loadA = `if (gr < ${M} && gk < ${K}) { va = A[(gr * ${K} + gk + ${offA}) / 4u]; }`;
  } else {
    const idx = (c: number) => (transA ? `(gk + ${c}u) * ${M} + gr + ${offA}` : `gr * ${K} + gk + ${c}u + ${offA}`);
    const el = (c: number) => `select(0.0, A[min(${idx(c)}, ${u32(aMaxIndex(a))})], gk + ${c}u < ${K})`;
    loadA = `if (gr < ${M}) { va = vec4<f32>(${J.map(el).join(', ')}); }`;
  }
  // B tile element (k gk, columns gc..gc+3) as a vec4 along n.
  let loadB: string;
  if (!transB && p.b4) {
    loadB = `if (gk < ${K} && gc < ${N}) { vb = B[(gk * ${N} + gc + ${offB}) / 4u]; }`;
  } else {
    const idx = (c: number) => (transB ? `(gc + ${c}u) * ${K} + gk + ${offB}` : `gk * ${N} + gc + ${c}u + ${offB}`);
    const el = (c: number) => `select(0.0, B[min(${idx(c)}, ${u32(bMaxIndex(a))})], gc + ${c}u < ${N})`;
    loadB = `if (gk < ${K}) { vb = vec4<f32>(${J.map(el).join(', ')}); }`;
  }
  const R = range(tm);
  const Vs = range(nv);
  const acc = (i: number, v: number) => `acc${i}_${v}`;
  // One k-quad per iteration (a loop, not unrolled: SwiftShader compiles barrier kernels slowly).
  const fmas: string[] = [];
  for (const i of R) fmas.push(`let a${i} = As[(lid.y * ${u32(tm)} + ${i}u) * ${u32(KQ)} + kq];`);
  for (const kk of J) for (const v of Vs) fmas.push(`let b${kk}_${v} = Bs[(kq * 4u + ${kk}u) * ${u32(NQ)} + lid.x * ${u32(nv)} + ${v}u];`);
  for (const kk of J) for (const i of R) for (const v of Vs) fmas.push(`${acc(i, v)} = fma(vec4<f32>(a${i}.${COMP[kk]}), b${kk}_${v}, ${acc(i, v)});`);
  const stores = [
    ...R.flatMap((i) => Vs.map((v) => storeRow(a, p, acc(i, v), `(row0 + ${i}u)`, `(col0 + ${4 * v}u)`, '  '))),
    ...epiloguePass(a, p, tm, 4 * nv).map((l) => '  ' + l),
  ].join('\n');
  const stage = (count: number, body: string) =>
    count % T === 0 && count / T === 1 ? `    { let e = t;\n${body}\n    }` : `    for (var e = t; e < ${u32(count)}; e += ${u32(T)}) {\n${body}\n    }`;
  const src = `
var<workgroup> As: array<vec4<f32>, ${aVecs}>;
var<workgroup> Bs: array<vec4<f32>, ${bVecs}>;
@compute @workgroup_size(${tx}, ${ty})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let tileRow = wid.y * ${u32(tileM)};
  let tileCol = wid.x * ${u32(tileN)};
  let t = lid.y * ${u32(tx)} + lid.x;
  let row0 = tileRow + lid.y * ${u32(tm)};
  let col0 = tileCol + lid.x * ${u32(4 * nv)};
${R.flatMap((i) => Vs.map((v) => `  var ${acc(i, v)} = vec4<f32>(0.0);`)).join('\n')}
  for (var k0 = 0u; k0 < ${K}; k0 += ${u32(KT)}) {
${stage(aVecs, `      let gr = tileRow + e / ${u32(KQ)};
      let gk = k0 + (e % ${u32(KQ)}) * 4u;
      var va = vec4<f32>(0.0);
      ${loadA}
      As[e] = va;`)}
${stage(bVecs, `      let gk = k0 + e / ${u32(NQ)};
      let gc = tileCol + (e % ${u32(NQ)}) * 4u;
      var vb = vec4<f32>(0.0);
      ${loadB}
      Bs[e] = vb;`)}
    workgroupBarrier();
    for (var kq = 0u; kq < ${u32(KQ)}; kq++) {
${fmas.map((l) => '      ' + l).join('\n')}
    }
    workgroupBarrier();
  }
  if (row0 >= ${M} || col0 >= ${N}) { return; }
${stores}
}`;
  return spec(label(a, name, p), bindingsFor(a, p), src, [Math.ceil(n / tileN), Math.ceil(m / tileM), 1]);
}

/** Largest element index of A / B that a matmul may read (clamps guarded loads into bounds). */
function aMaxIndex(a: MatmulArgs): number {
  return a.offsetA + a.m * a.k - 1;
}
function bMaxIndex(a: MatmulArgs): number {
  return a.offsetB + a.k * a.n - 1;
}

export function matmulKernel(a: MatmulArgs, variant: MatmulVariant): KernelSpec {
  for (const [k, v] of [['m', a.m], ['n', a.n], ['k', a.k]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`matmul: ${k} must be a positive integer, got ${v}`);
  }
  switch (variant) {
    case 'reg': {
      const c = regConfigFor(a);
      return regKernel(a, c, `reg${c.tm}x${4 * c.nv}w${c.wgx}x${c.wgy}`);
    }
    case 'reg-scalar': {
      const c = regConfigFor(a, false);
      return regKernel(a, c, `reg${c.tm}x${4 * c.nv}w${c.wgx}x${c.wgy}s`);
    }
    case 'reg4x4': return regKernel(a, { tm: 4, nv: 1, wgx: 8, wgy: 8, fma: true, vec4: true }, variant);
    case 'wgmem': return wgmemKernel(a, WGMEM_CONFIG, variant);
    case 'wgmem-scalar': return wgmemKernel(a, { ...WGMEM_CONFIG, vec4: false }, 'wgmems');
    default: throw new Error(`matmul: unknown variant "${String(variant)}"; accepted: ${MATMUL_VARIANTS.join(', ')}`);
  }
}
