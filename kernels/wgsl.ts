/**
 * A small WGSL builder shared by every kernel generator (in the manner of jax-js's WgslBuilder):
 * binding declarations, float literals, the flat-index prologue for 1-D launches, and workgroup
 * counts. Shapes are baked into the source as constants, so each shape gets its own pipeline (cached
 * by source in the backend) and no uniform upload is needed per dispatch.
 */
import type { BindingKind, KernelSpec } from '../engine/backend';

export interface Binding {
  readonly name: string;
  readonly kind: BindingKind;
  /** WGSL element type of the array (default f32), or the struct type of a uniform. */
  readonly type?: string;
}

/** A WGSL float literal for a finite number; ±∞ and NaN are not expressible as constants. */
export function f32(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`cannot embed non-finite constant ${x} in WGSL`);
  const s = Math.fround(x).toString();
  if (/[.eE]/.test(s)) return s.startsWith('.') ? `0${s}` : s.replace(/^-\./, '-0.');
  return `${s}.0`;
}

export function u32(x: number): string {
  if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new RangeError(`not a u32: ${x}`);
  return `${x}u`;
}

export function declareBindings(bindings: readonly Binding[]): string {
  return bindings
    .map((b, i) => {
      if (b.kind === 'uniform') return `@group(0) @binding(${i}) var<uniform> ${b.name}: ${b.type};`;
      const access = b.kind === 'read' ? 'read' : 'read_write';
      return `@group(0) @binding(${i}) var<storage, ${access}> ${b.name}: array<${b.type ?? 'f32'}>;`;
    })
    .join('\n');
}

export const MAX_WORKGROUPS_PER_DIM = 65535;

/** Workgroups for `count` work items in groups of `size`, folded into y when x would overflow. */
export function grid1d(count: number, size: number): [number, number, number] {
  const groups = Math.ceil(count / size);
  if (groups <= MAX_WORKGROUPS_PER_DIM) return [groups, 1, 1];
  return [MAX_WORKGROUPS_PER_DIM, Math.ceil(groups / MAX_WORKGROUPS_PER_DIM), 1];
}

/** Entry point of a 1-D launch; `index` is the flat work-item index, already bounds-checked. */
export function entry1d(size: number, count: number, body: string, preamble = ''): string {
  const [gx] = grid1d(count, size);
  return `${preamble}
@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let index = gid.x + gid.y * ${u32(gx * size)};
  if (index >= ${u32(count)}) { return; }
${body}
}`;
}

/**
 * sin and cos to ~1 ulp on |x| < 8192: Cody–Waite reduction by π/2 in three parts, then Cephes'
 * minimax polynomials on [−π/4, π/4]. The built-ins may be far coarser (WGSL allows 2⁻¹¹ absolute
 * error; SwiftShader's are off by 1.9e-4), which breaks float64 comparisons and Box–Muller.
 */
export const SINCOS_WGSL = `
fn wgf_sinq(x: f32, shift: i32) -> f32 {
  let k = round(x * 0.63661977236758134);
  var r = fma(k, -1.5703125, x);
  r = fma(k, -4.837512969970703125e-4, r);
  r = fma(k, -7.54978995489188216e-8, r);
  let z = r * r;
  let s = fma(fma(fma(-1.9515295891e-4, z, 8.3321608736e-3), z, -1.6666654611e-1) * z, r, r);
  let c = fma(fma(fma(2.443315711809948e-5, z, -1.388731625493765e-3), z, 4.166664568298827e-2) * z, z, fma(-0.5, z, 1.0));
  let q = (i32(k) + shift) & 3;
  let v = select(s, c, (q & 1) == 1);
  return select(v, -v, q >= 2);
}
fn wgf_sin(x: f32) -> f32 { return wgf_sinq(x, 0); }
fn wgf_cos(x: f32) -> f32 { return wgf_sinq(x, 1); }
`;

export function spec(name: string, bindings: readonly Binding[], source: string, workgroups: readonly [number, number, number]): KernelSpec {
  // Helpers are added only to sources that call them, so other kernels' sources (cache keys) stay as they are.
  const helpers = /\bwgf_(sin|cos)\(/.test(source) ? SINCOS_WGSL : '';
  return { name, source: `${declareBindings(bindings)}\n${helpers}${source}`, bindings: bindings.map((b) => b.kind), workgroups };
}

export function product(shape: readonly number[]): number {
  let p = 1;
  for (const d of shape) p *= d;
  return p;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}
