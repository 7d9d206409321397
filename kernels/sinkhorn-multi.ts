/**
 * The multi-workgroup log-domain Sinkhorn (the default above UNROLL_MAX points per side): the
 * iteration of kernels/sinkhorn.ts (whose header gives the math) split into one dispatch per
 * half-iteration, with a thread per row or column over many workgroups, so it fills a GPU instead
 * of one compute unit. The pair sampling is the single-workgroup kernel's own code.
 */
import type { KernelSpec } from '../engine/backend';
import { PHILOX_WGSL } from './random';
import { finishAndSample, samplerDecls, SINKHORN_MAX_N, UNROLL_MAX, type SinkhornShape } from './sinkhorn';
import { entry1d, grid1d, spec, u32, type Binding } from './wgsl';

/** Threads per workgroup of the multi-workgroup path's per-row / per-column kernels. */
const MW_WG = 64;
/**
 * Layout of the multi-workgroup path's state buffer (float32): a header, then scratch. Iteration
 * counters live here rather than in per-dispatch uniforms so that every iteration dispatch has the
 * same bind group (one uniform slot per dispatch would mean thousands of bind groups and an arena
 * flush every 512 dispatches).
 *  - IT_A: iterations completed (read by row updates and the check, written by column updates);
 *  - IT_B: the iteration in progress + 1 (written by row updates, read by column updates): two
 *    slots so that no dispatch reads the slot its thread 0 writes (other workgroups would race);
 *  - DONE: 1 once the stopping test passed (then converged); every iteration dispatch returns at once;
 *  - ERR, KAPPA, LAM0 (first ε-scaling inverse temperature), TOL, STAGE (stageIters);
 *  - scratch at SK_HDR: n row values (row minima while centring, then |s_i − a| per row), m column
 *    minima, n row maxima.
 */
export const SK = { IT_A: 0, IT_B: 1, DONE: 2, ERR: 3, KAPPA: 4, LAM0: 5, TOL: 6, STAGE: 7 } as const;
const SK_HDR = 16;

export function sinkhornStateSize(s: SinkhornShape): number {
  return SK_HDR + 2 * s.n + s.m;
}

/** Which kernel family a style resolves to: 'auto' takes 'unrolled' up to UNROLL_MAX per side, else 'multi'. */
export function sinkhornResolveStyle(n: number, m: number, style: 'auto' | 'unrolled' | 'loop' | 'multi' = 'auto'): 'unrolled' | 'loop' | 'multi' {
  if (style !== 'auto') return style;
  return n <= UNROLL_MAX && m <= UNROLL_MAX ? 'unrolled' : 'multi';
}

export interface SinkhornMultiKernels {
  /** [C, SK]: row minima and maxima of the raw cost. */
  rowStats: KernelSpec;
  /** [C, SK]: column minima of C − rowmin. */
  colMin: KernelSpec;
  /** [C, OUT, SK]: C ← C − rowmin_i − colmin_j in place; F = G = 0. */
  centre: KernelSpec;
  /** [SK] + uniforms: max C (from the row maxima), κ, λ0, tol, counters and flag. */
  init: KernelSpec;
  /** [C, OUT, SK]: one thread per row, F update and |s_i − a|. */
  row: KernelSpec;
  /** [C, OUT, SK]: one thread per column, G update. */
  col: KernelSpec;
  /** [SK]: L1 row-marginal error and the stopping flag (one workgroup). */
  check: KernelSpec;
  /** [C, OUT, SK]: final row masses r_i into OUT. */
  finalRows: KernelSpec;
  /** [C, OUT, SK, PAIRS] + uniforms: stats and pair sampling (one workgroup, shared with the single kernel). */
  sample: KernelSpec;
}

/**
 * The multi-workgroup Sinkhorn: the same iteration as sinkhornKernel (same centring, ε-scaling
 * schedule, one-exp relative LSE with the two-pass fallback, stopping test and output layout), but
 * each half-iteration is its own dispatch with one thread per row (or column) and no workgroup
 * barriers (slow on SwiftShader), so it spreads over every core / SM instead of one workgroup.
 * The caller records a FIXED sequence (see GpuSinkhorn.run): rowStats, colMin, centre, init, then
 * maxIter × (row, col) with a check after every checkEvery-th iteration, then finalRows and sample.
 * No readback and no CPU decisions: once the check sets DONE the remaining iteration dispatches
 * return at once, so the iteration count still adapts on the GPU.
 *
 * The per-iteration λ (ε-scaling) follows from the completed-iteration count:
 *   λ(it) = min(1, λ0 · 2^⌊it / stageIters⌋)   (λ = 1 without ε-scaling),
 * exactly the single kernel's repeated doubling (ldexp is exact).
 */
export function sinkhornMultiKernels(s: SinkhornShape): SinkhornMultiKernels {
  const { n, m } = s;
  const B = s.pairs;
  if (!Number.isInteger(n) || !Number.isInteger(m) || n < 1 || m < 1 || n > SINKHORN_MAX_N || m > SINKHORN_MAX_N) {
    throw new RangeError(`sinkhorn: n and m must be integers in 1..${SINKHORN_MAX_N}, got ${n} × ${m}`);
  }
  const N = u32(n), M = u32(m);
  const H = u32(SK_HDR), CMIN = u32(SK_HDR + n), RMAX = u32(SK_HDR + n + m);
  const tag = `${n}x${m}`;
  const lamFn = `
fn lamAt(it: u32) -> f32 {
  let stage = u32(SK[${SK.STAGE}]);
  if (stage == 0u) { return 1.0; }
  return min(1.0, ldexp(SK[${SK.LAM0}], i32(min(it / stage, 126u))));
}`;
  const cBind = (kind: 'read' | 'read_write'): Binding => ({ name: 'C', kind });
  const iterBindings: Binding[] = [cBind('read'), { name: 'OUT', kind: 'read_write' }, { name: 'SK', kind: 'read_write' }];
  const params = 'struct SkParams { reg: f32, tol: f32, maxIter: u32, checkEvery: u32, normalize: u32, key0: u32, key1: u32, draw: u32, mode: u32, stageIters: u32, p1: u32, p2: u32 }';

  const rowStats = spec(`skm_rowstats[${tag}]`, [cBind('read'), { name: 'SK', kind: 'read_write' }], entry1d(MW_WG, n, `
  var mn: f32 = 3.0e38;
  var mx: f32 = 0.0;
  for (var j = 0u; j < ${M}; j++) { let c = C[index * ${M} + j]; mn = min(mn, c); mx = max(mx, c); }
  SK[${H} + index] = mn;
  SK[${RMAX} + index] = mx;`), grid1d(n, MW_WG));

  const colMin = spec(`skm_colmin[${tag}]`, [cBind('read'), { name: 'SK', kind: 'read_write' }], entry1d(MW_WG, m, `
  var mn: f32 = 3.0e38;
  for (var i = 0u; i < ${N}; i++) { mn = min(mn, C[i * ${M} + index] - SK[${H} + i]); }
  SK[${CMIN} + index] = mn;`), grid1d(m, MW_WG));

  const centre = spec(`skm_centre[${tag}]`, [cBind('read_write'), { name: 'OUT', kind: 'read_write' }, { name: 'SK', kind: 'read_write' }], entry1d(MW_WG, n * m, `
  let i = index / ${M};
  let j = index % ${M};
  C[index] = C[index] - SK[${H} + i] - SK[${CMIN} + j];
  if (index < ${N}) { OUT[index] = 0.0; }
  if (index < ${M}) { OUT[${N} + index] = 0.0; }`), grid1d(n * m, MW_WG));

  const init = spec(`skm_init[${tag}]`, [{ name: 'sp', kind: 'uniform', type: 'SkParams' }, { name: 'SK', kind: 'read_write' }], `${params}
@compute @workgroup_size(1)
fn main() {
  var cm: f32 = 0.0;
  for (var i = 0u; i < ${N}; i++) { cm = max(cm, SK[${RMAX} + i]); }
  let cmax = max(cm, 1e-30);
  var kappa: f32 = 1.0 / sp.reg;
  if (sp.normalize != 0u) { kappa = 1.0 / (cmax * sp.reg); }
  var lam0: f32 = 1.0;
  if (sp.stageIters > 0u) { lam0 = min(1.0, 1.0 / (kappa * cmax)); }
  SK[${SK.IT_A}] = 0.0;
  SK[${SK.IT_B}] = 0.0;
  SK[${SK.DONE}] = 0.0;
  SK[${SK.ERR}] = 0.0;
  SK[${SK.KAPPA}] = kappa;
  SK[${SK.LAM0}] = lam0;
  SK[${SK.TOL}] = sp.tol;
  SK[${SK.STAGE}] = f32(sp.stageIters);
}`, [1, 1, 1]);

  // Row i: s = Σ_j exp(λ(F_i + G_j − κC_ij)) (current row mass, ≤ 1 after exact columns), then
  // F_i ← F_i + (log a − log s)/λ; exact two-pass max-shifted LSE when s under- or overflows.
  const row = spec(`skm_row[${tag}]`, iterBindings, entry1d(MW_WG, n, `
  if (SK[${SK.DONE}] != 0.0) { return; }
  let it = u32(SK[${SK.IT_A}]);
  if (index == 0u) { SK[${SK.IT_B}] = f32(it + 1u); }
  let lam = lamAt(it);
  let kappa = SK[${SK.KAPPA}];
  let loga = -log(${n}.0);
  let base = index * ${M};
  let Fi = OUT[index];
  var s: f32 = 0.0;
  for (var j = 0u; j < ${M}; j++) { s += exp(lam * (Fi + OUT[${N} + j] - kappa * C[base + j])); }
  var Fn: f32 = 0.0;
  var mass: f32 = s;
  if (s > 1e-30 && s < 1e30) {
    Fn = Fi + (loga - log(s)) / lam;
  } else {
    var mx: f32 = -3.0e38;
    for (var j = 0u; j < ${M}; j++) { mx = max(mx, lam * (OUT[${N} + j] - kappa * C[base + j])); }
    var s2: f32 = 0.0;
    for (var j = 0u; j < ${M}; j++) { s2 += exp(lam * (OUT[${N} + j] - kappa * C[base + j]) - mx); }
    let lse = mx + log(s2);
    Fn = (loga - lse) / lam;
    mass = exp(min(lam * Fi + lse, 80.0));
  }
  OUT[index] = Fn;
  SK[${H} + index] = abs(mass - 1.0 / ${n}.0);`, lamFn), grid1d(n, MW_WG));

  const col = spec(`skm_col[${tag}]`, iterBindings, entry1d(MW_WG, m, `
  if (SK[${SK.DONE}] != 0.0) { return; }
  let it = u32(SK[${SK.IT_B}]) - 1u;
  if (index == 0u) { SK[${SK.IT_A}] = f32(it + 1u); }
  let lam = lamAt(it);
  let kappa = SK[${SK.KAPPA}];
  let logb = -log(${m}.0);
  let Gj = OUT[${N} + index];
  var s: f32 = 0.0;
  for (var i = 0u; i < ${N}; i++) { s += exp(lam * (OUT[i] + Gj - kappa * C[i * ${M} + index])); }
  if (s > 1e-30 && s < 1e30) {
    OUT[${N} + index] = Gj + (logb - log(s)) / lam;
  } else {
    var mx: f32 = -3.0e38;
    for (var i = 0u; i < ${N}; i++) { mx = max(mx, lam * (OUT[i] - kappa * C[i * ${M} + index])); }
    var s2: f32 = 0.0;
    for (var i = 0u; i < ${N}; i++) { s2 += exp(lam * (OUT[i] - kappa * C[i * ${M} + index]) - mx); }
    OUT[${N} + index] = (logb - (mx + log(s2))) / lam;
  }`, lamFn), grid1d(m, MW_WG));

  // err = Σ_i |s_i − a| from the row masses of the iteration just completed (its columns were
  // exact); tested only at the final ε (λ = 1) and after the first iteration, as the single kernel.
  const check = spec(`skm_check[${tag}]`, [{ name: 'SK', kind: 'read_write' }], `${lamFn}
var<workgroup> red: array<f32, ${MW_WG}>;
var<workgroup> flag: f32;
@compute @workgroup_size(${MW_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  if (lid == 0u) { flag = SK[${SK.DONE}]; }
  if (workgroupUniformLoad(&flag) != 0.0) { return; }
  var e: f32 = 0.0;
  for (var i = lid; i < ${N}; i += ${u32(MW_WG)}) { e += SK[${H} + i]; }
  red[lid] = e;
  workgroupBarrier();
  if (lid == 0u) {
    let it = u32(SK[${SK.IT_A}]);
    if (it > 1u && lamAt(it - 1u) >= 1.0) {
      var total: f32 = 0.0;
      for (var k = 0u; k < ${u32(MW_WG)}; k++) { total += red[k]; }
      SK[${SK.ERR}] = total;
      if (total <= SK[${SK.TOL}]) { SK[${SK.DONE}] = 1.0; }
    }
  }
}`, [1, 1, 1]);

  const finalRows = spec(`skm_final[${tag}]`, iterBindings, entry1d(MW_WG, n, `
  let kappa = SK[${SK.KAPPA}];
  let Fi = OUT[index];
  var s: f32 = 0.0;
  for (var j = 0u; j < ${M}; j++) { s += exp(Fi + OUT[${N} + j] - kappa * C[index * ${M} + j]); }
  OUT[${u32(n + m)} + index] = s;`), grid1d(n, MW_WG));

  const SWG = 256;
  const sample = spec(`skm_sample[${tag}→${B}]`, [{ name: 'sp', kind: 'uniform', type: 'SkParams' }, cBind('read'), { name: 'OUT', kind: 'read_write' }, { name: 'SK', kind: 'read_write' }, { name: 'PAIRS', kind: 'read_write' }], `${PHILOX_WGSL}
${samplerDecls(n, m, SWG)}
@compute @workgroup_size(${SWG})
fn main(@builtin(local_invocation_index) lid: u32) {
  let kappa = SK[${SK.KAPPA}];
  let it = u32(SK[${SK.IT_A}]);
  let converged = u32(SK[${SK.DONE}]);
  let a = 1.0 / ${n}.0;
  var e2: f32 = 0.0;
  for (var i = lid; i < ${N}; i += ${u32(SWG)}) {
    Fs[i] = OUT[i];
    let r = OUT[${u32(n + m)} + i];
    Rs[i] = r;
    e2 += abs(r - a);
  }
  for (var j = lid; j < ${M}; j += ${u32(SWG)}) { Gs[j] = OUT[${N} + j]; }
  workgroupBarrier();
${finishAndSample(n, m, B, SWG)}
}`, [1, 1, 1]);

  return { rowStats, colMin, centre, init, row, col, check, finalRows, sample };
}
