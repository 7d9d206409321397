/**
 * [SF]2M (cfm/sf2m.ts, cfm/sf2m-step.ts, cfm/sf2m-train.ts, kernels/sde.ts):
 *  - the conditional targets against closed forms in float64 (x_t, u_t = ∂x_t/∂t, the score target
 *    −ε/λ = (σ²/2)∇log N(x_t; μ_t, σ_t²)), and the GPU matcher against them;
 *  - the loss and its gradients on the GPU against a float64 reference fed the same draws (central
 *    differences), on awkward shapes; every fusion level gives the same numbers;
 *  - the Euler–Maruyama kernel against a float64 replay of its own noise stream, and its marginals
 *    on a Gaussian-to-Gaussian Schrödinger bridge against the closed form;
 *  - training through the registry (both networks in the checkpoint, deterministic, resumable),
 *    sampling by the SDE and the ODE, and the CLI.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as E from '../engine';
import { philox4x32, Rng, seedKey, u32ToUniform, u32ToUniformOpenZero } from '../engine/philox';
import { matchUniforms, MATCHERS, streamEps, streamT } from '../cfm/matchers';
import { mlpForwardF64 } from '../cfm/mlp';
import { resolveConfig } from '../cfm/config';
import { lambdaT, sf2mLossF64, Sf2mModel, sf2mTargetsF64 } from '../cfm/sf2m';
import { sf2mFusedGradients, sf2mMatcherKernel, Sf2mStepper, type Sf2mStepperOptions } from '../cfm/sf2m-step';
import { sdeSolve, sf2mSample } from '../cfm/sf2m-train';
import { TAG_SDE } from '../kernels/sde';
import { getMethod } from '../train/registry';
import type { TrainConfig } from '../train/contract';
import { expectClose, gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

const ROOT = path.resolve(__dirname, '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-sf2m-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function batch(B: number, d: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const xy = new Float32Array(2 * B * d);
  for (let k = 0; k < B * d; k++) xy[k] = Math.fround(rng.normal());
  for (let k = B * d; k < 2 * B * d; k++) xy[k] = Math.fround(1.5 + 0.5 * rng.normal());
  return xy;
}

describe('conditional targets (float64 closed forms)', () => {
  test('x_t, u_t = d/dt of the bridge path, score target = (σ²/2)∇log N(x_t; μ_t, σ_t²), λ = 2σ_t/σ²', () => {
    const rng = new Rng(9);
    for (let i = 0; i < 200; i++) {
      const sigma = [0.1, 0.5, 1, 2][i % 4]!;
      const x0 = 3 * rng.normal(), x1 = 3 * rng.normal(), eps = rng.normal();
      const t = 0.01 + 0.98 * rng.uniform();
      const g = sf2mTargetsF64(sigma, x0, x1, t, eps);
      const mu = t * x1 + (1 - t) * x0;
      const st = sigma * Math.sqrt(t * (1 - t));
      expect(g.xt).toBeCloseTo(mu + st * eps, 12);
      expect(g.lambda).toBeCloseTo((2 * st) / (sigma * sigma + 1e-8), 12);
      // u_t is the time derivative of the conditional path t ↦ μ_t + σ_t·ε at fixed ε (x0, x1).
      const path = (s: number) => s * x1 + (1 - s) * x0 + sigma * Math.sqrt(s * (1 - s)) * eps;
      const h = 1e-6;
      expect(Math.abs(g.ut - (path(t + h) - path(t - h)) / (2 * h))).toBeLessThan(1e-5 * (1 + Math.abs(g.ut)));
      // The score target: (σ²/2)·∂/∂x log N(x; μ_t, σ_t²) at x_t, by central differences.
      const logp = (x: number) => -0.5 * ((x - mu) / st) ** 2 - Math.log(st);
      const fd = ((sigma * sigma) / 2) * ((logp(g.xt + h) - logp(g.xt - h)) / (2 * h));
      expect(Math.abs(g.st - fd)).toBeLessThan(1e-5 * (1 + Math.abs(fd)));
      expect(g.lambda * g.st + eps).toBeCloseTo(0, 12);
    }
    expect(lambdaT(1, 0)).toBe(0);
    expect(lambdaT(1, 0.5)).toBeCloseTo(1, 7);
  });

  test('the GPU matcher writes x_t, t, u_t, ε and λ(t) of the replayed stream', async () => {
    const B = 67, d = 3, seed = 21, draw = 4, sigma = 0.7;
    const xy = batch(B, d, 2);
    const b = E.getBackend();
    const XY = E.tensor(xy, [2 * B, d]);
    const out = [E.Tensor.empty([B, d + 1]), E.Tensor.empty([B, d]), E.Tensor.empty([B, d]), E.Tensor.empty([B, 1])];
    b.dispatch(b.prepare(sf2mMatcherKernel(sigma, d, B, false)), [XY.buffer, ...out.map((o) => o.buffer)], matchUniforms(seed, draw));
    const [inp, tgt, eps, lam] = await Promise.all(out.map((o) => o.data()));
    for (let r = 0; r < B; r++) {
      const t = streamT(seed, draw, r);
      expect(inp![r * (d + 1) + d]).toBe(Math.fround(t));
      expect(Math.abs(lam![r]! - lambdaT(sigma, t))).toBeLessThan(1e-6 * (1 + lambdaT(sigma, t)));
      for (let k = 0; k < d; k++) {
        const e = streamEps(seed, draw, r, k);
        // The matcher's stream (cfm/matchers.ts) uses the GPU's float32 log and cos: 1e-3 as tests/cfm-step.test.ts.
        expect(Math.abs(eps![r * d + k]! - e)).toBeLessThan(1e-3 * (1 + Math.abs(e)));
        const ref = sf2mTargetsF64(sigma, xy[r * d + k]!, xy[(B + r) * d + k]!, t, eps![r * d + k]!);
        const amp = Math.abs((1 - 2 * t) / (2 * t * (1 - t) + 1e-8)); // u_t amplifies x_t − μ_t's rounding
        expect(Math.abs(inp![r * (d + 1) + k]! - ref.xt)).toBeLessThan(2e-6 * (1 + Math.abs(ref.xt)));
        expect(Math.abs(tgt![r * d + k]! - ref.ut)).toBeLessThan(2e-6 * (1 + amp) * (1 + Math.abs(ref.xt)));
      }
    }
    for (const t of [XY, ...out]) t.dispose();
  });
});

describe('the loss and its gradients', () => {
  const cases = [
    { B: 37, d: 3, hidden: [5, 7], activation: 'tanh' as const, S: 4, sigma: 0.5 },
    { B: 1 + 1, d: 1, hidden: [3], activation: 'selu' as const, S: 8, sigma: 1.3 },
    { B: 29, d: 2, hidden: [16, 16], activation: 'selu' as const, S: 8, sigma: 1 },
  ];
  for (const c of cases) {
    test(`fused kernel = float64 reference and central differences (B ${c.B}, d ${c.d}, hidden [${c.hidden}], ${c.activation}, S ${c.S})`, async () => {
      const cfg = { dim: c.d, hidden: c.hidden, activation: c.activation };
      const model = new Sf2mModel(cfg, new Rng(5));
      const seed = 13, step = 7;
      const xy = batch(c.B, c.d, 3);
      const opts: Sf2mStepperOptions = { sigma: c.sigma, batch: c.B, seed, adam: { lr: 1e-3 }, samplesPerThread: c.S };
      const fused = await sf2mFusedGradients(model, opts, xy, step);
      const flat = Float64Array.from(await model.params.flat.data());
      const x0 = xy.subarray(0, c.B * c.d), x1 = xy.subarray(c.B * c.d);
      const t = Array.from({ length: c.B }, (_, b) => streamT(seed, step, b));
      const eps = Array.from({ length: c.B * c.d }, (_, i) => streamEps(seed, step, Math.floor(i / c.d), i % c.d));
      const ref = sf2mLossF64(cfg, flat, c.sigma, x0, x1, t, eps);
      expect(ref.flow).toBeGreaterThan(0);
      expect(ref.score).toBeGreaterThan(0);
      expect(Math.abs(fused.loss - ref.loss)).toBeLessThan(2e-4 * ref.loss);
      // Every gradient entry of both networks against central differences of the float64 loss.
      const h = 1e-6;
      const fd = new Float64Array(flat.length);
      for (let i = 0; i < flat.length; i++) {
        const p = Float64Array.from(flat);
        p[i] = flat[i]! + h;
        const lp = sf2mLossF64(cfg, p, c.sigma, x0, x1, t, eps).loss;
        p[i] = flat[i]! - h;
        fd[i] = (lp - sf2mLossF64(cfg, p, c.sigma, x0, x1, t, eps).loss) / (2 * h);
      }
      expectClose(fused.grad, fd, { atol: 2e-5, rtol: 2e-3 }, 'sf2m gradient vs central differences');
      model.dispose();
    });
  }

  test('every fusion level gives the same loss and gradients (step vs tape at mlp, layer, ops)', async () => {
    const d = 2, B = 48;
    const model = new Sf2mModel({ dim: d, hidden: [32, 32], activation: 'selu' }, new Rng(3));
    const opts: Sf2mStepperOptions = { sigma: 1, batch: B, seed: 11, adam: { lr: 1e-3 } };
    const xy = batch(B, d, 5);
    const fused = await sf2mFusedGradients(model, opts, xy, 3);
    for (const level of ['mlp', 'layer', 'ops'] as const) {
      const st = new Sf2mStepper(model, { ...opts, fusion: level });
      expect(st.fusion).toBe(level);
      E.getBackend().write(st.xy.buffer, xy);
      const { value, grads } = st.lossAndGrads(null, 3);
      expect(Math.abs((await value.item()) - fused.loss)).toBeLessThan(1e-5 * fused.loss);
      const flat = new Float32Array(model.params.size);
      let off = 0;
      for (const g of grads) {
        flat.set(await g.data(), off);
        off += g.size;
        g.dispose();
      }
      expectClose(flat, fused.grad, { atol: 2e-6, rtol: 2e-4 }, `sf2m ${level} vs step`);
      value.dispose();
      st.dispose();
    }
    model.dispose();
  });
});

/** Sets a one-hidden-layer linear ('none') network [x, t] → d to x ↦ c + K·x (hidden width d). */
function linearNet(flat: Float32Array, l: Sf2mModel['flowLayout'], K: number[][], c: number[]): void {
  const d = c.length;
  for (let i = 0; i <= d; i++) for (let j = 0; j < d; j++) flat[l.wOffsets[0]! + i * d + j] = i === j ? 1 : 0;
  for (let j = 0; j < d; j++) flat[l.bOffsets[0]! + j] = 0;
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) flat[l.wOffsets[1]! + i * d + j] = K[j]![i]!;
  for (let j = 0; j < d; j++) flat[l.bOffsets[1]! + j] = c[j]!;
}

describe('Euler–Maruyama (kernels/sde.ts)', () => {
  test('equals a float64 replay of its noise stream, split over dispatches (n 13, d 3, S 4)', async () => {
    const n = 13, d = 3, g = 0.8, seed = 4, steps = 7;
    const model = new Sf2mModel({ dim: d, hidden: [6], activation: 'tanh' }, new Rng(8));
    const x0 = batch(n, d, 6).subarray(0, n * d);
    const X0 = E.tensor(x0, [n, d]);
    const sol = sdeSolve(model, X0, { steps, g, seed, stepsPerDispatch: 3, t0: 0.1, t1: 0.9 });
    const got = await sol.x.data();
    expect(sol.nfe).toBe(2 * steps);
    const flat = await model.params.flat.data();
    const [k0, k1] = seedKey(seed);
    const h = 0.8 / steps;
    for (let i = 0; i < n; i++) {
      let x = Array.from(x0.subarray(i * d, (i + 1) * d), Number);
      for (let k = 0; k < steps; k++) {
        const t = 0.1 + k * h;
        const v = mlpForwardF64(model.flowLayout, flat, x, t);
        const s = mlpForwardF64(model.scoreLayout, flat, x, t);
        const xi = new Array<number>(d);
        for (let p = 0; 2 * p < d; p++) {
          const w = philox4x32(i, k, TAG_SDE + p, 0, k0, k1);
          const r = Math.sqrt(-2 * Math.log(u32ToUniformOpenZero(w[0]))), th = 2 * Math.PI * u32ToUniform(w[1]);
          xi[2 * p] = r * Math.cos(th);
          if (2 * p + 1 < d) xi[2 * p + 1] = r * Math.sin(th);
        }
        x = x.map((xk, j) => xk + h * (v[j]! + s[j]!) + g * Math.sqrt(h) * xi[j]!);
      }
      expectClose(got.subarray(i * d, (i + 1) * d), x, { atol: 2e-5, rtol: 1e-4 }, `sample ${i}`);
    }
    for (const t of [X0, sol.x]) t.dispose();
    model.dispose();
  });

  test('marginals of the Gaussian Schrödinger bridge N(a, α²) → N(b, α² + σ²): mean a + t(b − a), variance α² + σ²t', async () => {
    // For reference σW and these marginals the static SB plan is x1 = x0 + σ·N(0, I) and the SB is
    // dx = (b − a) dt + σ dW: its drift is exactly an MLP. We split it as SF2M does into a flow
    // v = (b − a) + Kx and a score s = −Kx, so a sampler that dropped s, or scaled it by anything
    // but 1, moves the marginals (checked below with s switched off).
    const d = 2, n = 20000, sigma = 0.6, alpha = 0.8, steps = 50;
    const a = [1, -2], bm = [-1, 0.5];
    const K = [[0.7, 0.2], [-0.3, 0.5]];
    const model = new Sf2mModel({ dim: d, hidden: [d], activation: 'none' }, new Rng(1));
    const flat = new Float32Array(model.params.size);
    linearNet(flat, model.flowLayout, K, [bm[0]! - a[0]!, bm[1]! - a[1]!]);
    const scoreAt0 = { ...model.scoreLayout };
    const sub = new Float32Array(model.perNet);
    linearNet(sub, { ...scoreAt0, wOffsets: scoreAt0.wOffsets.map((o) => o - model.perNet), bOffsets: scoreAt0.bOffsets.map((o) => o - model.perNet) }, K.map((r) => r.map((x) => -x)), [0, 0]);
    flat.set(sub, model.perNet);
    const exact = new Sf2mModel(model.cfg, flat);
    const noScore = new Sf2mModel(model.cfg, Float32Array.from(flat.map((x, i) => (i >= model.perNet ? 0 : x))));
    const rng = new Rng(77);
    const x0 = Float32Array.from({ length: n * d }, (_, i) => a[i % d]! + alpha * rng.normal());
    const X0 = E.tensor(x0, [n, d]);
    const moments = async (m: Sf2mModel) => {
      const sol = sdeSolve(m, X0, { steps, g: sigma, seed: 3, times: [0.5, 1] });
      const out: { mean: number[]; vr: number[] }[] = [];
      for (const x of sol.trajectory) {
        const v = await x.data();
        x.dispose();
        const mean = [0, 1].map((k) => { let s = 0; for (let i = 0; i < n; i++) s += v[i * d + k]!; return s / n; });
        const vr = [0, 1].map((k) => { let s = 0; for (let i = 0; i < n; i++) s += (v[i * d + k]! - mean[k]!) ** 2; return s / (n - 1); });
        out.push({ mean, vr });
      }
      sol.x.dispose();
      return out;
    };
    const within = (m: { mean: number[]; vr: number[] }[]) =>
      [0.5, 1].every((t, i) => [0, 1].every((k) => {
        const mu = a[k]! + t * (bm[k]! - a[k]!);
        const vr = alpha * alpha + sigma * sigma * t;
        // 5 standard errors of the sample mean and variance of n independent Gaussian points.
        return Math.abs(m[i]!.mean[k]! - mu) < 5 * Math.sqrt(vr / n) && Math.abs(m[i]!.vr[k]! - vr) < 5 * vr * Math.sqrt(2 / (n - 1));
      }));
    const good = await moments(exact);
    expect(within(good), JSON.stringify(good)).toBe(true);
    expect(within(await moments(noScore))).toBe(false);
    for (const m of [model, exact, noScore]) m.dispose();
    X0.dispose();
  });
});

function sf2mConfig(over: Partial<TrainConfig> = {}, options: Record<string, unknown> = {}): TrainConfig {
  return { method: 'sf2m', source: '8gaussians', target: 'moons', steps: 12, batch: 64, lr: 1e-3, seed: 2, options: { hidden: [16, 16], evalPoints: 128, trajectoryPoints: 0, nllPoints: 0, solverSteps: 10, ...options }, ...over };
}

describe('training, sampling and the CLI', () => {
  test('config: σ default 1, exact OT by default, Sinkhorn with reg 2σ², σ must be positive', () => {
    const c = resolveConfig(sf2mConfig());
    expect([c.sigma, c.coupling, c.reg]).toEqual([MATCHERS.sf2m.sigma, 'exact', null]);
    const s = resolveConfig(sf2mConfig({}, { ot: 'sinkhorn', sigma: 0.5 }));
    expect([s.coupling, s.reg]).toEqual(['sinkhorn', 0.5]);
    expect(() => resolveConfig(sf2mConfig({}, { sigma: 0 }))).toThrow(/option sigma: 0 is not a positive number/);
    expect(() => getMethod('sf2m').resolveConfig!(sf2mConfig({ source: 'gaussian' }, { condition: 'labels' }))).toThrow(/option condition: sf2m trains unconditional models/);
  });

  test('trains both networks (2 dispatches a step), resumes bit for bit, samples by the SDE and the ODE', async () => {
    const job = getMethod('sf2m').job;
    const out = await job.run(sf2mConfig());
    expect(Object.keys(out.state.params)).toEqual(expect.arrayContaining(['l0.W', 'l2.b', 'score.l0.W', 'score.l2.b']));
    expect(out.metrics.dispatches_per_step).toBe(2);
    expect(Number.isFinite(out.metrics.w2!)).toBe(true);
    let state: typeof out.state | null = null;
    await job.run(sf2mConfig(), { checkpointEvery: 5, onCheckpoint: (s) => void (s.step === 5 ? (state = s) : null) });
    const resumed = await job.run(sf2mConfig(), {}, state!);
    for (const [k, p] of Object.entries(out.state.params)) expect(resumed.state.params[k]!.data, k).toEqual(p.data);
    const ck = { config: out.config, params: out.state.params, step: out.state.step };
    const sde = await sf2mSample(ck, { n: 50, seed: 1, solver: 'sde', solverSteps: 20, trajectoryTimes: 3 });
    expect(sde.samples.n).toBe(50);
    expect(sde.trajectories).toHaveLength(3);
    expect(sde.samples.data.every(Number.isFinite)).toBe(true);
    const ode = await getMethod('sf2m').sample(ck, { n: 50, seed: 1, solver: 'rk4', solverSteps: 10 });
    expect(ode.samples.data).not.toEqual(sde.samples.data);
    const ev = await getMethod('sf2m').evaluate(ck, { target: null, n: 64, seed: 0, solver: 'sde', solverSteps: 20 });
    expect(ev.npe).toBeNull();
    expect(Number.isFinite(ev.w2!)).toBe(true);
    await expect(getMethod('otcfm').sample(ck, { n: 5, seed: 0, solver: 'sde' })).rejects.toThrow(/needs a score network, which only sf2m trains/);
  });

  test('the flow network is trained exactly as sbcfm with the same exact pairs: its loss has no score term', async () => {
    // Adam is per parameter and the score loss does not depend on v, so the flow network of an
    // sf2m run is sbcfm's vector field with --ot exact (same pairs, draws and initial values).
    const opts = { sigma: 1, ot: 'exact' };
    const sf = await getMethod('sf2m').job.run(sf2mConfig({ steps: 8 }, opts));
    const sb = await getMethod('sbcfm').job.run(sf2mConfig({ method: 'sbcfm', steps: 8 }, opts));
    expect(Object.keys(sb.state.params).sort()).toEqual(Object.keys(sf.state.params).filter((k) => !k.startsWith('score.')).sort());
    for (const [k, p] of Object.entries(sb.state.params)) expect(sf.state.params[k]!.data, k).toEqual(p.data);
    expect(sf.metrics.w2).toBe(sb.metrics.w2);
    expect(sf.metrics.loss).toBeGreaterThan(sb.metrics.loss);
  });

  test('wgflow train --method sf2m --steps 50 --runtime node, then wgflow sample --solver sde', () => {
    const out = path.join(tmp, 'run');
    const env = { ...process.env };
    delete env.WGFLOW_JOBS;
    const train = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'wgflow.js'), 'train', '--method', 'sf2m', '--steps', '50', '--runtime', 'node', '--out', out, '--json', '--option', 'evalPoints=256', '--option', 'nllPoints=64', '--option', 'trajectoryPoints=32'], { cwd: ROOT, env, encoding: 'utf8', timeout: 240_000 });
    expect(train.status, train.stderr).toBe(0);
    const result = JSON.parse(train.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(result.method).toBe('sf2m');
    expect(Number.isFinite(result.w2)).toBe(true);
    const npy = path.join(tmp, 'sde.npy');
    const sample = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'wgflow.js'), 'sample', '--checkpoint', path.join(out, 'model.safetensors'), '--solver', 'sde', '--n', '300', '--out', npy, '--json'], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
    expect(sample.status, sample.stderr).toBe(0);
    expect(JSON.parse(sample.stdout.trim()).solver).toBe('sde');
    expect(readFileSync(npy).length).toBeGreaterThan(300 * 2 * 4);
  }, 300_000);
});
