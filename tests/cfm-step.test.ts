import { beforeAll, describe, expect, test } from 'vitest';
import type { CfmMethod } from '../train/contract';
import { getBackend, tensor } from '../engine';
import { Rng } from '../engine/philox';
import { matchF64, MATCHERS, streamEps, streamT } from '../cfm/matchers';
import { VectorField } from '../cfm/mlp';
import { CfmStepper, fusedGradients, type StepperOptions } from '../cfm/step';
import { gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

const METHODS = Object.keys(MATCHERS) as CfmMethod[];

function batch(B: number, d: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const xy = new Float32Array(2 * B * d);
  for (let k = 0; k < B * d; k++) xy[k] = Math.fround(rng.normal());
  for (let k = B * d; k < 2 * B * d; k++) xy[k] = Math.fround(2 + 0.5 * rng.normal());
  return xy;
}

describe('matchers: x_t and u_t against the torchcfm closed forms (float64)', () => {
  for (const method of METHODS) {
    test(method, async () => {
      const B = 96, d = 3, seed = 17, draw = 5;
      const sigma = MATCHERS[method].sigma;
      const vf = new VectorField({ dim: d, hidden: [8], activation: 'selu' }, new Rng(1));
      const stepper = new CfmStepper(vf, { method, sigma, batch: B, seed, adam: { lr: 1e-3 }, mode: 'tape' });
      const xy = batch(B, d, 4);
      getBackend().write(stepper.xy.buffer, xy);
      const { input, target, eps: epsT } = stepper.matched(null, draw, true);
      const inp = await input.data();
      const tgt = await target.data();
      const epsG = await epsT!.data();
      let worst = 0;
      for (let b = 0; b < B; b++) {
        // The stream replays on the CPU: t bit for bit, eps up to the GPU's float32 log/cos.
        const t = streamT(seed, draw, b);
        expect(inp[b * (d + 1) + d]).toBe(Math.fround(t));
        for (let k = 0; k < d; k++) {
          const eps = epsG[b * d + k]!;
          expect(Math.abs(eps - streamEps(seed, draw, b, k))).toBeLessThan(1e-3 * (1 + Math.abs(eps)));
          const ref = matchF64(method, sigma, xy[b * d + k]!, xy[(B + b) * d + k]!, t, eps);
          // WGSL allows sin/cos an absolute error of 2^-11 (vpcfm's schedule).
          const trig = method === 'vpcfm' ? 2 ** -11 * (Math.abs(xy[b * d + k]!) + Math.abs(xy[(B + b) * d + k]!)) : 0;
          const tolX = 2e-6 * (1 + Math.abs(ref.xt)) + trig;
          // sbcfm's u_t has (1−2t)/(2t(1−t)): float32 rounding of x_t − mu_t is amplified near t = 0, 1.
          const amp = method === 'sbcfm' ? Math.abs((1 - 2 * t) / (2 * t * (1 - t) + 1e-8)) : method === 'fm' ? 1 / (1 - (1 - sigma) * t) : 1;
          const tolU = 2e-6 * (1 + Math.abs(ref.ut)) * (1 + amp * (1 + Math.abs(ref.xt))) + 2 * trig;
          expect(Math.abs(inp[b * (d + 1) + k]! - ref.xt), `x_t row ${b} coord ${k}`).toBeLessThan(tolX);
          expect(Math.abs(tgt[b * d + k]! - ref.ut), `u_t row ${b} coord ${k} (t = ${t})`).toBeLessThan(tolU);
          worst = Math.max(worst, Math.abs(tgt[b * d + k]! - ref.ut) / tolU);
        }
      }
      expect(worst).toBeLessThan(1);
      input.dispose();
      target.dispose();
      epsT!.dispose();
      stepper.dispose();
      vf.dispose();
    });
  }
  test('the eps stream is standard normal and t uniform', () => {
    let s = 0, s2 = 0, tm = 0;
    const n = 4000;
    for (let b = 0; b < n; b++) {
      const e = streamEps(1, 0, b, 0);
      s += e;
      s2 += e * e;
      tm += streamT(1, 0, b);
    }
    expect(Math.abs(s / n)).toBeLessThan(0.06);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.08);
    expect(Math.abs(tm / n - 0.5)).toBeLessThan(0.02);
  });
});

describe('fused forward+backward kernel vs the autodiff tape', () => {
  const cases: { method: CfmMethod; B: number; d: number; hidden: number[]; activation: 'selu' | 'tanh' | 'relu'; S: number }[] = [
    { method: 'icfm', B: 256, d: 2, hidden: [64, 64, 64], activation: 'selu', S: 8 },
    { method: 'sbcfm', B: 50, d: 2, hidden: [16, 24], activation: 'tanh', S: 4 },
    { method: 'fm', B: 37, d: 3, hidden: [32], activation: 'selu', S: 8 },
    { method: 'vpcfm', B: 64, d: 2, hidden: [20, 20], activation: 'relu', S: 3 },
  ];
  for (const c of cases) {
    test(`${c.method}, batch ${c.B}, d ${c.d}, hidden ${c.hidden.join('-')} ${c.activation}, ${c.S} samples/thread`, async () => {
      const vf = new VectorField({ dim: c.d, hidden: c.hidden, activation: c.activation }, new Rng(3));
      const opts: StepperOptions = { method: c.method, sigma: MATCHERS[c.method].sigma, batch: c.B, seed: 9, adam: { lr: 1e-3 }, mode: 'tape', samplesPerThread: c.S };
      const xy = batch(c.B, c.d, 12);
      const fused = await fusedGradients(vf, opts, xy, 3);
      const stepper = new CfmStepper(vf, opts);
      getBackend().write(stepper.xy.buffer, xy);
      const { input, target } = stepper.matched(null, 3);
      const { value, grads } = stepper.lossAndGrads(input, target);
      const loss = await value.item();
      expect(fused.loss).toBeCloseTo(loss, 4);
      let off = 0;
      let gmax = 0;
      const flat: number[] = [];
      for (const g of grads) {
        const gd = await g.data();
        for (const v of gd) {
          flat.push(v);
          gmax = Math.max(gmax, Math.abs(v));
        }
      }
      for (let k = 0; k < flat.length; k++) {
        expect(Math.abs(fused.grad[off + k]! - flat[k]!), `gradient ${k}: fused ${fused.grad[k]} vs tape ${flat[k]}`).toBeLessThan(1e-5 * gmax + 1e-4 * Math.abs(flat[k]!));
      }
      for (const t of [value, input, target, ...grads]) t.dispose();
      stepper.dispose();
      vf.dispose();
    });
  }
});

describe('training steps', () => {
  test('fused and tape steps give the same parameters; 2 dispatches per fused step, one submit, no readback', async () => {
    const B = 64, d = 2;
    const base: StepperOptions = { method: 'icfm', sigma: 0.1, batch: B, seed: 5, adam: { lr: 1e-2 } };
    const params: Float32Array[] = [];
    for (const mode of ['fused', 'tape'] as const) {
      const vf = new VectorField({ dim: d, hidden: [32, 32], activation: 'selu' }, new Rng(7));
      const st = new CfmStepper(vf, { ...base, mode });
      const b = getBackend();
      st.step(batch(B, d, 0), 0);
      await b.sync();
      const c0 = { ...b.counters };
      for (let s = 1; s < 6; s++) st.step(batch(B, d, s), s);
      const c1 = { ...b.counters };
      if (mode === 'fused') {
        expect((c1.dispatches - c0.dispatches) / 5).toBe(2);
        expect(c1.submits - c0.submits).toBe(5);
        expect(c1.readbacks - c0.readbacks).toBe(0);
      }
      const losses = await st.readLosses(0, 6);
      expect(losses.every((x) => Number.isFinite(x) && x > 0)).toBe(true);
      params.push(await vf.params.flat.data());
      const state = await st.adamState();
      expect(state.t).toBe(6);
      st.dispose();
      vf.dispose();
    }
    let worst = 0;
    for (let k = 0; k < params[0]!.length; k++) worst = Math.max(worst, Math.abs(params[0]![k]! - params[1]![k]!));
    expect(worst).toBeLessThan(2e-4);
  });

  test('sinkhorn coupling: 4 dispatches per fused step', async () => {
    const B = 64, d = 2;
    const vf = new VectorField({ dim: d, hidden: [16], activation: 'selu' }, new Rng(7));
    const st = new CfmStepper(vf, { method: 'otcfm', sigma: 0.1, batch: B, seed: 5, adam: { lr: 1e-3 }, sinkhorn: { opts: { reg: 0.5 }, pairing: 'replacement' } });
    const b = getBackend();
    st.step(batch(B, d, 0), 0);
    await b.sync();
    const c0 = b.counters.dispatches;
    st.step(batch(B, d, 1), 1);
    expect(b.counters.dispatches - c0).toBe(4);
    const losses = await st.readLosses(0, 2);
    expect(losses.every((x) => Number.isFinite(x))).toBe(true);
    st.dispose();
    vf.dispose();
  });
});

void tensor;
