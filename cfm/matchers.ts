/**
 * The conditional flow matchers of SPEC §3, with torchcfm 1.0.7's semantics (x0 ~ source,
 * x1 ~ target, t ~ U[0, 1), eps ~ N(0, I), x_t = mu_t + sigma_t·eps):
 *
 * | name   | coupling            | mu_t                            | sigma_t        | u_t                                        |
 * |--------|---------------------|---------------------------------|----------------|--------------------------------------------|
 * | icfm   | independent         | t·x1 + (1−t)·x0                 | σ              | x1 − x0                                    |
 * | otcfm  | minibatch OT plan   | as icfm                         | σ              | x1 − x0                                    |
 * | fm     | none (x0 unused)    | t·x1                            | 1 − (1−σ)·t    | (x1 − (1−σ)·x_t) / (1 − (1−σ)·t)           |
 * | sbcfm  | entropic OT, 2σ²    | as icfm                         | σ·√(t(1−t))    | (1−2t)/(2t(1−t) + 1e-8)·(x_t − mu_t) + x1 − x0 |
 * | vpcfm  | independent         | cos(πt/2)·x0 + sin(πt/2)·x1     | σ              | π/2·(cos(πt/2)·x1 − sin(πt/2)·x0)          |
 * | sf2m   | minibatch OT plan   | as sbcfm                        | as sbcfm       | as sbcfm (plus a score target: cfm/sf2m.ts) |
 *
 * (The 1e-8 in sbcfm's denominator is torchcfm's.) Each matcher exists twice: a float64 CPU form
 * (the closed forms, for tests and references) and a WGSL function used by the GPU kernels; the
 * random t and eps come from a Philox stream defined here, so the CPU can reproduce them exactly.
 */
import type { CfmMethod } from '../train/contract';
import type { KernelSpec } from '../engine/backend';
import { philox4x32, seedKey, u32ToUniform, u32ToUniformOpenZero } from '../engine/philox';
import { PHILOX_WGSL } from '../kernels/random';
import { f32, spec, u32, type Binding } from '../kernels/wgsl';

export type Coupling = 'independent' | 'ot' | 'entropic';

export interface MatcherInfo {
  name: CfmMethod;
  coupling: Coupling;
  /** Default σ (SPEC §3). */
  sigma: number;
  /** Whether the source sample is used (fm draws x0 = eps itself). */
  usesSource: boolean;
}

export const MATCHERS: Record<CfmMethod, MatcherInfo> = {
  icfm: { name: 'icfm', coupling: 'independent', sigma: 0.1, usesSource: true },
  otcfm: { name: 'otcfm', coupling: 'ot', sigma: 0.1, usesSource: true },
  fm: { name: 'fm', coupling: 'independent', sigma: 0.1, usesSource: false },
  sbcfm: { name: 'sbcfm', coupling: 'entropic', sigma: 1.0, usesSource: true },
  vpcfm: { name: 'vpcfm', coupling: 'independent', sigma: 0.1, usesSource: true },
  // [SF]2M: exact OT by default (torchcfm's SF2M examples; Sinkhorn with reg 2σ² on request), σ as sbcfm's.
  sf2m: { name: 'sf2m', coupling: 'ot', sigma: 1.0, usesSource: true },
};

export function getMatcher(method: string): MatcherInfo {
  const m = (MATCHERS as Record<string, MatcherInfo | undefined>)[method];
  if (!m) throw new Error(`unknown CFM method "${method}"; accepted: ${Object.keys(MATCHERS).join(', ')}`);
  return m;
}

// ---- float64 closed forms ----

export function muT(method: CfmMethod, x0: number, x1: number, t: number): number {
  switch (method) {
    case 'fm': return t * x1;
    case 'vpcfm': return Math.cos((Math.PI * t) / 2) * x0 + Math.sin((Math.PI * t) / 2) * x1;
    default: return t * x1 + (1 - t) * x0;
  }
}

export function sigmaT(method: CfmMethod, sigma: number, t: number): number {
  switch (method) {
    case 'fm': return 1 - (1 - sigma) * t;
    case 'sbcfm':
    case 'sf2m': return sigma * Math.sqrt(t * (1 - t));
    default: return sigma;
  }
}

export function uT(method: CfmMethod, sigma: number, x0: number, x1: number, t: number, xt: number): number {
  switch (method) {
    case 'fm': return (x1 - (1 - sigma) * xt) / (1 - (1 - sigma) * t);
    case 'sbcfm':
    case 'sf2m': return ((1 - 2 * t) / (2 * t * (1 - t) + 1e-8)) * (xt - muT(method, x0, x1, t)) + x1 - x0;
    case 'vpcfm': return (Math.PI / 2) * (Math.cos((Math.PI * t) / 2) * x1 - Math.sin((Math.PI * t) / 2) * x0);
    default: return x1 - x0;
  }
}

/** x_t and u_t for one coordinate, in float64. */
export function matchF64(method: CfmMethod, sigma: number, x0: number, x1: number, t: number, eps: number): { xt: number; ut: number } {
  const xt = muT(method, x0, x1, t) + sigmaT(method, sigma, t) * eps;
  return { xt, ut: uT(method, sigma, x0, x1, t, xt) };
}

// ---- the random stream (shared by the GPU kernels and their CPU replay) ----

/** Philox counter word 2 tags: t uses TAG_T, eps coordinates 2q and 2q+1 use TAG_EPS + q. */
export const TAG_T = 0x7a11;
export const TAG_EPS = 0x7a12;

/** t for row b of draw `draw` (what the GPU computes), in [0, 1). */
export function streamT(seed: number, draw: number, b: number): number {
  const [k0, k1] = seedKey(seed);
  return u32ToUniform(philox4x32(b, draw, TAG_T, 0, k0, k1)[0]);
}

/** eps coordinate k of row b (Box–Muller: cos for even k, sin for odd), as float64 of the same bits. */
export function streamEps(seed: number, draw: number, b: number, k: number): number {
  const [k0, k1] = seedKey(seed);
  const w = philox4x32(b, draw, TAG_EPS + (k >> 1), 0, k0, k1);
  const r = Math.sqrt(-2 * Math.log(u32ToUniformOpenZero(w[0])));
  const th = 2 * Math.PI * u32ToUniform(w[1]);
  return k % 2 === 0 ? r * Math.cos(th) : r * Math.sin(th);
}

/** WGSL: `fn draw_t(b) -> f32` and `fn draw_eps(b) -> array<f32, D>` from uniforms mp.key0/key1/draw. */
export function streamWgsl(d: number): string {
  const qs = [...Array(Math.ceil(d / 2)).keys()];
  return `fn draw_t(b: u32) -> f32 {
  return toUniform(philox(vec4u(b, mp.draw, ${u32(TAG_T)}, 0u), vec2u(mp.key0, mp.key1)).x);
}
fn draw_eps(b: u32) -> array<f32, ${d}> {
  var e: array<f32, ${d}>;
${qs
  .map((q) => {
    const lines = [
      `  {`,
      `    let w = philox(vec4u(b, mp.draw, ${u32(TAG_EPS + q)}, 0u), vec2u(mp.key0, mp.key1));`,
      `    let r = sqrt(-2.0 * log(toUniformOpenZero(w.x)));`,
      `    let th = 6.283185307179586 * toUniform(w.y);`,
      `    e[${2 * q}] = r * cos(th);`,
    ];
    if (2 * q + 1 < d) lines.push(`    e[${2 * q + 1}] = r * sin(th);`);
    lines.push('  }');
    return lines.join('\n');
  })
  .join('\n')}
  return e;
}`;
}

/** WGSL of `fn match_xt_ut(x0, x1, t, eps) -> Matched { xt, ut }` for one method and σ (baked in). */
export function matcherWgsl(method: CfmMethod, sigma: number, d: number): string {
  const S = f32(sigma);
  const A = `array<f32, ${d}>`;
  let body: string;
  switch (method) {
    case 'fm':
      body = `  let st = 1.0 - (1.0 - ${S}) * t;
  for (var k = 0u; k < ${u32(d)}; k++) {
    let xt = t * x1[k] + st * eps[k];
    r.xt[k] = xt;
    r.ut[k] = (x1[k] - (1.0 - ${S}) * xt) / st;
  }`;
      break;
    case 'sbcfm':
    case 'sf2m':
      body = `  let st = ${S} * sqrt(t * (1.0 - t));
  let ratio = (1.0 - 2.0 * t) / (2.0 * t * (1.0 - t) + 1e-8);
  for (var k = 0u; k < ${u32(d)}; k++) {
    let mu = t * x1[k] + (1.0 - t) * x0[k];
    let xt = mu + st * eps[k];
    r.xt[k] = xt;
    r.ut[k] = ratio * (xt - mu) + x1[k] - x0[k];
  }`;
      break;
    case 'vpcfm':
      body = `  let c = cos(1.5707963267948966 * t);
  let s = sin(1.5707963267948966 * t);
  for (var k = 0u; k < ${u32(d)}; k++) {
    r.xt[k] = c * x0[k] + s * x1[k] + ${S} * eps[k];
    r.ut[k] = 1.5707963267948966 * (c * x1[k] - s * x0[k]);
  }`;
      break;
    default:
      body = `  for (var k = 0u; k < ${u32(d)}; k++) {
    r.xt[k] = t * x1[k] + (1.0 - t) * x0[k] + ${S} * eps[k];
    r.ut[k] = x1[k] - x0[k];
  }`;
  }
  return `struct Matched { xt: ${A}, ut: ${A} }
fn match_xt_ut(x0: ${A}, x1: ${A}, t: f32, eps: ${A}) -> Matched {
  var r = Matched(${A}(), ${A}());
${body}
  return r;
}`;
}

export const MATCH_STRUCT = 'struct MatchParams { key0: u32, key1: u32, draw: u32, pad: u32 }';

export function matchUniforms(seed: number, draw: number): Uint32Array {
  const [k0, k1] = seedKey(seed);
  return new Uint32Array([k0, k1, draw >>> 0, 0]);
}

/**
 * Standalone matcher: row b of the batch takes x0 = XY[i0], x1 = XY[n0 + i1] with (i0, i1) = (b, b)
 * or the pair indices in PAIRS ([i…, j…] as floats), draws t and eps from the stream, and writes
 * IN[b] = [x_t, t] (B × (d+1), the network input) and TGT[b] = u_t (B × d); with `withEps` also
 * EPS[b] = the eps drawn (B × d; tests).
 * Bindings: uniforms, XY, [PAIRS], IN, TGT, [EPS].
 */
export function matcherKernel(method: CfmMethod, sigma: number, d: number, batch: number, n0: number, withPairs: boolean, withEps = false): KernelSpec {
  const bindings: Binding[] = [{ name: 'mp', kind: 'uniform', type: 'MatchParams' }, { name: 'XY', kind: 'read' }];
  if (withPairs) bindings.push({ name: 'PAIRS', kind: 'read' });
  bindings.push({ name: 'IN', kind: 'read_write' }, { name: 'TGT', kind: 'read_write' });
  if (withEps) bindings.push({ name: 'EPS', kind: 'read_write' });
  const src = `${PHILOX_WGSL}
${MATCH_STRUCT}
${streamWgsl(d)}
${matcherWgsl(method, sigma, d)}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let b = gid.x;
  if (b >= ${u32(batch)}) { return; }
  let i0 = ${withPairs ? 'u32(PAIRS[b])' : 'b'};
  let i1 = ${withPairs ? `u32(PAIRS[${u32(batch)} + b])` : 'b'};
  var x0: array<f32, ${d}>;
  var x1: array<f32, ${d}>;
  for (var k = 0u; k < ${u32(d)}; k++) {
    x0[k] = XY[i0 * ${u32(d)} + k];
    x1[k] = XY[(${u32(n0)} + i1) * ${u32(d)} + k];
  }
  let t = draw_t(b);
  let eps = draw_eps(b);
  let m = match_xt_ut(x0, x1, t, eps);
  for (var k = 0u; k < ${u32(d)}; k++) {
    IN[b * ${u32(d + 1)} + k] = m.xt[k];
    TGT[b * ${u32(d)} + k] = m.ut[k];${withEps ? `
    EPS[b * ${u32(d)} + k] = eps[k];` : ''}
  }
  IN[b * ${u32(d + 1)} + ${u32(d)}] = t;
}`;
  return spec(`match_${method}[${batch}x${d}${withPairs ? '+pairs' : ''}${withEps ? '+eps' : ''}]`, bindings, src, [Math.ceil(batch / 64), 1, 1]);
}
