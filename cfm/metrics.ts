/**
 * CFM metrics (SPEC §3): W2 between point clouds (cfm/metrics/w2.ts: exact assignment, squared
 * Euclidean cost), and the normalized path energy
 *
 *   NPE = |∫_0^1 E‖v(x_t, t)‖² dt − W2²(source, target)| / W2²(source, target),
 *
 * with the path energy averaged over the generated trajectories (accumulated by the ODE solver
 * with its own quadrature weights) and W2² between the source points that were integrated and the
 * fresh target sample. An optimal (straight, OT) flow has path energy W2², so NPE → 0.
 */
import { wassersteinW2 } from './metrics/w2';

export function w2(a: Float32Array, b: Float32Array, d: number): number {
  const n = a.length / d;
  return wassersteinW2(a, b, n, d);
}

export function meanOf(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}

export function normalizedPathEnergy(pathEnergy: number, w2sq: number): number {
  if (!(w2sq > 0)) return NaN;
  return Math.abs(pathEnergy - w2sq) / w2sq;
}
