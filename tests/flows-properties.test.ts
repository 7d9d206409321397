/**
 * One property suite run over every flow layer and every flow (in the manner of zuko's
 * tests/test_flows.py): each subject is a Flow (a single layer over a standard normal, or a whole
 * architecture from flows/build.ts), with its parameters set to random values so that no layer is
 * the identity, evaluated on random inputs (and a random context where the subject is conditional).
 *
 * Properties:
 *  - round trip: inverse(forward(x)) = x and forward(inverse(z)) = z;
 *  - forward log|det| + inverse log|det| (at the image) = 0;
 *  - log|det| equals log|det J| of the dense Jacobian built column by column through the tape,
 *    its determinant taken in float64, in both directions (the inverse direction checks the
 *    Newton-step derivatives of planar's root solve and of the LU-kernel inverse);
 *  - logProb and sampleAndLogProb agree;
 *  - gradients reach every parameter (and the context) through logProb and through sampling;
 * plus MADE's autoregressive zero pattern and planar's invertibility after training steps.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { Adam, getBackend, GpuRng, mean, neg, scope, slice, sum, add, tensor, valueAndGrad, type Tensor } from '../engine';
import { Rng } from '../engine/philox';
import { logdet as refLogdet, Ref } from '../engine/reference';
import { ActNorm } from '../flows/actnorm';
import { DiagNormal, StandardNormal } from '../flows/base';
import type { Bijection } from '../flows/bijection';
import { buildFlow, resolveArch } from '../flows/build';
import { AdditiveCoupling, AffineCoupling, couplingMask } from '../flows/coupling';
import { Flow } from '../flows/flow';
import { DenseLinear, LULinear, Permutation } from '../flows/linear';
import { MAFLayer } from '../flows/maf';
import { ParamStore } from '../flows/params';
import { Planar } from '../flows/planar';
import { Radial } from '../flows/radial';
import { SplineAutoregressive, SplineCoupling } from '../flows/spline';
import { getDataset } from '../datasets/toy2d';
import { expectClose, gpu } from './helpers';

const D = 3;
const C = 2;
const B = 6;
const net = { hidden: [16], activation: 'tanh' as const };

interface Subject {
  name: string;
  make: () => Flow;
  conditional?: boolean;
  /** Round-trip tolerance (chains of contracting layers amplify float32 rounding when inverted). */
  tol?: number;
}

function single(make: (store: ParamStore, rng: Rng) => Bijection, base: 'standard' | 'diag' = 'standard'): () => Flow {
  return () => {
    const store = new ParamStore();
    const rng = new Rng(11);
    const layer = make(store, rng);
    return new Flow([layer], base === 'diag' ? new DiagNormal(store, 'base', layer.dim) : new StandardNormal(layer.dim), store);
  };
}

const LAYERS: Subject[] = [
  { name: 'additive coupling', make: single((s, r) => new AdditiveCoupling(s, 'l', D, { ...net, mask: couplingMask(D, 'half', false) }, r)) },
  { name: 'additive coupling (context)', conditional: true, make: single((s, r) => new AdditiveCoupling(s, 'l', D, { ...net, contextDim: C, mask: couplingMask(D, 'alternate', true) }, r)) },
  { name: 'affine coupling', make: single((s, r) => new AffineCoupling(s, 'l', D, { ...net, mask: couplingMask(D, 'half', true) }, r)) },
  { name: 'affine coupling (context, alternate mask)', conditional: true, make: single((s, r) => new AffineCoupling(s, 'l', D, { ...net, contextDim: C, scaleBound: 2, mask: couplingMask(D, 'alternate', false) }, r)) },
  { name: 'actnorm', make: single((s) => new ActNorm(s, 'l', D)) },
  { name: 'lu linear', make: single((s, r) => new LULinear(s, 'l', D, r)) },
  { name: 'dense linear (logdet kernel)', make: single((s, r) => new DenseLinear(s, 'l', D, r)) },
  { name: 'permutation (reverse)', make: single(() => new Permutation(D, 'reverse')) },
  { name: 'permutation (random)', make: single((_, r) => new Permutation(D, 'random', r)) },
  { name: 'planar', make: single((s, r) => new Planar(s, 'l', D, r)) },
  { name: 'radial', make: single((s, r) => new Radial(s, 'l', D, r)) },
  { name: 'maf', make: single((s, r) => new MAFLayer(s, 'l', D, { ...net }, r)) },
  { name: 'maf (context, reverse order)', conditional: true, make: single((s, r) => new MAFLayer(s, 'l', D, { ...net, contextDim: C, order: 'reverse' }, r)) },
  { name: 'diag-normal base + actnorm', make: single((s) => new ActNorm(s, 'l', D), 'diag') },
  { name: 'spline coupling (K 5)', make: single((s, r) => new SplineCoupling(s, 'l', D, { ...net, bins: 5, bound: 2.5, flip: false }, r)) },
  { name: 'spline coupling (context, flipped, K 8)', conditional: true, make: single((s, r) => new SplineCoupling(s, 'l', D, { ...net, contextDim: C, bins: 8, flip: true }, r)) },
  { name: 'spline autoregressive (K 8)', make: single((s, r) => new SplineAutoregressive(s, 'l', D, { ...net, bins: 8 }, r)) },
  { name: 'spline autoregressive (context, reverse order, K 3)', conditional: true, make: single((s, r) => new SplineAutoregressive(s, 'l', D, { ...net, contextDim: C, bins: 3, order: 'reverse' }, r)) },
];

const small = { layers: 3, hidden: [16], activation: 'tanh' };
const FLOWS: Subject[] = [
  { name: 'realnvp', make: () => buildFlow(resolveArch('realnvp', D, small, 1)) },
  { name: 'realnvp (context)', conditional: true, make: () => buildFlow(resolveArch('realnvp', D, { ...small, contextDim: C }, 1)) },
  { name: 'nice', make: () => buildFlow(resolveArch('nice', D, small, 2)) },
  { name: 'glow (lu)', make: () => buildFlow(resolveArch('glow', D, { ...small, layers: 2 }, 3)) },
  { name: 'glow (dense)', make: () => buildFlow(resolveArch('glow', D, { ...small, layers: 2, linear: 'dense', base: 'diag' }, 4)) },
  { name: 'planar', make: () => buildFlow(resolveArch('planar', D, { layers: 4 }, 5)), tol: 1e-3 },
  { name: 'radial', make: () => buildFlow(resolveArch('radial', D, { layers: 4 }, 6)) },
  { name: 'maf', make: () => buildFlow(resolveArch('maf', D, small, 7)) },
  { name: 'maf (context)', conditional: true, make: () => buildFlow(resolveArch('maf', D, { ...small, contextDim: C }, 8)) },
  { name: 'nsf (coupling)', make: () => buildFlow(resolveArch('nsf', D, { ...small, bins: 4 }, 9)) },
  // Three random 8-bin splines in a row have slopes far from 1, and an inverse divides float32 rounding by
  // the slope: the chain's round trip holds to 1e-3 (as planar's), a single layer's to 2e-4 (above).
  { name: 'nsf (coupling, context)', conditional: true, make: () => buildFlow(resolveArch('nsf', D, { ...small, contextDim: C }, 10)), tol: 1e-3 },
  { name: 'nsf (autoregressive)', make: () => buildFlow(resolveArch('nsf', D, { ...small, variant: 'autoregressive', bins: 4 }, 11)) },
  { name: 'nsf (autoregressive, context)', conditional: true, make: () => buildFlow(resolveArch('nsf', D, { ...small, variant: 'autoregressive', contextDim: C }, 12)), tol: 1e-3 },
];

/**
 * Random parameter values (N(0, 0.4²)) so that no layer is the identity; dense invertible weights
 * get I + N(0, 0.4²) instead, keeping them well conditioned (a random Gaussian 3×3 matrix is now and
 * then nearly singular, and float32 round trips through it then lose digits in proportion).
 */
function randomize(flow: Flow, seed: number): void {
  const rng = new Rng(seed, 77);
  for (const name of flow.store.names) {
    const t = flow.store.get(name);
    const v = Float32Array.from({ length: t.size }, () => rng.normal() * 0.4);
    if (name.endsWith('dense_linear.weight') || name === 'l.weight') for (let i = 0; i < t.shape[0]!; i++) v[i * t.shape[0]! + i]! += 1;
    flow.store.write(name, v);
  }
}

function randomTensor(rows: number, cols: number, rng: Rng, scale = 1): Tensor {
  return tensor(Float32Array.from({ length: rows * cols }, () => rng.normal() * scale), [rows, cols]);
}

/** Per-row Jacobians [B, D, D] (J[b][i][j] = ∂out_i/∂in_j), one backward pass per output column. */
async function jacobians(fn: (x: Tensor) => Tensor, x: Tensor): Promise<Float64Array> {
  const [rows, dim] = x.shape as [number, number];
  const J = new Float64Array(rows * dim * dim);
  for (let i = 0; i < dim; i++) {
    const { value, grads } = valueAndGrad(() => sum(slice(fn(x), [0, i], [rows, 1])), [x]);
    const g = await grads[0]!.data();
    for (let b = 0; b < rows; b++) for (let j = 0; j < dim; j++) J[b * dim * dim + i * dim + j] = g[b * dim + j]!;
    value.dispose();
    grads[0]!.dispose();
  }
  return J;
}

async function maxAbs(t: Tensor): Promise<number> {
  const d = await t.data();
  return d.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
}

beforeAll(async () => {
  await gpu();
});

for (const [group, subjects] of [['layer', LAYERS], ['flow', FLOWS]] as const) {
  describe.each(subjects)(`${group}: $name`, (s) => {
    let flow: Flow;
    let x: Tensor;
    let ctx: Tensor | undefined;
    const rng = new Rng(2024);

    beforeAll(async () => {
      flow = s.make();
      randomize(flow, 5);
      x = randomTensor(B, D, rng);
      ctx = s.conditional ? randomTensor(B, C, rng) : undefined;
      expect(flow.contextDim).toBe(s.conditional ? C : 0);
    });

    test('round trip both ways, log-dets cancel', async () => {
      const tol = s.tol ?? 2e-4;
      const f = flow.forward(x, ctx);
      const back = flow.inverse(f.z, ctx);
      expectClose(await back.x.data(), await x.data(), { atol: tol, rtol: tol }, 'inverse(forward(x))');
      const ld = await f.logDet.data(), ldi = await back.logDet.data();
      expectClose(Array.from(ld, (v, i) => v + ldi[i]!), new Float64Array(B), { atol: 10 * tol, rtol: 0 }, 'logdet + inverse logdet');
      const z = randomTensor(B, D, rng, 0.8);
      const inv = flow.inverse(z, ctx);
      const again = flow.forward(inv.x, ctx);
      expectClose(await again.z.data(), await z.data(), { atol: tol, rtol: tol }, 'forward(inverse(z))');
      expectClose(Array.from(await again.logDet.data(), (v, i) => -v), await inv.logDet.data(), { atol: 10 * tol, rtol: 1e-4 }, 'inverse logdet = −forward logdet');
      for (const t of [f.z, f.logDet, back.x, back.logDet, z, inv.x, inv.logDet, again.z, again.logDet]) t.dispose();
    });

    test('log|det| equals the dense Jacobian (tape, float64 determinant), both directions', async () => {
      const Jf = await jacobians((h) => flow.forward(h, ctx).z, x);
      const ldf = await flow.forward(x, ctx).logDet.data();
      expectClose(ldf, refLogdet(new Ref([B, D, D], Jf)).data, { atol: 2e-4, rtol: 1e-3 }, 'forward log|det J|');
      const z = randomTensor(B, D, rng, 0.8);
      const Ji = await jacobians((h) => flow.inverse(h, ctx).x, z);
      const ldi = await flow.inverse(z, ctx).logDet.data();
      expectClose(ldi, refLogdet(new Ref([B, D, D], Ji)).data, { atol: 5e-4, rtol: 1e-3 }, 'inverse log|det J|');
    });

    test('logProb and sampleAndLogProb agree', async () => {
      const c = s.conditional ? ctx : undefined;
      const { x: xs, logProb } = flow.sampleAndLogProb(B, new GpuRng(9), c);
      const lp = flow.logProb(xs, c);
      expectClose(await lp.data(), await logProb.data(), { atol: s.tol ?? 5e-4, rtol: 1e-4 }, 'log p of own samples');
      const plain = flow.sample(B, new GpuRng(9), c);
      expectClose(await plain.data(), await xs.data(), { atol: 1e-6, rtol: 0 }, 'sample = sampleAndLogProb().x');
    });

    test('gradients reach every parameter (and the context) through logProb and through sampling', async () => {
      const params = flow.parameters;
      const wrt = ctx ? [...params, ctx] : params;
      const names = ctx ? [...flow.store.names, 'context'] : flow.store.names;
      const viaDensity = valueAndGrad(() => neg(mean(flow.logProb(x, ctx))), wrt);
      const viaSampling = valueAndGrad(() => {
        const r = flow.sampleAndLogProb(B, new GpuRng(3), ctx);
        return add(mean(r.logProb), mean(r.x));
      }, wrt);
      for (const [how, r] of [['logProb', viaDensity], ['sampling', viaSampling]] as const) {
        expect(Number.isFinite(await r.value.item()), `${how}: finite loss`).toBe(true);
        for (const [i, g] of r.grads.entries()) {
          const m = await maxAbs(g);
          expect(Number.isFinite(m), `${how}: gradient of ${names[i]} is finite`).toBe(true);
          expect(m, `${how}: gradient of ${names[i]} is non-zero`).toBeGreaterThan(0);
        }
      }
      getBackend().flush();
    });

    test('wrong dimension and context misuse are clear errors', () => {
      const bad = tensor(new Float32Array(B * (D + 1)), [B, D + 1]);
      expect(() => flow.logProb(bad, ctx)).toThrow(/dimension 3|\[batch, 3\]/);
      if (s.conditional) {
        expect(() => flow.logProb(x)).toThrow(/context of shape \[6, 2\] is required/);
        expect(() => flow.logProb(x, tensor(new Float32Array(B * 3), [B, 3]))).toThrow(/context must have shape \[6, 2\]/);
      } else {
        expect(() => flow.logProb(x, tensor(new Float32Array(B * C), [B, C]))).toThrow(/unconditional/);
      }
      bad.dispose();
    });
  });
}

/**
 * An autoregressive layer's Jacobian zero pattern (4-D, 5 rows, a context column), both directions:
 * ∂out_i/∂in_j is exactly 0 when j comes at or after i in the order (deg_j ≥ deg_i, j ≠ i); the
 * diagonal is non-zero; `offDiagonalNonZero`: so is every allowed off-diagonal entry (MADE's affine
 * layer; a spline's may vanish where the input sits in a flat bin).
 */
async function expectAutoregressive(layer: MAFLayer | SplineAutoregressive, store: ParamStore, offDiagonalNonZero: boolean): Promise<void> {
  const dim = layer.dim;
  const flow = new Flow([layer], new StandardNormal(dim), store);
  randomize(flow, 8);
  const rng = new Rng(6);
  const xx = randomTensor(5, dim, rng);
  const c = randomTensor(5, 1, rng);
  const deg = layer.degrees;
  for (const dir of ['forward', 'inverse'] as const) {
    const J = await jacobians((h) => (dir === 'forward' ? layer.forward(h, c).y : layer.inverse(h, c).x), xx);
    for (let b = 0; b < 5; b++)
      for (let i = 0; i < dim; i++)
        for (let j = 0; j < dim; j++) {
          const v = J[b * dim * dim + i * dim + j]!;
          if (i !== j && deg[j]! >= deg[i]!) expect(v, `${dir}: ∂out${i}/∂in${j} must be exactly 0 (degrees ${deg[i]}, ${deg[j]})`).toBe(0);
          else if (i === j || offDiagonalNonZero) expect(Math.abs(v), `${dir}: ∂out${i}/∂in${j} should be non-zero`).toBeGreaterThan(0);
        }
  }
  flow.dispose();
}

describe('MADE: autoregressive structure through the Jacobian zero pattern', () => {
  for (const order of ['natural', 'reverse', [2, 4, 1, 3]] as const) {
    test(`order ${JSON.stringify(order)}`, async () => {
      const store = new ParamStore();
      await expectAutoregressive(new MAFLayer(store, 'maf', 4, { hidden: [12, 12], activation: 'tanh', contextDim: 1, order }, new Rng(4)), store, true);
    });
  }
});

describe('spline autoregressive layer: autoregressive structure through the Jacobian zero pattern', () => {
  test('order [2, 4, 1, 3], K 4, with a context', async () => {
    const store = new ParamStore();
    await expectAutoregressive(new SplineAutoregressive(store, 'nsf', 4, { hidden: [12, 12], activation: 'tanh', contextDim: 1, order: [2, 4, 1, 3], bins: 4 }, new Rng(4)), store, false);
  });
});

describe('planar stays invertible after training', () => {
  test('large-step Adam on moons keeps wᵀû > −1, finite log-dets and an exact round trip', async () => {
    const flow = buildFlow(resolveArch('planar', 2, { layers: 6, actnorm: false }, 3));
    const adam = new Adam(flow.store.paramSet!, { lr: 0.05 });
    const rng = new Rng(1);
    const sampler = getDataset('ffjord-moons').sample;
    for (let step = 0; step < 40; step++) {
      scope(() => {
        const xb = tensor(sampler(128, rng), [128, 2]);
        const { grads } = valueAndGrad(() => neg(mean(flow.logProb(xb))), flow.parameters);
        adam.step(grads);
      });
      getBackend().flush();
    }
    for (const l of flow.layers) {
      const m = await (l as Planar).constrained().m.item();
      expect(m).toBeGreaterThan(-1);
    }
    const xt = tensor(sampler(256, rng), [256, 2]);
    const f = flow.forward(xt);
    const ld = await f.logDet.data();
    expect(ld.every(Number.isFinite)).toBe(true);
    const back = flow.inverse(f.z);
    expectClose(await back.x.data(), await xt.data(), { atol: 2e-3, rtol: 1e-3 }, 'round trip after training');
    const s = flow.sampleAndLogProb(256, new GpuRng(2));
    expect((await s.logProb.data()).every(Number.isFinite)).toBe(true);
    adam.dispose();
    flow.dispose();
  });
});
