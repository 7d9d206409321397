/**
 * Minibatch optimal transport on the GPU: the squared-Euclidean cost matrix, and entropic OT by
 * log-domain Sinkhorn iterations with pair sampling from the plan — all iterations, the stopping
 * test and the sampling in one dispatch of one workgroup (so no readback and no per-iteration
 * dispatch: the iteration count adapts on the GPU).
 *
 * Log-domain Sinkhorn (Peyré & Cuturi, "Computational Optimal Transport", §4.4): with uniform
 * marginals a = 1/n, b = 1/m, dimensionless potentials F = f/ε, G = g/ε and κ = scale/ε
 * (scale = 1, or 1/max C with cost normalisation as torchcfm's `normalize_cost`), the plan is
 * P_ij = exp(F_i + G_j − κ C_ij) and the updates are
 *   F_i ← log a − LSE_j(G_j − κ C_ij),     G_j ← log b − LSE_i(F_i − κ C_ij).
 * Each log-sum-exp is taken relative to the current potential: s_i = Σ_j exp(F_i + G_j − κ C_ij)
 * is the current row mass, which never exceeds 1 once the columns have been normalised (every
 * entry is then ≤ 1/m), so it cannot overflow; when it underflows (a row with almost no mass, or
 * the first iteration at small ε) the row falls back to the exact two-pass max-shifted LSE. That
 * costs one exp per entry per half-iteration instead of two. The row masses are also the stopping
 * test: after a column update the columns are exact, and err = Σ_i |s_i − a| (L1 marginal error,
 * total mass 1) is measured every `checkEvery` iterations; the loop stops when err ≤ tol or after
 * maxIter iterations. Every value stays in log space, so ε far below the cost scale works (where
 * exp(−C/ε) underflows and the classical Sinkhorn form divides 0 by 0).
 *
 * Precision and speed:
 *  - the cost is centred first (C − row minima − column minima of the rest, in place): the plan is
 *    unchanged, but F + G − κC no longer cancels terms of size κ·max C, which keeps float32 marginal
 *    errors near 1e-5 at ε = 0.05 on raw costs;
 *  - optional ε-scaling (uniform `stageIters` > 0): iterations start at ε0 = max C and ε halves every
 *    stageIters iterations down to reg (exponents scaled by λ = reg/ε ≤ 1); the stopping test only
 *    runs at the final ε. Same fixed point, far fewer iterations when reg ≪ max C;
 *  - up to 256 points per side (UNROLL_MAX) each of 64 threads keeps ⌈n/64⌉ rows and ⌈m/64⌉ columns
 *    of κC in private arrays and the sums are fully unrolled, so every read is at a constant index
 *    and one Gs[j] read serves all of a thread's rows. Measured at n = 256 on SwiftShader this cut
 *    the per-iteration cost ~3× against the loop over the matrix in storage ('loop' style);
 *  - above 256 points per side 'auto' takes kernels/sinkhorn-multi.ts (a dispatch per half-iteration
 *    over many workgroups), which shares this file's pair sampling.
 *
 *  - above UNROLL_MAX per side, 'auto' takes the multi-workgroup path (sinkhornMultiKernels): one
 *    dispatch per half-iteration, a thread per row / column, no barriers, a DONE flag in storage so
 *    a fixed recorded sequence keeps the adaptive stop; same arithmetic, stats, layout and sampling
 *    (finishAndSample is shared). On a GPU it fills every SM instead of one; on loaded SwiftShader
 *    (one core free) it measured only ~15% faster at n = 1024: there the cost is per matrix entry
 *    (a gathered storage read + exp, ~20 ns), not parallelism.
 *
 * The output buffer holds [F (n), G (m), r (n: final row masses), stats (4)], stats = [iterations,
 * L1 row-marginal error, κ, 1 if converged]. Pairs (as float indices, the engine's index dtype) go
 * to a second buffer [i_0..i_{B−1}, j_0..j_{B−1}]:
 *  - 'replacement': B cells drawn i.i.d. from P (torchcfm's np.random.choice on the flattened plan):
 *    a row by inverse CDF of the row masses, then a column by inverse CDF within the row;
 *  - 'permutation' (B = n = m): every row once, in order, each taking a column not yet taken with
 *    probability ∝ P_ij (sequential sampling without replacement; no duplicate points).
 */
import type { KernelSpec } from '../engine/backend';
import { PHILOX_WGSL } from './random';
import { entry1d, grid1d, spec, u32, type Binding } from './wgsl';

/** Threads of the single workgroup (set per kernel; see sinkhornKernel's `threads`). */
let WG = 256;
/**
 * Up to this size each thread keeps its rows and columns of κC in private arrays and the sums are
 * unrolled, so every read is at a constant index (SwiftShader turns dynamically indexed reads into
 * per-lane gathers, its main cost); larger problems loop over the cost matrix in storage.
 */
export const UNROLL_MAX = 256;
/** Largest n or m the single-workgroup kernel holds in workgroup memory. */
export const SINKHORN_MAX_N = 2048;

export type PairSampling = 'replacement' | 'permutation' | 'none';

export interface SinkhornShape {
  n: number;
  m: number;
  /** Pairs to draw (0 with sampling 'none'). */
  pairs: number;
}

/** Uniform block: reg, tol, maxIter, checkEvery, normalize, key0, key1, draw, mode, stageIters (0: no ε-scaling). */
export function sinkhornUniforms(o: { reg: number; tol: number; maxIter: number; checkEvery: number; normalize: boolean; key: [number, number]; draw: number; sampling: PairSampling; stageIters?: number }): Uint8Array {
  const buf = new ArrayBuffer(48);
  const f = new Float32Array(buf);
  const u = new Uint32Array(buf);
  f[0] = o.reg;
  f[1] = o.tol;
  u[2] = o.maxIter >>> 0;
  u[3] = Math.max(1, o.checkEvery) >>> 0;
  u[4] = o.normalize ? 1 : 0;
  u[5] = o.key[0] >>> 0;
  u[6] = o.key[1] >>> 0;
  u[7] = o.draw >>> 0;
  u[8] = o.sampling === 'replacement' ? 0 : o.sampling === 'permutation' ? 1 : 2;
  u[9] = (o.stageIters ?? 0) >>> 0;
  return new Uint8Array(buf);
}

export function sinkhornOutSize(s: SinkhornShape): number {
  return 2 * s.n + s.m + 4;
}

/**
 * Bindings: uniforms, C (n × m cost; centred in place: C_ij − min_j C_ij − min_i(…), which defines the
 * same plan with the returned potentials), OUT (read_write, sinkhornOutSize), PAIRS (read_write,
 * 2·pairs floats, at least 1). One workgroup.
 */
export function sinkhornKernel(s: SinkhornShape, style: 'auto' | 'unrolled' | 'loop' = 'auto', threads?: number): KernelSpec {
  const { n, m } = s;
  if ((style as string) === 'multi') throw new Error('sinkhornKernel: style multi is a sequence of kernels (sinkhornMultiKernels)');
  const unrolled = style === 'unrolled' || (style === 'auto' && n <= UNROLL_MAX && m <= UNROLL_MAX);
  // Unrolled: 64 threads × ⌈n/64⌉ rows each share every Gs[j] read (measured best at n = 256).
  WG = threads ?? (unrolled ? 64 : 256);
  const R = Math.ceil(n / WG), RC = Math.ceil(m / WG);
  const B = s.pairs;
  if (!Number.isInteger(n) || !Number.isInteger(m) || n < 1 || m < 1 || n > SINKHORN_MAX_N || m > SINKHORN_MAX_N) {
    throw new RangeError(`sinkhorn: n and m must be integers in 1..${SINKHORN_MAX_N}, got ${n} × ${m}`);
  }
  const N = u32(n), M = u32(m);
  const bindings: Binding[] = [
    { name: 'sp', kind: 'uniform', type: 'SkParams' },
    { name: 'C', kind: 'read_write' },
    { name: 'OUT', kind: 'read_write' },
    { name: 'PAIRS', kind: 'read_write' },
  ];
  const src = `${PHILOX_WGSL}
${samplerDecls(n, m, WG)}
// Row i at inverse temperature lam: new F_i and the row mass s_i = Σ_j exp(lam(F_i + G_j − κC_ij)).
fn rowUpdate(i: u32, kappa: f32, lam: f32, loga: f32) -> vec2f {
  let Fi = Fs[i];
  var s = 0.0;
  for (var j = 0u; j < ${M}; j++) { s += exp(lam * (Fi + Gs[j] - kappa * C[i * ${M} + j])); }
  if (s > 1e-30 && s < 1e30) { return vec2f(Fi + (loga - log(s)) / lam, s); }
  var mx = -3.0e38;
  for (var j = 0u; j < ${M}; j++) { mx = max(mx, lam * (Gs[j] - kappa * C[i * ${M} + j])); }
  var s2 = 0.0;
  for (var j = 0u; j < ${M}; j++) { s2 += exp(lam * (Gs[j] - kappa * C[i * ${M} + j]) - mx); }
  let lse = mx + log(s2);
  return vec2f((loga - lse) / lam, exp(min(lam * Fi + lse, 80.0)));
}

fn colUpdate(j: u32, kappa: f32, lam: f32, logb: f32) -> f32 {
  let Gj = Gs[j];
  var s = 0.0;
  for (var i = 0u; i < ${N}; i++) { s += exp(lam * (Fs[i] + Gj - kappa * C[i * ${M} + j])); }
  if (s > 1e-30 && s < 1e30) { return Gj + (logb - log(s)) / lam; }
  var mx = -3.0e38;
  for (var i = 0u; i < ${N}; i++) { mx = max(mx, lam * (Fs[i] - kappa * C[i * ${M} + j])); }
  var s2 = 0.0;
  for (var i = 0u; i < ${N}; i++) { s2 += exp(lam * (Fs[i] - kappa * C[i * ${M} + j]) - mx); }
  return (logb - (mx + log(s2))) / lam;
}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  // Cost scale (normalisation by the largest entry, as torchcfm's normalize_cost).
  var cm = 0.0;
  for (var k = lid; k < ${u32(n * m)}; k += ${u32(WG)}) { cm = max(cm, C[k]); }
  let cmax = max(treeMax(lid, cm), 1e-30);
  var kappa = 1.0 / sp.reg;
  if (sp.normalize != 0u) { kappa = 1.0 / (cmax * sp.reg); }
  // ε-scaling: start at ε0 = max C (lam = ε/ε0) and double lam every stageIters iterations.
  var lam = 1.0;
  if (sp.stageIters > 0u) { lam = min(1.0, 1.0 / (kappa * cmax)); }
  let loga = -log(${n}.0);
  let logb = -log(${m}.0);
  let a = 1.0 / ${n}.0;
  // Centre the cost in place, C ← C − rmin_i − cmin_j (row minima, then column minima of the rest):
  // the plan is unchanged (the potentials absorb the shifts) but the exponents F + G − κC no longer
  // cancel large terms, which keeps float32 accurate at small ε.
  for (var i = lid; i < ${N}; i += ${u32(WG)}) {
    var mn = 3.0e38;
    for (var j = 0u; j < ${M}; j++) { mn = min(mn, C[i * ${M} + j]); }
    Rs[i] = mn;
  }
  workgroupBarrier();
  for (var j = lid; j < ${M}; j += ${u32(WG)}) {
    var mn = 3.0e38;
    for (var i = 0u; i < ${N}; i++) { mn = min(mn, C[i * ${M} + j] - Rs[i]); }
    Gs[j] = mn;
  }
  workgroupBarrier();
  for (var i = lid; i < ${N}; i += ${u32(WG)}) {
    for (var j = 0u; j < ${M}; j++) { C[i * ${M} + j] = C[i * ${M} + j] - Rs[i] - Gs[j]; }
  }
  workgroupBarrier();
  for (var i = lid; i < ${N}; i += ${u32(WG)}) { Fs[i] = 0.0; }
  for (var j = lid; j < ${M}; j += ${u32(WG)}) { Gs[j] = 0.0; }
${unrolled ? privateCopies(n, m, R, RC) : ''}
  workgroupBarrier();
  var it = 0u;
  var err = 0.0;
  var converged = 0u;
  loop {
    if (it >= sp.maxIter) { break; }
    if (sp.stageIters > 0u && lam < 1.0 && it > 0u && it % sp.stageIters == 0u) { lam = min(1.0, 2.0 * lam); }
    var e = 0.0;
${unrolled ? unrolledRows(n, m, R) : `    for (var i = lid; i < ${N}; i += ${u32(WG)}) {
      let r = rowUpdate(i, kappa, lam, loga);
      Fs[i] = r.x;
      e += abs(r.y - a);
    }`}
    workgroupBarrier();
${unrolled ? unrolledCols(n, m, RC) : `    for (var j = lid; j < ${M}; j += ${u32(WG)}) { Gs[j] = colUpdate(j, kappa, lam, logb); }`}
    workgroupBarrier();
    it += 1u;
    // e is the row error of the plan before this iteration's row update (columns were exact).
    if (it % sp.checkEvery == 0u && it > 1u && lam >= 1.0) {
      let total = treeSum(lid, e);
      if (lid == 0u) { stopFlag = select(0u, 1u, total <= sp.tol); }
      err = total;
      let stop = workgroupUniformLoad(&stopFlag);
      if (stop == 1u) { converged = 1u; break; }
    }
  }
  // Final row masses of the plan (columns are exact after the last update).
  var e2 = 0.0;
  for (var i = lid; i < ${N}; i += ${u32(WG)}) {
    var s = 0.0;
    for (var j = 0u; j < ${M}; j++) { s += planEntry(i, j, kappa); }
    Rs[i] = s;
    e2 += abs(s - a);
    OUT[i] = Fs[i];
    OUT[${u32(n + m)} + i] = s;
  }
  for (var j = lid; j < ${M}; j += ${u32(WG)}) { OUT[${N} + j] = Gs[j]; }
  _ = err;
${finishAndSample(n, m, B, WG)}
}`;
  return spec(`sinkhorn_${unrolled ? 'unrolled' : 'loop'}${WG}[${n}x${m}→${B}]`, bindings, src, [1, 1, 1]);
}

/**
 * Declarations shared by the single-workgroup kernel and the multi-workgroup path's sampling
 * kernel: the uniform block, the potentials and row masses in workgroup memory (Fs, Gs, Rs), tree
 * reductions over `wg` threads, the plan entry P_ij = exp(F_i + G_j − κC_ij) and the Philox draws.
 */
export function samplerDecls(n: number, m: number, wg: number): string {
  return `struct SkParams { reg: f32, tol: f32, maxIter: u32, checkEvery: u32, normalize: u32, key0: u32, key1: u32, draw: u32, mode: u32, stageIters: u32, p1: u32, p2: u32 }
var<workgroup> Fs: array<f32, ${n}>;
var<workgroup> Gs: array<f32, ${m}>;
var<workgroup> Rs: array<f32, ${Math.max(n, m)}>;
var<workgroup> red: array<f32, ${wg}>;
var<workgroup> stopFlag: u32;

fn treeSum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var k = ${u32(wg / 2)}; k > 0u; k >>= 1u) {
    if (lid < k) { red[lid] = red[lid] + red[lid + k]; }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}

fn treeMax(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var k = ${u32(wg / 2)}; k > 0u; k >>= 1u) {
    if (lid < k) { red[lid] = max(red[lid], red[lid + k]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}
fn planEntry(i: u32, j: u32, kappa: f32) -> f32 {
  return exp(Fs[i] + Gs[j] - kappa * C[i * ${u32(m)} + j]);
}

fn uniform2(p: u32) -> vec2f {
  let w = philox(vec4u(p, sp.draw, 0x51c4u, 0u), vec2u(sp.key0, sp.key1));
  return vec2f(toUniform(w.x), toUniform(w.y));
}
`;
}

/**
 * The end of a solve, shared by both paths: with Fs, Gs, the final row masses Rs, the partial
 * L1 errors e2 (per thread), `it`, `converged` and `kappa` in scope, writes the stats to OUT,
 * turns Rs into the row CDF and draws the pairs ('replacement' / 'permutation' / 'none' by sp.mode).
 */
export function finishAndSample(n: number, m: number, B: number, wg: number): string {
  return `  let finalErr = treeSum(lid, e2);
  if (lid == 0u) {
    let st = ${u32(2 * n + m)};
    OUT[st] = f32(it);
    OUT[st + 1u] = finalErr;
    OUT[st + 2u] = kappa;
    OUT[st + 3u] = f32(select(converged, 1u, finalErr <= sp.tol));
    // Row CDF (serial: n adds) for sampling with replacement.
    var acc = 0.0;
    for (var i = 0u; i < ${u32(n)}; i++) { acc += Rs[i]; Rs[i] = acc; }
  }
  workgroupBarrier();
  if (sp.mode == 0u) {
    let total = Rs[${u32(n - 1)}];
    for (var p = lid; p < ${u32(B)}; p += ${u32(wg)}) {
      let u = uniform2(p);
      // Row: first i with CDF > u·total (binary search).
      let tgt = u.x * total;
      var lo = 0u;
      var hi = ${u32(n - 1)};
      loop {
        if (lo >= hi) { break; }
        let mid = (lo + hi) / 2u;
        if (Rs[mid] > tgt) { hi = mid; } else { lo = mid + 1u; }
      }
      let i = lo;
      let rowMass = Rs[i] - select(0.0, Rs[max(i, 1u) - 1u], i > 0u);
      let t2 = u.y * rowMass;
      var c = 0.0;
      var pick = ${u32(m - 1)};
      for (var j = 0u; j < ${u32(m)}; j++) {
        c += planEntry(i, j, kappa);
        if (c > t2) { pick = j; break; }
      }
      PAIRS[p] = f32(i);
      PAIRS[${u32(B)} + p] = f32(pick);
    }
  } else if (sp.mode == 1u && lid == 0u) {
    // Sequential sampling without replacement: Rs[j] becomes the "column taken" flag.
    for (var j = 0u; j < ${u32(m)}; j++) { Rs[j] = 0.0; }
    for (var i = 0u; i < min(${u32(n)}, ${u32(B)}); i++) {
      var tot = 0.0;
      for (var j = 0u; j < ${u32(m)}; j++) { tot += select(planEntry(i, j, kappa), 0.0, Rs[j] > 0.5); }
      let t2 = uniform2(i).y * tot;
      var c = 0.0;
      var pick = ${u32(m)};
      var lastFree = 0u;
      for (var j = 0u; j < ${u32(m)}; j++) {
        if (Rs[j] > 0.5) { continue; }
        lastFree = j;
        c += planEntry(i, j, kappa);
        if (c > t2) { pick = j; break; }
      }
      if (pick == ${u32(m)}) { pick = lastFree; }
      Rs[pick] = 1.0;
      PAIRS[i] = f32(i);
      PAIRS[${u32(B)} + i] = f32(pick);
    }
  }`;
}

const rng = (k: number): number[] => [...Array(k).keys()];

/** Private copies κ·C of the rows lid + 256r and the columns lid + 256c (constant-index arrays). */
function privateCopies(n: number, m: number, R: number, RC: number): string {
  const L: string[] = [];
  for (let r = 0; r < R; r++) {
    L.push(`  var crow${r}: array<f32, ${m}>;`, '  {', `    let i = min(lid + ${u32(r * WG)}, ${u32(n - 1)});`);
    for (let j = 0; j < m; j++) L.push(`    crow${r}[${j}] = kappa * C[i * ${u32(m)} + ${u32(j)}];`);
    L.push('  }');
  }
  for (let c = 0; c < RC; c++) {
    L.push(`  var ccol${c}: array<f32, ${n}>;`, '  {', `    let j = min(lid + ${u32(c * WG)}, ${u32(m - 1)});`);
    for (let i = 0; i < n; i++) L.push(`    ccol${c}[${i}] = kappa * C[${u32(i * m)} + j];`);
    L.push('  }');
  }
  return L.join('\n');
}

/**
 * Row updates from the private rows: the sum is unrolled, so every read is at a constant index
 * (Gs[j]: the same address in every lane; crow[j]: the lane's own slot) — no per-lane gathers.
 * A row whose mass under- or overflows takes the exact two-pass path (rowUpdate).
 */
function unrolledRows(n: number, m: number, R: number): string {
  // All R rows of the thread in one pass over j, so each Gs[j] read serves R rows.
  const L: string[] = [];
  const rows = rng(R);
  for (const r of rows) L.push(`    let i${r} = min(lid + ${u32(r * WG)}, ${u32(n - 1)});`, `    let F${r} = Fs[i${r}];`, `    var s${r} = 0.0;`);
  for (let j = 0; j < m; j++) {
    L.push(`    { let g = Gs[${j}]; ${rows.map((r) => `s${r} += exp(lam * (F${r} + g - crow${r}[${j}]));`).join(' ')} }`);
  }
  for (const r of rows) {
    L.push(`    if (lid + ${u32(r * WG)} < ${u32(n)}) {`,
      `      if (s${r} > 1e-30 && s${r} < 1e30) {`, `        Fs[i${r}] = F${r} + (loga - log(s${r})) / lam;`, `        e += abs(s${r} - a);`, '      } else {',
      `        let q = rowUpdate(i${r}, kappa, lam, loga);`, `        Fs[i${r}] = q.x;`, '        e += abs(q.y - a);', '      }', '    }');
  }
  return L.join('\n');
}

function unrolledCols(n: number, m: number, RC: number): string {
  const L: string[] = [];
  const cols = rng(RC);
  for (const c of cols) L.push(`    let j${c} = min(lid + ${u32(c * WG)}, ${u32(m - 1)});`, `    let G${c} = Gs[j${c}];`, `    var t${c} = 0.0;`);
  for (let i = 0; i < n; i++) {
    L.push(`    { let f = Fs[${i}]; ${cols.map((c) => `t${c} += exp(lam * (f + G${c} - ccol${c}[${i}]));`).join(' ')} }`);
  }
  for (const c of cols) {
    L.push(`    if (lid + ${u32(c * WG)} < ${u32(m)}) {`,
      `      if (t${c} > 1e-30 && t${c} < 1e30) {`, `        Gs[j${c}] = G${c} + (logb - log(t${c})) / lam;`, '      } else {',
      `        Gs[j${c}] = colUpdate(j${c}, kappa, lam, logb);`, '      }', '    }');
  }
  return L.join('\n');
}

/**
 * Squared-Euclidean cost C_ij = ‖x_i‖² + ‖y_j‖² − 2·x_i·y_j (clamped at 0) between x (n × d) and
 * y (m × d): an inner-product (matmul) kernel with the norms in its epilogue; each thread computes
 * a 1 × 4 strip of C. Bindings: X, Y (read), C (read_write). Element offsets of X and Y baked in.
 */
export function sqEuclideanCostKernel(n: number, m: number, d: number, offX = 0, offY = 0): KernelSpec {
  const bindings: Binding[] = [{ name: 'X', kind: 'read' }, { name: 'Y', kind: 'read' }, { name: 'Cm', kind: 'read_write' }];
  const cols = Math.ceil(m / 4);
  const total = n * cols;
  const src = `
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let idx = gid.x + gid.y * ${u32(Math.min(65535, Math.ceil(total / 64)) * 64)};
  if (idx >= ${u32(total)}) { return; }
  let i = idx / ${u32(cols)};
  let j0 = (idx % ${u32(cols)}) * 4u;
  var nx = 0.0;
  var dot = vec4f(0.0);
  var ny = vec4f(0.0);
  for (var k = 0u; k < ${u32(d)}; k++) {
    let xv = X[${u32(offX)} + i * ${u32(d)} + k];
    nx = fma(xv, xv, nx);
    var yv = vec4f(0.0);
    for (var q = 0u; q < 4u; q++) { yv[q] = Y[${u32(offY)} + min(j0 + q, ${u32(m - 1)}) * ${u32(d)} + k]; }
    dot = fma(vec4f(xv), yv, dot);
    ny = fma(yv, yv, ny);
  }
  let c = max(vec4f(nx) + ny - 2.0 * dot, vec4f(0.0));
  for (var q = 0u; q < 4u; q++) {
    if (j0 + q < ${u32(m)}) { Cm[i * ${u32(m)} + j0 + q] = c[q]; }
  }
}`;
  const groups = Math.ceil(total / 64);
  const wg: [number, number, number] = groups <= 65535 ? [groups, 1, 1] : [65535, Math.ceil(groups / 65535), 1];
  return spec(`sqcost[${n}x${m}x${d}]`, bindings, src, wg);
}
