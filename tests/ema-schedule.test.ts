/**
 * The moving average of the weights (option `ema`, engine/optim.ts): Adam's kernels keep
 * e ← δ_t·e + (1 − δ_t)·p in their own dispatch, δ_t = min(δ, (1+t)/(10+t)); checked against a
 * float64 reference on awkward sizes, fused against tape, through a resume, in the checkpoint, and
 * as the weights that evaluation, sampling and export use. And the CFM learning-rate schedule
 * (option `schedule`): each step's lr reaches Adam as that step's uniform.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import * as E from '../engine';
import { Rng } from '../engine/philox';
import { adamStep } from '../engine/reference';
import { VectorField } from '../cfm/mlp';
import { CfmStepper } from '../cfm/step';
import { evalCfm, sampleCfm } from '../cfm/train';
import { cfmJob } from '../train/registry';
import { modelWeights, type TrainConfig, type TrainState } from '../train/contract';
import { decodeCheckpoint, encodeCheckpoint, NonFiniteCheckpointError } from '../train/checkpoint';
import { checkResumableState } from '../cli/stored-config';
import { decodeSafetensors } from '../io/safetensors';
import { parseNpy } from '../datasets/files';
import { expectClose, gpu, runWgflow } from './helpers';

let b: Awaited<ReturnType<typeof gpu>>;
beforeAll(async () => {
  b = await gpu();
});

const cfg = (over: Partial<TrainConfig> = {}, options: Record<string, unknown> = {}): TrainConfig => ({
  method: 'icfm', source: 'gaussian', target: 'moons', steps: 10, batch: 64, lr: 1e-2, seed: 3,
  options: { hidden: '16,16', trajectoryPoints: 0, evalPoints: 256, nllPoints: 0, solverSteps: 10, ...options }, ...over,
});

describe('Adam keeps the moving average of the weights', () => {
  for (const decay of [0.3, 0.99]) {
    test(`δ = ${decay}: 12 steps over parameters of 1, 7 and 3×5 values match the float64 reference, in Adam's one dispatch`, async () => {
      const rng = new Rng(21);
      const shapes = [[1], [7], [3, 5]];
      const specs = shapes.map((s, i) => ({ name: `p${i}`, shape: s, init: Float32Array.from({ length: s.reduce((a, c) => a * c, 1) }, () => rng.uniformIn(-1, 1)) }));
      const size = 23;
      const ps = new E.ParamSet(specs);
      const opts = { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
      const opt = new E.Adam(ps, { ...opts, emaDecay: decay });
      const p = Float64Array.from(specs.flatMap((s) => Array.from(s.init)));
      const e = Float64Array.from(p);
      const m = new Float64Array(size);
      const v = new Float64Array(size);
      for (let t = 1; t <= 12; t++) {
        const g = Float32Array.from({ length: size }, () => rng.normal());
        let off = 0;
        const gts = specs.map((s) => {
          const x = E.tensor(g.subarray(off, off + s.init.length), s.shape);
          off += s.init.length;
          return x;
        });
        b.flush();
        const before = b.counters.dispatches;
        opt.step(gts);
        // pack + update: the average costs no dispatch of its own
        expect(b.counters.dispatches - before).toBe(2);
        gts.forEach((x) => x.dispose());
        adamStep(p, g, m, v, t, opts);
        const dt = Math.min(decay, (1 + t) / (10 + t));
        expect(E.emaDecayAt(decay, t)).toBe(dt);
        for (let i = 0; i < size; i++) e[i] = dt * e[i]! + (1 - dt) * p[i]!;
      }
      expectClose(await ps.flat.data(), p, { atol: 2e-6, rtol: 1e-5 }, 'parameters');
      const avg = await opt.average();
      expectClose(avg!, e, { atol: 3e-6, rtol: 1e-5 }, 'moving average');
      // the average is not the parameters (else the test could not tell them apart)
      expect(Math.max(...Array.from(e, (x, i) => Math.abs(x - p[i]!)))).toBeGreaterThan(1e-3);
      const st = await opt.state();
      expect(Array.from(st.ema!)).toEqual(Array.from(avg!));
      // a state without the average is refused by an optimizer that keeps one
      const opt2 = new E.Adam(ps, { ...opts, emaDecay: decay });
      expect(() => opt2.loadState({ t: st.t, m: st.m, v: st.v })).toThrow(/keeps a moving average .* the state has none/);
      opt2.loadState(st);
      expect(Array.from((await opt2.average())!)).toEqual(Array.from(avg!));
      opt2.dispose();
      opt.dispose();
      ps.dispose();
    });
  }

  test('no average unless asked: δ = 0 keeps none; δ outside [0, 1) is refused', async () => {
    const ps = new E.ParamSet([{ name: 'a', shape: [3], init: [1, 2, 3] }]);
    const opt = new E.Adam(ps, { lr: 0.1 });
    expect(await opt.average()).toBeNull();
    expect((await opt.state()).ema).toBeUndefined();
    expect(() => new E.Adam(ps, { emaDecay: 1 })).toThrow(/emaDecay = 1 is out of range/);
    expect(() => new E.Adam(ps, { emaDecay: -0.1 })).toThrow(/emaDecay/);
    opt.dispose();
    ps.dispose();
  });

  test('the fused CFM step keeps the same average as the tape step (one dispatch pair, as without it)', async () => {
    const B = 37, d = 3;
    const avgs: Float32Array[] = [];
    for (const mode of ['fused', 'tape'] as const) {
      const vf = new VectorField({ dim: d, hidden: [13, 13], activation: 'selu' }, new Rng(7));
      const st = new CfmStepper(vf, { method: 'icfm', sigma: 0.1, batch: B, seed: 5, mode, adam: { lr: 1e-2, emaDecay: 0.9 } });
      const rng = new Rng(9);
      for (let s = 0; s < 8; s++) {
        const before = b.counters.dispatches;
        st.step(Float32Array.from({ length: 2 * B * d }, () => rng.normal()), s);
        if (mode === 'fused') expect(b.counters.dispatches - before).toBe(2);
      }
      const named = (await st.averagedWeights())!;
      expect(Object.keys(named)).toEqual(vf.params.names);
      avgs.push(Float32Array.from(Object.values(named).flatMap((p) => Array.from(p.data))));
      const raw = await vf.params.flat.data();
      expect(Math.max(...Array.from(raw, (x, i) => Math.abs(x - avgs[avgs.length - 1]![i]!)))).toBeGreaterThan(1e-3);
      st.dispose();
      vf.dispose();
    }
    expectClose(avgs[0]!, avgs[1]!, { atol: 2e-4, rtol: 1e-4 }, 'fused vs tape average');
  });
});

describe('the CFM learning-rate schedule', () => {
  test('cosine: lr at step 0, lr/2 half way, 0 at the end; constant: lr', () => {
    expect(E.learningRate('cosine', 0.1, 0, 10)).toBe(0.1);
    expect(E.learningRate('cosine', 0.1, 5, 10)).toBeCloseTo(0.05, 15);
    expect(E.learningRate('cosine', 0.1, 10, 10)).toBeCloseTo(0, 15);
    expect(E.learningRate('constant', 0.1, 7, 10)).toBe(0.1);
  });

  for (const mode of ['fused', 'tape'] as const) {
    test(`${mode} step: a step at lr = x moves the weights as an optimizer configured with x does`, async () => {
      const B = 19, d = 2;
      const rng = new Rng(4);
      const xy = Float32Array.from({ length: 2 * B * d }, () => rng.normal());
      const out: Float32Array[] = [];
      for (const [cfgLr, stepLr] of [[0.01, 0.003], [0.003, undefined]] as const) {
        const vf = new VectorField({ dim: d, hidden: [11, 11], activation: 'selu' }, new Rng(7));
        const st = new CfmStepper(vf, { method: 'icfm', sigma: 0.1, batch: B, seed: 5, mode, adam: { lr: cfgLr } });
        st.step(xy, 0, stepLr);
        st.step(xy, 1, stepLr);
        out.push(await vf.params.flat.data());
        st.dispose();
        vf.dispose();
      }
      expect(Array.from(out[0]!)).toEqual(Array.from(out[1]!));
    });
  }
});

describe('a CFM run with options ema and schedule', () => {
  test('resolves, trains, resumes exactly (average included) and is judged with the average', async () => {
    await expect(cfmJob.run(cfg({}, { ema: 1 }))).rejects.toThrow(/option ema: 1 is not a decay in \[0, 1\)/);
    await expect(cfmJob.run(cfg({}, { schedule: 'linear' }))).rejects.toThrow(/option schedule: "linear" is not one of cosine, constant/);
    const c = cfg({}, { ema: 0.8, schedule: 'cosine' });
    const constant = await cfmJob.run(cfg({}, { ema: 0.8 }));
    const full = await cfmJob.run(c);
    expect(full.config.ema).toBe(0.8);
    expect(full.config.schedule).toBe('cosine');
    // the schedule changes the weights (same batches, smaller steps)
    expect(Array.from(full.state.params['l0.b']!.data)).not.toEqual(Array.from(constant.state.params['l0.b']!.data));
    expect(full.state.adam.ema!.length).toBe(full.state.adam.m.length);
    let mid: TrainState | null = null;
    await cfmJob.run(c, { checkpointEvery: 4, onCheckpoint: (s: TrainState) => void (s.step === 4 ? (mid = s) : null) });
    expect(mid!.adam.ema).toBeDefined();
    // through the file format, as --resume reads it
    const back = decodeCheckpoint(encodeCheckpoint({ config: full.config, trainConfig: {}, state: mid! })).state;
    const resumed = await cfmJob.run(c, {}, back);
    expect(Array.from(resumed.state.adam.ema!)).toEqual(Array.from(full.state.adam.ema!));
    for (const name of Object.keys(full.state.params)) expect(Array.from(resumed.state.params[name]!.data)).toEqual(Array.from(full.state.params[name]!.data));
    // the run's own metrics are the average's: evaluating the average on the run's streams gives them
    const avg = modelWeights(full.state);
    expect(Object.keys(avg)).toEqual(Object.keys(full.state.params));
    const evAvg = await evalCfm(full.config, avg, null, { seed: c.seed });
    const evRaw = await evalCfm(full.config, full.state.params, null, { seed: c.seed });
    expect(evAvg.w2).toBeCloseTo(full.metrics.w2!, 5);
    expect(evRaw.w2).not.toBeCloseTo(full.metrics.w2!, 5);
    // and a run without the option stores none
    const plain = await cfmJob.run(cfg());
    expect(plain.state.adam.ema).toBeUndefined();
    expect('ema' in plain.config || 'schedule' in plain.config).toBe(false);
    expect(modelWeights(plain.state)).toBe(plain.state.params);
  });

  test('the checkpoint: "optimizer.ema" round-trips, a non-finite one is refused, the name is reserved, --resume checks it', () => {
    const params = { w: { data: Float32Array.from([1, 2, 3]), shape: [3] }, b: { data: Float32Array.from([4]), shape: [1] } };
    const adam = { t: 2, m: new Float32Array(4), v: new Float32Array(4), ema: Float32Array.from([0.5, 1.5, 2.5, 3.5]) };
    const state: TrainState = { step: 2, params, adam, extra: {}, losses: [] };
    const d = decodeCheckpoint(encodeCheckpoint({ config: { ema: 0.9 }, trainConfig: {}, state }));
    expect(Array.from(d.state.adam.ema!)).toEqual([0.5, 1.5, 2.5, 3.5]);
    expect(Object.keys(d.state.params)).toEqual(['w', 'b']);
    const w = modelWeights(d.state);
    expect(Array.from(w.w!.data)).toEqual([0.5, 1.5, 2.5]);
    expect(Array.from(w.b!.data)).toEqual([3.5]);
    expect(() => modelWeights({ params, adam: { ...adam, ema: new Float32Array(3) } })).toThrow(/3 values for 4 parameters/);
    expect(() => encodeCheckpoint({ config: {}, trainConfig: {}, state: { ...state, adam: { ...adam, ema: Float32Array.from([0, NaN, 0, 0]) } } })).toThrow(NonFiniteCheckpointError);
    expect(() => encodeCheckpoint({ config: {}, trainConfig: {}, state: { ...state, params: { 'optimizer.ema': params.w } } })).toThrow(/reserved/);
    checkResumableState(d.state, { ema: 0.9 });
    expect(() => checkResumableState({ ...state, adam: { t: 2, m: adam.m, v: adam.v } }, { ema: 0.9 })).toThrow(/ema 0.9\) but tensor "optimizer.ema" is missing/);
    expect(() => checkResumableState({ ...state, adam: { ...adam, ema: new Float32Array(2) } }, { ema: 0.9 })).toThrow(/"optimizer.ema" has 2 values, the parameters 4/);
  });

  test('wgflow sample and export use the average', async () => {
    const run = runWgflow;
    const c = cfg({ steps: 8 }, { ema: 0.7, hidden: '16,16,16' });
    const out = await cfmJob.run(c);
    const dir = mkdtempSync(path.join(tmpdir(), 'wgflow-ema-'));
    try {
      const ckpt = path.join(dir, 'model.safetensors');
      writeFileSync(ckpt, encodeCheckpoint({ config: out.config, trainConfig: { ...c, data_file: null }, state: out.state }));
      const smp = await run(['sample', '--checkpoint', ckpt, '--n', '16', '--runtime', 'node', '--solver', 'euler', '--solver-steps', '4', '--seed', '5', '--out', path.join(dir, 's.npy')]);
      expect(smp.code, smp.stderr).toBe(0);
      const got = parseNpy(readFileSync(path.join(dir, 's.npy'))).data;
      const avg = await sampleCfm(out.config, modelWeights(out.state), 16, 'euler', 4, 5);
      const raw = await sampleCfm(out.config, out.state.params, 16, 'euler', 4, 5);
      expectClose(got, avg.samples, { atol: 1e-5, rtol: 1e-5 }, 'CLI samples vs the average');
      expect(Math.max(...Array.from(got, (x, i) => Math.abs(x - raw.samples[i]!)))).toBeGreaterThan(1e-4);
      const exp = await run(['export', '--checkpoint', ckpt, '--format', 'torch', '--out', path.join(dir, 't.safetensors')]);
      expect(exp.code, exp.stderr).toBe(0);
      const t = decodeSafetensors(readFileSync(path.join(dir, 't.safetensors')));
      expect(t.metadata.weights).toBe('moving average, decay 0.7');
      const w = modelWeights(out.state);
      // torchcfm's first Linear is net.0: the average's first layer, not the raw one
      expect(Array.from(t.tensors['net.0.bias']!.data)).toEqual(Array.from(w['l0.b']!.data));
      expect(Array.from(t.tensors['net.0.bias']!.data)).not.toEqual(Array.from(out.state.params['l0.b']!.data));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
