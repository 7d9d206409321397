/**
 * OT-CFM fidelity, stage by stage (issue 13 item 5): one training run's own batches (the trainer's
 * Philox streams: cfm/train.ts stepBatch, cfm/matchers.ts streamT / streamEps) replayed in float64
 * on the CPU and compared with what the GPU trainer computes, in the order of a torchcfm step
 * (Tong et al., TMLR 2024, Alg. 1; torchcfm 1.0.7 ExactOptimalTransportConditionalFlowMatcher):
 *
 *  1. the minibatch OT pairs: the exact assignment against an independent float64 Hungarian solver
 *     (shortest augmenting paths with potentials) on the same cost matrix, and the pairs drawn WITH
 *     replacement from the plan π = P_σ / B as torchcfm's OTPlanSampler does (i ~ U{0..B−1} i.i.d.,
 *     j = σ(i));
 *  2. x_t = t·x1 + (1−t)·x0 + σ·ε and u_t = x1 − x0;
 *  3. the loss mean‖v_θ(x_t, t) − u_t‖² / d (torch.mean over B × d) and its gradient, against a
 *     float64 forward/backward of the MLP (itself checked by central differences);
 *  4. the AdamW update as torch.optim.AdamW writes it (torch/optim/adamw.py, _single_tensor_adamw:
 *     p ← p·(1 − lr·wd) first, then m, v, then p ← p − (lr/bc1)·m / (√v/√bc2 + ε)), one step from the
 *     GPU's own gradient, and 20 steps in float64 end to end;
 *  5. the samplers (Euler-100 of the paper's table, RK4-100 of SPEC §5.1) against float64 ones.
 * Awkward batch sizes (37, a prime, not a multiple of the 8 samples per thread) and the paper's
 * batch-512 shape in miniature (256) are both run.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { getBackend, tensor } from '../engine';
import { Rng } from '../engine/philox';
import { adamStep } from '../engine/reference';
import { ACT } from '../kernels/activations';
import type { MlpLayout } from '../kernels/ode';
import { streamEps, streamT } from '../cfm/matchers';
import { mlpForwardF64, VectorField } from '../cfm/mlp';
import { odeSolve } from '../cfm/ode';
import { otPlanExact } from '../cfm/ot/assignment';
import { CfmStepper, fusedGradients, type StepperOptions } from '../cfm/step';
import { sourceSampler, stepBatch, stepStream, STREAM, targetSampler } from '../cfm/train';
import { resolveConfig, type CfmConfig } from '../cfm/config';
import { trainConfig } from '../train/options';
import { finiteDiff, gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

function config(batch: number, seed: number, weightDecay = 0, target = 'moons'): CfmConfig {
  return resolveConfig(trainConfig({ method: 'otcfm', source: 'gaussian', target, steps: 100, batch, lr: 1e-3, seed, options: { weightDecay } }));
}

/** Squared-Euclidean cost in float64 of float32 points. */
function costF64(x0: Float32Array, x1: Float32Array, n: number, d: number): Float64Array {
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += (x0[i * d + k]! - x1[j * d + k]!) ** 2;
    C[i * n + j] = s;
  }
  return C;
}

/** Hungarian algorithm (Kuhn–Munkres with potentials, O(n³)) in float64: row → column. */
function hungarian(C: Float64Array, n: number): Int32Array {
  const u = new Float64Array(n + 1), v = new Float64Array(n + 1);
  const p = new Int32Array(n + 1), way = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Float64Array(n + 1).fill(Infinity);
    const used = new Uint8Array(n + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0]!;
      let delta = Infinity, j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = C[(i0 - 1) * n + (j - 1)]! - u[i0]! - v[j]!;
        if (cur < minv[j]!) { minv[j] = cur; way[j] = j0; }
        if (minv[j]! < delta) { delta = minv[j]!; j1 = j; }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) { u[p[j]!]! += delta; v[j]! -= delta; } else minv[j]! -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do { const j1 = way[j0]!; p[j0] = p[j1]!; j0 = j1; } while (j0);
  }
  const rowToCol = new Int32Array(n);
  for (let j = 1; j <= n; j++) rowToCol[p[j]! - 1] = j - 1;
  return rowToCol;
}

/** The network input [x_t, t] and target u_t of step `draw` in float64 (OT-CFM, σ), from the paired batch. */
function matchedF64(xy: Float32Array, B: number, d: number, sigma: number, seed: number, draw: number) {
  const inputs: Float64Array[] = [], targets: Float64Array[] = [];
  for (let b = 0; b < B; b++) {
    const t = streamT(seed, draw, b);
    const a = new Float64Array(d + 1), u = new Float64Array(d);
    for (let k = 0; k < d; k++) {
      const x0 = xy[b * d + k]!, x1 = xy[(B + b) * d + k]!;
      a[k] = t * x1 + (1 - t) * x0 + sigma * streamEps(seed, draw, b, k);
      u[k] = x1 - x0;
    }
    a[d] = t;
    inputs.push(a);
    targets.push(u);
  }
  return { inputs, targets };
}

/** mean((v − u)²) over B × d and its gradient in the packed layout, float64 forward + backward. */
function lossGradF64(l: MlpLayout, p: ArrayLike<number>, inputs: Float64Array[], targets: Float64Array[], wantGrad = true): { loss: number; grad: Float64Array } {
  const nl = l.dims.length - 1;
  const d = l.dims[nl]!;
  const B = inputs.length;
  const f = ACT[l.activation];
  const grad = new Float64Array(p.length);
  let loss = 0;
  for (let b = 0; b < B; b++) {
    const hs: Float64Array[] = [inputs[b]!];
    const zs: Float64Array[] = [];
    for (let k = 0; k < nl; k++) {
      const nIn = l.dims[k]!, nOut = l.dims[k + 1]!, h = hs[k]!;
      const z = new Float64Array(nOut);
      for (let j = 0; j < nOut; j++) {
        let s = p[l.bOffsets[k]! + j]!;
        for (let i = 0; i < nIn; i++) s += h[i]! * p[l.wOffsets[k]! + i * nOut + j]!;
        z[j] = s;
      }
      zs.push(z);
      hs.push(k < nl - 1 ? z.map(f.f64) : z);
    }
    let gz = new Float64Array(d);
    for (let j = 0; j < d; j++) {
      const r = hs[nl]![j]! - targets[b]![j]!;
      loss += r * r;
      gz[j] = (2 * r) / (B * d);
    }
    if (!wantGrad) continue;
    for (let k = nl - 1; k >= 0; k--) {
      const nIn = l.dims[k]!, nOut = l.dims[k + 1]!, h = hs[k]!;
      const gh = new Float64Array(nIn);
      for (let j = 0; j < nOut; j++) grad[l.bOffsets[k]! + j]! += gz[j]!;
      for (let i = 0; i < nIn; i++) for (let j = 0; j < nOut; j++) {
        grad[l.wOffsets[k]! + i * nOut + j]! += h[i]! * gz[j]!;
        gh[i]! += p[l.wOffsets[k]! + i * nOut + j]! * gz[j]!;
      }
      if (k > 0) gz = gh.map((g, i) => g * f.df64(zs[k - 1]![i]!));
    }
  }
  return { loss: loss / (B * d), grad };
}

/** torch.optim.AdamW's step, transcribed from _single_tensor_adamw (torch 1.13 / 2.x), float64. */
function torchAdamW(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, step: number, lr: number, wd: number, beta1 = 0.9, beta2 = 0.999, eps = 1e-8): void {
  for (let i = 0; i < p.length; i++) {
    p[i] = p[i]! * (1 - lr * wd); // param.mul_(1 - lr * weight_decay)
    m[i] = m[i]! + (g[i]! - m[i]!) * (1 - beta1); // exp_avg.lerp_(grad, 1 - beta1)
    v[i] = v[i]! * beta2 + (1 - beta2) * g[i]! * g[i]!; // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    const bc1 = 1 - beta1 ** step, bc2 = 1 - beta2 ** step;
    const denom = Math.sqrt(v[i]!) / Math.sqrt(bc2) + eps; // (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    p[i] = p[i]! - (lr / bc1) * (m[i]! / denom); // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Math.sqrt(num / den);
};

describe('OT-CFM stage by stage against float64 (the trainer\'s own draws)', () => {
  for (const [B, target] of [[37, 'moons'], [256, 'moons'], [512, 'paper-moons']] as const) {
    test(`batch ${B}, N → ${target}: exact OT pairs = an independent float64 assignment, drawn with replacement as torchcfm`, () => {
      const c = config(B, 3, 0, target);
      const src = sourceSampler(c), tgt = targetSampler(c);
      for (const step of [0, 7]) {
        const xy = stepBatch(c, step, src, tgt);
        const x0 = src.sample(B, new Rng(c.seed, stepStream(step, 0)));
        const x1 = tgt.sample(B, new Rng(c.seed, stepStream(step, 1)));
        const C = costF64(x0, x1, B, 2);
        const ref = hungarian(C, B);
        const perm = otPlanExact(x0, x1, B, 2);
        let costRef = 0, cost = 0;
        for (let i = 0; i < B; i++) { costRef += C[i * B + ref[i]!]!; cost += C[i * B + perm[i]!]!; }
        expect(Math.abs(cost - costRef) / costRef, `plan cost ${cost} vs float64 optimum ${costRef}`).toBeLessThan(1e-9);
        expect([...perm]).toEqual([...ref]);
        // The batch: rows i_b ~ U{0..B−1} from the pairing stream, x1 row σ(i_b) (np.random.choice over π).
        const rng = new Rng(c.seed, stepStream(step, 2));
        const seen = new Set<number>();
        for (let b = 0; b < B; b++) {
          const i = rng.int(B);
          seen.add(i);
          for (let k = 0; k < 2; k++) {
            expect(xy[b * 2 + k]).toBe(x0[i * 2 + k]);
            expect(xy[(B + b) * 2 + k]).toBe(x1[ref[i]! * 2 + k]);
          }
        }
        if (B >= 256) expect(seen.size).toBeLessThan(B); // with replacement: some rows repeat
      }
    });
  }

  for (const B of [37, 256]) {

    test(`batch ${B}: x_t, u_t, the loss and its gradient of the fused step = float64`, async () => {
      const c = config(B, 5);
      const src = sourceSampler(c), tgt = targetSampler(c);
      const vf = new VectorField({ dim: 2, hidden: c.hidden, activation: c.activation }, new Rng(c.seed, STREAM.init));
      const opts: StepperOptions = { method: 'otcfm', sigma: c.sigma, batch: B, seed: c.seed, adam: { lr: c.lr } };
      const step = 4;
      const xy = stepBatch(c, step, src, tgt);
      const { inputs, targets } = matchedF64(xy, B, 2, c.sigma, c.seed, step);
      // x_t and u_t as the GPU forms them (the matcher kernel of the tape path, same WGSL as the fused step).
      const st = new CfmStepper(vf, { ...opts, mode: 'tape' });
      getBackend().write(st.xy.buffer, xy);
      const m = st.matched(null, step);
      const inp = await m.input.data(), tg = await m.target.data();
      for (let b = 0; b < B; b++) {
        // t bit for bit; ε up to the GPU's float32 log/cos (≤ 1e-3 relative, tests/cfm-step.test.ts), times σ.
        expect(inp[b * 3 + 2]).toBe(Math.fround(inputs[b]![2]!));
        for (let k = 0; k < 2; k++) {
          const epsTol = c.sigma * 1e-3 * (1 + Math.abs(streamEps(c.seed, step, b, k)));
          expect(Math.abs(inp[b * 3 + k]! - inputs[b]![k]!), `x_t row ${b} col ${k}`).toBeLessThan(3e-6 * (1 + Math.abs(inputs[b]![k]!)) + epsTol);
        }
        for (let k = 0; k < 2; k++) expect(Math.abs(tg[b * 2 + k]! - targets[b]![k]!)).toBeLessThan(1e-6 * (1 + Math.abs(targets[b]![k]!)));
      }
      m.input.dispose();
      m.target.dispose();
      st.dispose();
      const p = Float64Array.from(await vf.params.flat.data());
      const ref = lossGradF64(vf.layout, p, inputs, targets);
      // The float64 gradient is the loss's derivative: central differences on a spread of parameters.
      const coords = Array.from({ length: 24 }, (_, q) => Math.floor((q * p.length) / 24) + (q % 5));
      const fd = finiteDiff((x) => lossGradF64(vf.layout, x, inputs, targets, false).loss, p, coords);
      for (const i of coords) expect(Math.abs(fd[i]! - ref.grad[i]!), `central difference, parameter ${i}`).toBeLessThan(1e-6 + 1e-5 * Math.abs(ref.grad[i]!));
      const fused = await fusedGradients(vf, opts, xy, step);
      expect(Math.abs(fused.loss - ref.loss) / ref.loss).toBeLessThan(2e-6);
      let gmax = 0;
      for (const g of ref.grad) gmax = Math.max(gmax, Math.abs(g));
      for (let i = 0; i < p.length; i++) expect(Math.abs(fused.grad[i]! - ref.grad[i]!), `gradient ${i}`).toBeLessThan(2e-6 * gmax + 1e-4 * Math.abs(ref.grad[i]!));
      expect(relErr(fused.grad, ref.grad)).toBeLessThan(1e-5);
      vf.dispose();
    });
  }

  test('AdamW (lr 1e-3, wd 1e-5 and 0.1) = torch.optim.AdamW: one step from the GPU\'s gradient, 20 steps end to end', async () => {
    for (const wd of [1e-5, 0.1]) {
      const B = 37;
      const c = config(B, 2, wd);
      const src = sourceSampler(c), tgt = targetSampler(c);
      const vf = new VectorField({ dim: 2, hidden: c.hidden, activation: c.activation }, new Rng(c.seed, STREAM.init));
      const opts: StepperOptions = { method: 'otcfm', sigma: c.sigma, batch: B, seed: c.seed, adam: { lr: c.lr, weightDecay: wd } };
      const st = new CfmStepper(vf, opts);
      const p64 = Float64Array.from(await vf.params.flat.data());
      const m64 = new Float64Array(p64.length), v64 = new Float64Array(p64.length);
      const chain = { p: p64.slice(), m: m64.slice(), v: v64.slice() };
      const p0 = p64.slice();
      for (let s = 0; s < 20; s++) {
        const xy = stepBatch(c, s, src, tgt);
        if (s < 3) {
          // The optimiser alone: the GPU step's own gradient through torch's AdamW in float64.
          const pg = Float64Array.from(await vf.params.flat.data());
          const g = (await fusedGradients(vf, opts, xy, s)).grad;
          const mm = Float64Array.from((await st.adamState()).m), vv = Float64Array.from((await st.adamState()).v);
          const pe = pg.slice(), me = mm.slice(), ve = vv.slice();
          torchAdamW(pe, g, me, ve, s + 1, c.lr, wd);
          // engine/reference.ts adamStep is the same update.
          const pr = pg.slice(), mr = mm.slice(), vr = vv.slice();
          adamStep(pr, g, mr, vr, s + 1, { lr: c.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: wd });
          for (let i = 0; i < pe.length; i++) expect(Math.abs(pr[i]! - pe[i]!)).toBeLessThan(1e-15 + 1e-12 * Math.abs(pe[i]!));
          st.step(xy, s);
          const after = await vf.params.flat.data();
          const state = await st.adamState();
          for (let i = 0; i < pe.length; i++) {
            expect(Math.abs(after[i]! - pe[i]!), `step ${s} parameter ${i}`).toBeLessThan(2e-8 + 4e-7 * Math.abs(pe[i]!));
            expect(Math.abs(state.m[i]! - me[i]!), `step ${s} first moment ${i}`).toBeLessThan(1e-6 * (0.9 * Math.abs(mm[i]!) + 0.1 * Math.abs(g[i]!)) + 1e-15); // float32 rounding of both terms
            expect(Math.abs(state.v[i]! - ve[i]!), `step ${s} second moment ${i}`).toBeLessThan(1e-6 * Math.abs(ve[i]!) + 1e-18);
          }
        } else st.step(xy, s);
        // The whole chain in float64: draws, float64 gradient, torch's AdamW.
        const { inputs, targets } = matchedF64(xy, B, 2, c.sigma, c.seed, s);
        torchAdamW(chain.p, lossGradF64(vf.layout, chain.p, inputs, targets).grad, chain.m, chain.v, s + 1, c.lr, wd);
      }
      const gpuP = await vf.params.flat.data();
      const dGpu = gpuP.map((x, i) => x - p0[i]!), dRef = chain.p.map((x, i) => x - p0[i]!);
      // Adam moves every parameter by ~lr a step; a float32 gradient flips the sign of a few
      // near-zero ones early on, so the 20-step displacement agrees to ~1 %, not to float32.
      expect(relErr(dGpu, dRef), `wd ${wd}: 20-step displacement vs float64`).toBeLessThan(0.02);
      st.dispose();
      vf.dispose();
    }
  });

  for (const solver of ['euler', 'rk4'] as const) {
    test(`${solver}-100 sampler = float64 ${solver} on n = 61 points`, async () => {
      const vf = new VectorField({ dim: 2, hidden: [64, 64, 64], activation: 'selu' }, new Rng(11));
      const n = 61;
      const x0 = sourceSampler({ source: 'gaussian', dim: 2 }).sample(n, new Rng(1, STREAM.evalSource));
      const t0 = tensor(x0, [n, 2]);
      const sol = await odeSolve(vf, t0, { solver, steps: 100 });
      const got = await sol.x.data();
      const p = await vf.params.flat.data();
      const f = (x: Float64Array, t: number) => mlpForwardF64(vf.layout, p, x, t);
      const h = 1 / 100;
      for (let r = 0; r < n; r++) {
        let x = Float64Array.from(x0.subarray(2 * r, 2 * r + 2));
        for (let k = 0; k < 100; k++) {
          const t = k * h;
          if (solver === 'euler') {
            const v = f(x, t);
            x = x.map((xi, i) => xi + h * v[i]!);
          } else {
            const k1 = f(x, t);
            const k2 = f(x.map((xi, i) => xi + (h / 2) * k1[i]!), t + h / 2);
            const k3 = f(x.map((xi, i) => xi + (h / 2) * k2[i]!), t + h / 2);
            const k4 = f(x.map((xi, i) => xi + h * k3[i]!), t + h);
            x = x.map((xi, i) => xi + (h / 6) * (k1[i]! + 2 * k2[i]! + 2 * k3[i]! + k4[i]!));
          }
        }
        for (let k = 0; k < 2; k++) expect(Math.abs(got[2 * r + k]! - x[k]!), `point ${r} coord ${k}`).toBeLessThan(2e-5 * (1 + Math.abs(x[k]!)));
      }
      // A sampler that is off by one step fails this: the field moves points by ~|v|·h per step.
      let moved = 0;
      for (let i = 0; i < 2 * n; i++) moved = Math.max(moved, Math.abs(got[i]! - x0[i]!));
      expect(moved).toBeGreaterThan(1e-2);
      sol.x.dispose();
      t0.dispose();
      vf.dispose();
    });
  }
});
