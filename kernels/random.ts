/**
 * Philox4x32-10 on the GPU (Salmon et al., SC 2011), bit-identical to engine/philox.ts: element i of
 * draw `draw` uses counter (i / lanes, draw, 0, 0) and key (seed_lo, seed_hi). Uniform: lane i % 4
 * of the block, 24 bits → [0, 1). Normal: Box–Muller on lanes 0 and 1, cos for even i, sin for odd.
 * The draw number is a uniform, so a generator reuses one pipeline for every step.
 */
import type { KernelSpec } from '../engine/backend';
import { entry1d, grid1d, spec, type Binding } from './wgsl';

export const PHILOX_WGSL = `
struct RngParams { key0: u32, key1: u32, draw: u32, pad: u32 }
fn mulhilo(a: u32, b: u32) -> vec2u {
  let aH = a >> 16u; let aL = a & 0xffffu; let bH = b >> 16u; let bL = b & 0xffffu;
  let ll = aL * bL; let lh = aL * bH; let hl = aH * bL; let hh = aH * bH;
  let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
  let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
  return vec2u(hi, a * b);
}
fn philox(c: vec4u, k: vec2u) -> vec4u {
  var x = c;
  var key = k;
  for (var r = 0u; r < 10u; r++) {
    let p0 = mulhilo(0xd2511f53u, x.x);
    let p1 = mulhilo(0xcd9e8d57u, x.z);
    x = vec4u(p1.x ^ x.y ^ key.x, p1.y, p0.x ^ x.w ^ key.y, p0.y);
    key = key + vec2u(0x9e3779b9u, 0xbb67ae85u);
  }
  return x;
}
fn toUniform(u: u32) -> f32 { return f32(u >> 8u) * 5.9604644775390625e-8; }
fn toUniformOpenZero(u: u32) -> f32 { return f32((u >> 8u) + 1u) * 5.9604644775390625e-8; }
// Box–Muller radius sqrt(−2·log(toUniformOpenZero(u))). Near u = 1, log's absolute error (WGSL allows
// 2^-21; SwiftShader's is ~6e-8) swamps the tiny result and the radius is off by ~1e-5; there we use
// −log(1 − x) = x + x²/2 + x³/3 + x⁴/4 (+ x⁵/5 < 1e-9 relative) with x = 1 − u, exact in f32.
fn boxMullerRadius(u: u32) -> f32 {
  let x = f32(0xffffffu - (u >> 8u)) * 5.9604644775390625e-8;
  if (x < 0.0078125) { return sqrt(2.0 * x * (1.0 + x * (0.5 + x * (0.33333334 + x * 0.25)))); }
  return sqrt(-2.0 * log(toUniformOpenZero(u)));
}
`;

export type RandomDist = 'uniform' | 'normal';

export function randomKernel(dist: RandomDist, n: number): KernelSpec {
  const bindings: Binding[] = [{ name: 'rp', kind: 'uniform', type: 'RngParams' }, { name: 'out', kind: 'read_write' }];
  const body =
    dist === 'uniform'
      ? `  let w = philox(vec4u(index / 4u, rp.draw, 0u, 0u), vec2u(rp.key0, rp.key1));
  out[index] = toUniform(w[index % 4u]);`
      : `  let w = philox(vec4u(index / 2u, rp.draw, 0u, 0u), vec2u(rp.key0, rp.key1));
  let r = boxMullerRadius(w.x);
  let theta = 6.283185307179586 * toUniform(w.y);
  out[index] = select(r * wgf_sin(theta), r * wgf_cos(theta), index % 2u == 0u);`;
  return spec(`random_${dist}[${n}]`, bindings, entry1d(256, n, body, PHILOX_WGSL), grid1d(n, 256));
}
