import { beforeAll, describe, expect, test } from 'vitest';
import { getBackend, tensor, Tensor } from '../engine';
import { Rng } from '../engine/philox';
import { mlpForwardF64, VectorField } from '../cfm/mlp';
import { odeSolve, segmentPlan } from '../cfm/ode';
import { fieldKernel, odeUniforms } from '../kernels/ode';
import { gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

/**
 * A linear field v(x, t) = A x as an MLP with identity activation: [x, t]·W0·W1 with
 * W0 = [Aᵀ; 0] (the t row zero), W1 = I, zero biases.
 */
function linearField(A: number[][]): VectorField {
  const d = A.length;
  const flat = new Float32Array((d + 1) * d + d + d * d + d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) flat[i * d + j] = A[j]![i]!; // W0[i][j] = A[j][i]
  const w1 = (d + 1) * d + d;
  for (let i = 0; i < d; i++) flat[w1 + i * d + i] = 1;
  return new VectorField({ dim: d, hidden: [d], activation: 'none' }, flat);
}

// A = −0.5·I + 2·J (J the rotation generator): x(t) = e^{−t/2}·R(2t)·x0, tr A = −1, ‖Ax‖² = 4.25‖x‖².
const A = [[-0.5, 2], [-2, -0.5]];
function exact(x0: number, y0: number, t: number): [number, number] {
  const s = Math.exp(-0.5 * t), c = Math.cos(2 * t), n = Math.sin(2 * t);
  return [s * (c * x0 + n * y0), s * (-n * x0 + c * y0)];
}

const X0 = Float32Array.from([1, 0, 0.3, -0.7, -1.2, 0.4, 0.05, 2, 1.5, 1.5, -0.8, -0.9, 0.2, 0.1, -2, 0.6, 0.9, -1.1]);
const N = X0.length / 2;

async function maxError(vf: VectorField, solver: 'euler' | 'midpoint' | 'rk4', steps: number, path: 'fused' | 'ops'): Promise<number> {
  const x0 = tensor(X0, [N, 2]);
  const r = await odeSolve(vf, x0, { solver, steps, path });
  const got = await r.x.data();
  r.x.dispose();
  x0.dispose();
  let e = 0;
  for (let i = 0; i < N; i++) {
    const [ex, ey] = exact(X0[2 * i]!, X0[2 * i + 1]!, 1);
    e = Math.max(e, Math.hypot(got[2 * i]! - ex, got[2 * i + 1]! - ey));
  }
  return e;
}

describe('fixed-step solvers on dx/dt = Ax', () => {
  test('RK4: the error falls ~16× when the step halves (fused kernel and op-by-op)', async () => {
    const vf = linearField(A);
    for (const path of ['fused', 'ops'] as const) {
      const e4 = await maxError(vf, 'rk4', 4, path);
      const e8 = await maxError(vf, 'rk4', 8, path);
      const e16 = await maxError(vf, 'rk4', 16, path);
      expect(e4 / e8, `${path}: e4 ${e4} e8 ${e8}`).toBeGreaterThan(12);
      expect(e4 / e8).toBeLessThan(20);
      expect(e8 / e16, `${path}: e8 ${e8} e16 ${e16}`).toBeGreaterThan(12);
      expect(e8 / e16).toBeLessThan(20);
    }
    vf.dispose();
  });

  test('Euler falls 2×, midpoint 4× per halving', async () => {
    const vf = linearField(A);
    const ratio = async (s: 'euler' | 'midpoint', n: number) => (await maxError(vf, s, n, 'fused')) / (await maxError(vf, s, 2 * n, 'fused'));
    const re = await ratio('euler', 64);
    const rm = await ratio('midpoint', 16);
    expect(re).toBeGreaterThan(1.8);
    expect(re).toBeLessThan(2.2);
    expect(rm).toBeGreaterThan(3.5);
    expect(rm).toBeLessThan(4.5);
    vf.dispose();
  });

  test('path energy ∫‖v‖² dt and trajectories at requested times', async () => {
    const vf = linearField(A);
    const x0 = tensor(X0, [N, 2]);
    const times = [0, 0.25, 0.5, 1];
    for (const path of ['fused', 'ops'] as const) {
      const r = await odeSolve(vf, x0, { solver: 'rk4', steps: 40, energy: true, times, path });
      expect(r.trajectory.length).toBe(4);
      expect(r.nfe).toBe(160);
      const en = await r.energy!.data();
      for (let i = 0; i < N; i++) {
        const q = X0[2 * i]! ** 2 + X0[2 * i + 1]! ** 2;
        expect(en[i]).toBeCloseTo(4.25 * (1 - Math.exp(-1)) * q, 4);
      }
      for (let k = 0; k < times.length; k++) {
        const got = await r.trajectory[k]!.data();
        for (let i = 0; i < N; i++) {
          const [ex, ey] = exact(X0[2 * i]!, X0[2 * i + 1]!, times[k]!);
          expect(Math.hypot(got[2 * i]! - ex, got[2 * i + 1]! - ey)).toBeLessThan(1e-5);
        }
      }
      for (const t of [r.x, r.energy!, ...r.trajectory]) t.dispose();
    }
    x0.dispose();
    vf.dispose();
  });

  test('segment plan puts requested times on the grid', () => {
    const p = segmentPlan(0, 1, 100, [0, 0.125, 0.5, 1]);
    expect(p.map((s) => s.steps)).toEqual([13, 38, 50]);
    expect(p.every((s) => s.record)).toBe(true);
  });
});

describe('dopri5', () => {
  test('adaptive steps reach the tolerance and count NFE', async () => {
    const vf = linearField(A);
    const x0 = tensor(X0, [N, 2]);
    const r = await odeSolve(vf, x0, { solver: 'dopri5', rtol: 1e-6, atol: 1e-6, times: [0.5, 1] });
    const got = await r.x.data();
    for (let i = 0; i < N; i++) {
      const [ex, ey] = exact(X0[2 * i]!, X0[2 * i + 1]!, 1);
      expect(Math.hypot(got[2 * i]! - ex, got[2 * i + 1]! - ey)).toBeLessThan(2e-5);
    }
    expect(r.trajectory.length).toBe(2);
    expect(r.accepted!).toBeGreaterThan(1);
    // FSAL: 6 new evaluations per attempted step, plus the first and the initial-step probe.
    expect(r.nfe).toBe(2 + 6 * (r.accepted! + r.rejected!));
    for (const t of [r.x, ...r.trajectory]) t.dispose();
    x0.dispose();
    vf.dispose();
  });
});

describe('the default MLP (8 706 parameters)', () => {
  test('fused evaluation matches the float64 reference; fused and op-by-op RK4 agree', async () => {
    const vf = new VectorField({ dim: 2, hidden: [64, 64, 64], activation: 'selu' }, new Rng(4));
    expect(vf.params.size).toBe(8706);
    const flat = await vf.params.flat.data();
    const rng = new Rng(8);
    const n = 37;
    const xs = Float32Array.from({ length: 2 * n }, () => rng.normal());
    const X = tensor(xs, [n, 2]);
    const V = Tensor.empty([n, 2]);
    const b = getBackend();
    b.dispatch(b.prepare(fieldKernel(vf.layout, n)), [vf.params.flat.buffer, X.buffer, V.buffer], odeUniforms(0.3, 0, 0, n));
    const v = await V.data();
    for (let i = 0; i < n; i++) {
      const ref = mlpForwardF64(vf.layout, flat, [xs[2 * i]!, xs[2 * i + 1]!], 0.3);
      expect(Math.abs(v[2 * i]! - ref[0]!)).toBeLessThan(1e-5);
      expect(Math.abs(v[2 * i + 1]! - ref[1]!)).toBeLessThan(1e-5);
    }
    const a = await odeSolve(vf, X, { steps: 20, path: 'fused' });
    const o = await odeSolve(vf, X, { steps: 20, path: 'ops' });
    const ga = await a.x.data(), go = await o.x.data();
    for (let k = 0; k < 2 * n; k++) expect(Math.abs(ga[k]! - go[k]!)).toBeLessThan(2e-5);
    for (const t of [X, V, a.x, o.x]) t.dispose();
    vf.dispose();
  });
});
