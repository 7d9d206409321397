/**
 * The `rqspline` primitive (engine/spline.ts, kernels/spline.ts): rational-quadratic splines with
 * identity tails, forward and inverse, against the float64 reference (engine/reference.ts
 * R.rqspline) in value and in the gradients of all four inputs (central differences of the
 * reference, tests/helpers.ts checkOp) on awkward shapes — rows 1, 7, 257 (not a multiple of the
 * 64-thread workgroup), K = 1, 3, 8 — with points in both tails, exactly on bin edges and at ±B;
 * inverse ∘ forward = identity with opposite log-determinants; bad shapes rejected by name; the nsf
 * method's options (resolved, stored, checked on read) and its exact resume in both variants.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine';
import type { Tensor } from '../engine';
import { Rng } from '../engine/philox';
import * as R from '../engine/reference';
import { Ref } from '../engine/reference';
import { SPLINE_MINIMA, splineVjp } from '../engine/spline';
import { resolveArch } from '../flows/build';
import { checkModelConfig } from '../cli/stored-config';
import { flowJob } from '../train/registry';
import type { TrainConfig, TrainState } from '../train/contract';
import { checkOp, expectClose, gpu, rand, up } from './helpers';

const data = new Rng(4242);

interface Case {
  rows: number;
  dim: number;
  bins: number;
  bound: number;
  inverse: boolean;
}

const params = (c: Case) => ({ bins: c.bins, bound: c.bound, inverse: c.inverse, ...SPLINE_MINIMA });

/** x spread over [−1.4B, 1.4B] (about 30 % in the tails), parameters over [−2, 2]. */
function inputsOf(c: Case): Ref[] {
  const ins = [rand([c.rows, c.dim], data, -1.4 * c.bound, 1.4 * c.bound), rand([c.rows, c.dim, c.bins], data, -2, 2), rand([c.rows, c.dim, c.bins], data, -2, 2)];
  if (c.bins > 1) ins.push(rand([c.rows, c.dim, c.bins - 1], data, -2, 2));
  return ins;
}

/** Both outputs stacked [2, rows, dim], so one weighted loss checks the gradients through y and log|det|. */
const gpuFn = (c: Case) => (x: Tensor, w: Tensor, h: Tensor, d?: Tensor) => {
  const { y, logDet } = E.rqspline(x, w, h, d ?? null, { bound: c.bound, inverse: c.inverse });
  return E.concat([E.reshape(y, [1, c.rows, c.dim]), E.reshape(logDet, [1, c.rows, c.dim])], 0);
};
const refFn = (c: Case) => (x: Ref, w: Ref, h: Ref, d?: Ref) => {
  const { y, logDet } = R.rqspline(x, w, h, d ?? null, params(c));
  return R.concat([R.reshape(y, [1, c.rows, c.dim]), R.reshape(logDet, [1, c.rows, c.dim])], 0);
};

const CASES: Case[] = [];
for (const inverse of [false, true]) {
  CASES.push({ rows: 1, dim: 1, bins: 8, bound: 3, inverse });
  CASES.push({ rows: 7, dim: 3, bins: 3, bound: 3, inverse });
  CASES.push({ rows: 7, dim: 2, bins: 1, bound: 2, inverse });
  CASES.push({ rows: 257, dim: 1, bins: 8, bound: 4, inverse });
  CASES.push({ rows: 257, dim: 2, bins: 3, bound: 1.5, inverse });
}

beforeAll(async () => {
  await gpu();
});

describe('rqspline against float64 (values; gradients of x, widths, heights, derivatives by central differences)', () => {
  for (const c of CASES) {
    const name = `${c.inverse ? 'inverse' : 'forward'}: rows ${c.rows}, dim ${c.dim}, K ${c.bins}, B ${c.bound}`;
    it(name, () => checkOp({ name, inputs: inputsOf(c), gpu: gpuFn(c) as (...t: Tensor[]) => Tensor, ref: refFn(c) as (...r: Ref[]) => Ref, fdCoords: 16, tol: { atol: 3e-5, rtol: 3e-4 }, gradTol: { atol: 5e-4, rtol: 3e-3 } }, new Rng(c.rows * 100 + c.bins)));
  }
});

/** The float64 knots of element i (widths or heights), as kernels/spline.ts builds them. */
function knotsOf(u: Ref, i: number, K: number, B: number): number[] {
  const row = Array.from(u.data.subarray(i * K, (i + 1) * K));
  const mx = Math.max(...row);
  const e = row.map((v) => Math.exp(v - mx));
  const tot = e.reduce((a, v) => a + v, 0);
  const c = [-B];
  let acc = 0;
  for (let k = 0; k < K; k++) c.push(-B + 2 * B * (acc += SPLINE_MINIMA.minWidth + (1 - SPLINE_MINIMA.minWidth * K) * (e[k]! / tot)));
  c[K] = B;
  return c;
}

describe('edges', () => {
  it('points on bin edges and at ±B: values, log|det| and dy/d(every input) against float64', async () => {
    // One element per knot (every interior knot of its own spline, and ±B), K = 8: y and log|det|
    // are continuous there (C¹ spline with identity tails), and so is y's gradient; log|det|'s
    // gradient jumps (f'' does), so only y's gradient is compared.
    const K = 8;
    const B = 3;
    const rows = K + 1;
    const [, w, h, d] = inputsOf({ rows, dim: 1, bins: K, bound: B, inverse: false });
    const x = new Ref([rows, 1], Float64Array.from({ length: rows }, (_, i) => Math.fround(knotsOf(w!, i, K, B)[i]!)));
    const ins = [x, w!, h!, d!];
    const c: Case = { rows, dim: 1, bins: K, bound: B, inverse: false };
    const both = refFn(c)(x, w!, h!, d!);
    const ts = ins.map(up);
    const out = gpuFn(c)(ts[0]!, ts[1]!, ts[2]!, ts[3]!);
    expectClose(await out.data(), both.data, { atol: 3e-5, rtol: 3e-4 }, 'values on edges');
    expect(x.data[0]).toBe(-B);
    expect(x.data[K]).toBe(B);
    out.dispose();
    await checkOp({
      name: 'dy on edges', inputs: ins, fdCoords: 24, gradTol: { atol: 5e-4, rtol: 3e-3 },
      gpu: (a, b, e, f) => E.rqspline(a, b, e, f!, { bound: B }).y,
      ref: (a, b, e, f) => R.rqspline(a, b, e, f!, params(c)).y,
    }, new Rng(9));
    ts.forEach((t) => t.dispose());
  });

  it('tails are the identity with log|det| 0 and no parameter gradient', async () => {
    const K = 3;
    const xs = up(new Ref([4], Float64Array.from([-7, -3.0001, 3.0001, 50])));
    const [, w, h, d] = inputsOf({ rows: 4, dim: 1, bins: K, bound: 3, inverse: false }).map((r) => up(new Ref(r.shape.filter((_, i) => i !== 1), r.data)));
    const { value, grads } = E.valueAndGrad(() => {
      const { y, logDet } = E.rqspline(xs, w!, h!, d!, { bound: 3 });
      return E.add(E.sum(E.mul(y, y)), E.sum(logDet));
    }, [xs, w!, h!, d!]);
    expect(await value.item()).toBeCloseTo(49 + 3.0001 ** 2 * 2 + 2500, 1);
    expectClose(await grads[0]!.data(), [-14, -6.0002, 6.0002, 100], { rtol: 1e-6 }, 'dx');
    for (const g of grads.slice(1)) expect([...(await g.data())].every((v) => v === 0)).toBe(true);
    for (const t of [value, ...grads, xs, w!, h!, d!]) t.dispose();
  });
});

describe('inverse', () => {
  it('inverse(forward(x)) = x and the log-determinants cancel (rows 257, K 8)', async () => {
    const c: Case = { rows: 257, dim: 2, bins: 8, bound: 3, inverse: false };
    const ts = inputsOf(c).map(up);
    const [x, w, h, d] = ts as [Tensor, Tensor, Tensor, Tensor];
    const f = E.rqspline(x, w, h, d, { bound: 3 });
    const b = E.rqspline(f.y, w, h, d, { bound: 3, inverse: true });
    // float32 conditioning: an error ε in y becomes ε / f'(x) in x, so the residual is measured in
    // y's units, |x' − x|·f'(x), and must be a few float32 ulps of y.
    const [xr, xd, yd, ld] = await Promise.all([b.y.data(), x.data(), f.y.data(), f.logDet.data()]);
    const scaled = Array.from(xr, (v, i) => (v - xd[i]!) * Math.exp(ld[i]!) / (1 + Math.abs(yd[i]!)));
    expectClose(scaled, new Float64Array(x.size), { atol: 3e-6 }, 'round trip (residual × dy/dx)');
    expectClose(xr, xd, { atol: 2e-4 }, 'round trip');
    const sumLd = E.add(f.logDet, b.logDet);
    // log f' moves by (f''/f')·Δx with the round trip's Δx above (the float64 comparisons of the
    // inverse itself are tight: see the checkOp cases).
    expectClose(await sumLd.data(), new Float32Array(x.size), { atol: 3e-4 }, 'log|det| sum');
    for (const t of [...ts, f.y, f.logDet, b.y, b.logDet, sumLd]) t.dispose();
  });
});

describe('dispatches and errors', () => {
  it('one spline dispatch forward (plus two row slices), one for every cotangent', async () => {
    const c: Case = { rows: 7, dim: 3, bins: 8, bound: 3, inverse: false };
    const ts = inputsOf(c).map(up);
    const be = E.getBackend();
    const d0 = be.counters.dispatches;
    const { y, logDet } = E.rqspline(ts[0]!, ts[1]!, ts[2]!, ts[3]!);
    expect(be.counters.dispatches - d0).toBe(3);
    y.dispose();
    logDet.dispose();
    const g = up(rand([2, c.rows, c.dim], data));
    const d1 = be.counters.dispatches;
    const gs = E.noGrad(() => splineVjp(ts, params(c), g, [true, true, true, true]));
    expect(be.counters.dispatches - d1).toBe(1);
    expect(gs.map((t) => t!.shape)).toEqual(ts.map((t) => t.shape));
    for (const t of [g, ...gs, ...ts]) t!.dispose();
  });

  it('bad shapes and options are refused, naming the tensor and what is accepted', () => {
    const c: Case = { rows: 2, dim: 2, bins: 4, bound: 3, inverse: false };
    const [x, w, h, d] = inputsOf(c).map(up) as [Tensor, Tensor, Tensor, Tensor];
    expect(() => E.rqspline(x, w, h, w)).toThrow(/derivatives must have shape \[2, 2, 3\].*got \[2, 2, 4\]/);
    expect(() => E.rqspline(x, w, d, d)).toThrow(/heights must have shape \[2, 2, 4\]/);
    expect(() => E.rqspline(x, w, h, null)).toThrow(/4 bins need derivatives/);
    expect(() => E.rqspline(x, w, h, d, { bound: -1 })).toThrow(/bound must be a positive finite number, got -1/);
    expect(() => E.rqspline(x, w, h, d, { minWidth: 0.3 })).toThrow(/minWidth must be ≥ 0 and below 1\/bins/);
    for (const t of [x, w, h, d]) t.dispose();
  });
});

describe('nsf options: resolved, stored in checkpoints and checked on read', () => {
  const configOf = (method: string, options: Record<string, unknown>) => ({
    family: 'flow', method, source: null, target: 'checkerboard', data: null, dim: 2, steps: 10, batch: 16, lr: 1e-3, seed: 0,
    schedule: 'cosine', testSize: 100, testFraction: 0.1, arch: resolveArch(method, 2, options, 0), standardize: null, options,
  });
  const params = { p: { data: new Float32Array(400), shape: [400] } };

  it('defaults: coupling, 8 bins on [−3, 3], 6 layers; options override; other methods refuse them', () => {
    expect(resolveArch('nsf', 2, {}, 0)).toMatchObject({ method: 'nsf', variant: 'coupling', bins: 8, bound: 3, layers: 6 });
    expect(resolveArch('nsf', 3, { variant: 'autoregressive', bins: '5', bound: '2.5' }, 0)).toMatchObject({ variant: 'autoregressive', bins: 5, bound: 2.5 });
    expect(resolveArch('realnvp', 2, {}, 0)).not.toHaveProperty('bins');
    expect(() => resolveArch('realnvp', 2, { bins: 4 }, 0)).toThrow(/bins: 4 is not accepted; accepted: no value: the option applies to method nsf only/);
    expect(() => resolveArch('nsf', 2, { variant: 'spline' }, 0)).toThrow(/variant: "spline" is not accepted; accepted: coupling, autoregressive/);
    expect(() => resolveArch('nsf', 2, { bins: 65 }, 0)).toThrow(/bins: 65 is not accepted; accepted: an integer from 1 to 64/);
    expect(() => resolveArch('nsf', 2, { bound: 0 }, 0)).toThrow(/bound: 0 is not accepted; accepted: a positive number/);
    expect(() => resolveArch('nsf', 1, {}, 0)).toThrow(/coupling variant needs data of dimension ≥ 2.*variant=autoregressive/);
  });

  it('a stored nsf config reads back; bad or missing nsf fields are refused naming arch.<field>', () => {
    const good = configOf('nsf', { layers: 2, hidden: [8, 8], variant: 'autoregressive', bins: 4 });
    expect(checkModelConfig('nsf', good, params)).toMatchObject({ method: 'nsf', arch: { variant: 'autoregressive', bins: 4, bound: 3 } });
    const mutate = (f: (arch: Record<string, unknown>) => void) => {
      const c = configOf('nsf', { layers: 2, hidden: [8, 8], variant: 'autoregressive', bins: 4 });
      f(c.arch as unknown as Record<string, unknown>);
      return () => checkModelConfig('nsf', c, params);
    };
    expect(mutate((a) => (a.bins = 0))).toThrow(/field "arch" is not an architecture nsf accepts: flow option bins: 0/);
    expect(mutate((a) => (a.variant = 'affine'))).toThrow(/variant: "affine" is not accepted/);
    expect(mutate((a) => (a.bound = -2))).toThrow(/bound: -2 is not accepted/);
    expect(mutate((a) => delete a.bins)).toThrow(/arch\.bins/);
    const rnvp = configOf('realnvp', { layers: 2, hidden: [8, 8] });
    (rnvp.arch as unknown as Record<string, unknown>).bins = 8;
    expect(() => checkModelConfig('realnvp', rnvp, params)).toThrow(/bins: 8 is not accepted; accepted: no value: the option applies to method nsf only/);
  });
});

describe('nsf training: checkpoint and exact resume through the training driver', () => {
  for (const variant of ['coupling', 'autoregressive'] as const) {
    it(`${variant}: 3 steps + resume 3 steps gives the parameters of 6 uninterrupted steps`, async () => {
      const c: TrainConfig = { method: 'nsf', source: null, target: 'checkerboard', steps: 6, batch: 32, lr: 1e-2, seed: 0, options: { variant, bins: 4, layers: 2, hidden: [8], testSize: 64, grid: 4, w2: false } };
      const full = await flowJob.run(c);
      let mid: TrainState | null = null;
      await flowJob.run(c, { checkpointEvery: 3, onCheckpoint: (s) => { if (s.step === 3) mid = s; } });
      expect(mid!.step).toBe(3);
      const resumed = await flowJob.run(c, {}, mid!);
      expect(resumed.state.step).toBe(6);
      expect(Object.keys(full.state.params).some((n) => n.includes(variant === 'coupling' ? 'spline_coupling' : 'spline_ar'))).toBe(true);
      for (const [name, p] of Object.entries(full.state.params)) expectClose(resumed.state.params[name]!.data, p.data, { atol: 1e-6, rtol: 1e-6 }, name);
      expect(Number.isFinite(full.metrics.nll)).toBe(true);
      expect(resumed.metrics.nll).toBeCloseTo(full.metrics.nll!, 5);
    });
  }
});
