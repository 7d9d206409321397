import { beforeAll, describe, expect, test } from 'vitest';
import { getBackend, tensor, Tensor } from '../engine';
import { Rng } from '../engine/philox';
import { logLikelihood } from '../cfm/likelihood';
import { mlpForwardF64, VectorField } from '../cfm/mlp';
import { fieldKernel, odeUniforms, type MlpActivation } from '../kernels/ode';
import { gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

/** Central finite differences of the float64 field: the Jacobian ∂v/∂x at (x, t). */
function jacobianFD(vf: VectorField, flat: Float32Array, x: number[], t: number, h = 1e-5): number[][] {
  const d = x.length;
  const J = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  for (let k = 0; k < d; k++) {
    const xp = [...x], xm = [...x];
    xp[k]! += h;
    xm[k]! -= h;
    const vp = mlpForwardF64(vf.layout, flat, xp, t), vm = mlpForwardF64(vf.layout, flat, xm, t);
    for (let i = 0; i < d; i++) J[i]![k] = (vp[i]! - vm[i]!) / (2 * h);
  }
  return J;
}

describe('divergence of the MLP', () => {
  const cases: { d: number; hidden: number[]; act: MlpActivation }[] = [
    { d: 2, hidden: [64, 64, 64], act: 'selu' },
    { d: 3, hidden: [16, 24], act: 'tanh' },
    { d: 5, hidden: [32], act: 'sigmoid' },
  ];
  for (const c of cases) {
    test(`exact (forward-mode) and Hutchinson εᵀJε vs finite differences: d ${c.d}, ${c.hidden.join('-')} ${c.act}`, async () => {
      const vf = new VectorField({ dim: c.d, hidden: c.hidden, activation: c.act }, new Rng(c.d));
      const flat = await vf.params.flat.data();
      const rng = new Rng(21);
      const n = 19, t = 0.7;
      const xs = Float32Array.from({ length: n * c.d }, () => rng.normal());
      const es = Float32Array.from({ length: n * c.d }, () => (rng.uniform() < 0.5 ? -1 : 1));
      const X = tensor(xs, [n, c.d]);
      const E = tensor(es, [n, c.d]);
      const b = getBackend();
      const V = Tensor.empty([n, c.d]);
      const D1 = Tensor.empty([n]);
      const D2 = Tensor.empty([n]);
      b.dispatch(b.prepare(fieldKernel(vf.layout, n, 'trace', 3)), [vf.params.flat.buffer, X.buffer, V.buffer, D1.buffer], odeUniforms(t, 0, 0, n));
      b.dispatch(b.prepare(fieldKernel(vf.layout, n, 'probe', 3)), [vf.params.flat.buffer, X.buffer, V.buffer, D2.buffer, E.buffer], odeUniforms(t, 0, 0, n));
      const div = await D1.data();
      const hut = await D2.data();
      const v = await V.data();
      for (let i = 0; i < n; i++) {
        const x = Array.from(xs.subarray(i * c.d, (i + 1) * c.d));
        const e = Array.from(es.subarray(i * c.d, (i + 1) * c.d));
        const J = jacobianFD(vf, flat, x, t);
        const tr = J.reduce((s, row, k) => s + row[k]!, 0);
        let eJe = 0;
        for (let r = 0; r < c.d; r++) for (let k = 0; k < c.d; k++) eJe += e[r]! * J[r]![k]! * e[k]!;
        expect(Math.abs(div[i]! - tr), `row ${i}: ${div[i]} vs ${tr}`).toBeLessThan(2e-4 * (1 + Math.abs(tr)));
        expect(Math.abs(hut[i]! - eJe), `row ${i}: ${hut[i]} vs ${eJe}`).toBeLessThan(2e-4 * (1 + Math.abs(eJe)));
        const ref = mlpForwardF64(vf.layout, flat, x, t);
        for (let k = 0; k < c.d; k++) expect(Math.abs(v[i * c.d + k]! - ref[k]!)).toBeLessThan(1e-5 * (1 + Math.abs(ref[k]!)));
      }
      for (const q of [X, E, V, D1, D2]) q.dispose();
      vf.dispose();
    });
  }
});

describe('CNF log-likelihood', () => {
  test('linear field A = −I/2 + 2J: log p(x) = log N(z) + 1 with z = e^{1/2} R(−2) x', async () => {
    const d = 2;
    const flat = new Float32Array(3 * 2 + 2 + 4 + 2);
    const A = [[-0.5, 2], [-2, -0.5]];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) flat[i * 2 + j] = A[j]![i]!;
    flat[8] = 1;
    flat[11] = 1;
    const vf = new VectorField({ dim: d, hidden: [2], activation: 'none' }, flat);
    const xs = Float32Array.from([0.3, -0.4, 1.5, 0.2, -2, 1, 0, 0.1]);
    const n = xs.length / 2;
    for (const divergence of ['exact', 'hutchinson'] as const) {
      const r = await logLikelihood(vf, tensor(xs, [n, 2]), { steps: 50, divergence, seed: 3 });
      for (let i = 0; i < n; i++) {
        const s = Math.exp(0.5), c = Math.cos(2), sn = Math.sin(2);
        // x(1) = e^{−1/2} R(2) x(0)  ⇒  x(0) = e^{1/2} R(−2) x(1), R(θ) = [[cos θ, sin θ], [−sin θ, cos θ]].
        const z0 = s * (c * xs[2 * i]! - sn * xs[2 * i + 1]!), z1 = s * (sn * xs[2 * i]! + c * xs[2 * i + 1]!);
        expect(r.z[2 * i]).toBeCloseTo(z0, 4);
        expect(r.z[2 * i + 1]).toBeCloseTo(z1, 4);
        const logp = -Math.log(2 * Math.PI) - 0.5 * (z0 * z0 + z1 * z1) + 1;
        expect(r.logp[i], divergence).toBeCloseTo(logp, 4);
      }
      expect(r.nfe).toBe(200);
    }
    vf.dispose();
  });

  test('random SELU MLP: fused CNF vs a float64 RK4 reference with finite-difference divergence', async () => {
    const vf = new VectorField({ dim: 2, hidden: [64, 64, 64], activation: 'selu' }, new Rng(12));
    const flat = await vf.params.flat.data();
    const xs = Float32Array.from([0.5, -0.3, -1, 1.2, 2, 0.4]);
    const n = 3, steps = 40;
    const r = await logLikelihood(vf, tensor(xs, [n, 2]), { steps });
    const f = (y: number[], t: number): number[] => {
      const v = Array.from(mlpForwardF64(vf.layout, flat, [y[0]!, y[1]!], t));
      const J = jacobianFD(vf, flat, [y[0]!, y[1]!], t, 1e-4);
      return [v[0]!, v[1]!, J[0]![0]! + J[1]![1]!];
    };
    for (let i = 0; i < n; i++) {
      let y = [xs[2 * i]!, xs[2 * i + 1]!, 0];
      const h = -1 / steps;
      for (let s = 0; s < steps; s++) {
        const t = 1 + s * h;
        const k1 = f(y, t);
        const k2 = f(y.map((v, j) => v + (h / 2) * k1[j]!), t + h / 2);
        const k3 = f(y.map((v, j) => v + (h / 2) * k2[j]!), t + h / 2);
        const k4 = f(y.map((v, j) => v + h * k3[j]!), t + h);
        y = y.map((v, j) => v + (h / 6) * (k1[j]! + 2 * k2[j]! + 2 * k3[j]! + k4[j]!));
      }
      const logp = -Math.log(2 * Math.PI) - 0.5 * (y[0]! ** 2 + y[1]! ** 2) + y[2]!;
      expect(Math.abs(r.logp[i]! - logp), `point ${i}`).toBeLessThan(1e-3);
    }
    vf.dispose();
  });
});
