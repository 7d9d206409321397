/**
 * The non-finite guard of the training loops, in WGSL: each step's loss goes into a ring of GPU
 * slots (engine/loss-ring.ts) whose last word is a guard flag. A kernel that sees a NaN/±Inf loss
 * or parameter raises the flag for its step; the trainer reads ring and flag with the one readback
 * it already does every few hundred ms, so the check costs no extra readback and no extra submit.
 *
 * The ring is `array<atomic<u32>>` (losses as f32 bits): the flag is raised with atomicMax of
 * 0xFFFFFFFF − step, so when several threads and several steps see bad values, the flag names the
 * first step, without a data race.
 */
import type { KernelSpec } from '../engine/backend';
import { grid1d, spec, u32, type Binding } from './wgsl';

/**
 * `nonfinite(x)`: true for NaN and ±Inf (all exponent bits set). Spelled on the bits because
 * compilers may fold `x != x` to false under fast-math assumptions.
 */
export const NONFINITE_WGSL = `fn nonfinite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }`;

/** WGSL statement: raise the guard of ring `ring` (`slots` loss slots) for step expression `step` (u32). */
export function raiseGuard(ring: string, slots: number, step: string): string {
  return `atomicMax(&${ring}[${u32(slots)}], 0xffffffffu - ${step});`;
}

/** WGSL statement: store f32 expression `loss` into the slot of step `step`. */
export function storeLoss(ring: string, slots: number, step: string, loss: string): string {
  return `atomicStore(&${ring}[${step} % ${u32(slots)}], bitcast<u32>(${loss}));`;
}

/** The guard word's value as a 0-based step, or null when it was never raised. */
export function guardStep(word: number): number | null {
  return word === 0 ? null : 0xffffffff - word;
}

/**
 * For trainers whose step runs on the tape: RING[step % slots] = SRC[srcOffset] (the loss) and the
 * guard raised if the loss or any of the `np` parameters in P is non-finite. One thread per
 * parameter (thread 0 also stores the loss); one dispatch per step.
 * Bindings: uniforms (step, srcOffset, pOffset), SRC, P, RING.
 */
export function lossGuardKernel(slots: number, np: number): KernelSpec {
  const bindings: Binding[] = [
    { name: 'gp', kind: 'uniform', type: 'GuardParams' },
    { name: 'SRC', kind: 'read' },
    { name: 'P', kind: 'read' },
    { name: 'RING', kind: 'read_write', type: 'atomic<u32>' },
  ];
  const [gx] = grid1d(Math.max(np, 1), 256);
  const src = `struct GuardParams { step: u32, srcOffset: u32, pOffset: u32, pad: u32 }
${NONFINITE_WGSL}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * ${u32(gx * 256)};
  if (i == 0u) {
    let loss = SRC[gp.srcOffset];
    ${storeLoss('RING', slots, 'gp.step', 'loss')}
    if (nonfinite(loss)) { ${raiseGuard('RING', slots, 'gp.step')} }
  }
  if (i < ${u32(np)} && nonfinite(P[gp.pOffset + i])) { ${raiseGuard('RING', slots, 'gp.step')} }
}`;
  return spec(`loss_guard[${np}]`, bindings, src, grid1d(Math.max(np, 1), 256));
}

/** Uniforms of lossGuardKernel. */
export function lossGuardUniforms(step: number, srcOffset: number, pOffset: number): Uint32Array {
  return new Uint32Array([step >>> 0, srcOffset >>> 0, pOffset >>> 0, 0]);
}
