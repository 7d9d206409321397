import { beforeAll, describe, expect, test } from 'vitest';
import type { TrainConfig, TrainState } from '../train/contract';
import { getBackend } from '../engine';
import { cfmEvaluate, cfmSample, evalCfm, sampleCfm } from '../cfm/train';
import { resolveConfig } from '../cfm/config';
import { cfmJob } from '../train/registry';
import { gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

const small = { evalPoints: 256, trajectoryPoints: 32, nllPoints: 64, nllSteps: 10 };

function cfg(over: Partial<TrainConfig> = {}, options: Record<string, unknown> = {}): TrainConfig {
  return { method: 'otcfm', source: '8gaussians', target: 'moons', steps: 12, batch: 64, lr: 1e-3, seed: 3, options: { ...small, ...options }, ...over };
}

describe('config resolution (SPEC §3 defaults)', () => {
  test('defaults per method', () => {
    const ot = resolveConfig(cfg());
    expect(ot).toMatchObject({ sigma: 0.1, coupling: 'exact', pairing: 'replacement', hidden: [64, 64, 64], activation: 'selu', solver: 'rk4', solverSteps: 100, reg: null });
    const sb = resolveConfig(cfg({ method: 'sbcfm', source: 'gaussian' }));
    expect(sb).toMatchObject({ sigma: 1, coupling: 'sinkhorn', reg: 2 });
    const sk = resolveConfig(cfg({}, { ot: 'sinkhorn' }));
    expect(sk).toMatchObject({ reg: 0.05, sinkhornMaxIter: 1000, sinkhornTol: 1e-3, sinkhornEpsScaling: 20, normalizeCost: false });
    const fm = resolveConfig(cfg({ method: 'fm', source: null }));
    expect(fm.source).toBeNull();
    expect(fm.nllPoints).toBe(64);
    expect(resolveConfig(cfg()).nllPoints).toBe(0); // 8gaussians source: no NLL
    expect(resolveConfig(cfg({}, { hidden: '32,16', activation: 'tanh', sigma: '0.2' }))).toMatchObject({ hidden: [32, 16], activation: 'tanh', sigma: 0.2 });
  });

  test('bad values are named', () => {
    expect(() => resolveConfig(cfg({}, { ot: 'emd' }))).toThrow(/option ot: "emd" is not one of exact, sinkhorn/);
    expect(() => resolveConfig(cfg({ method: 'icfm' }, { ot: 'exact' }))).toThrow(/independent pairs/);
    expect(() => resolveConfig(cfg({}, { pairing: 'x' }))).toThrow(/pairing/);
    expect(() => resolveConfig(cfg({}, { hidden: '0,5' }))).toThrow(/hidden/);
    expect(() => resolveConfig(cfg({}, { typo: 1 }))).toThrow(/unknown CFM option "typo"/);
    expect(() => resolveConfig(cfg({ target: 'nope' }))).toThrow(/unknown dataset "nope"/);
    expect(() => resolveConfig(cfg({ batch: 1 }))).toThrow(/batch/);
  });
});

describe('cfmJob', () => {
  test('trains, reports progress, checkpoints, evaluates', async () => {
    const progress: number[] = [];
    const checkpoints: TrainState[] = [];
    const b = getBackend();
    const out = await cfmJob.run(cfg({ source: 'gaussian' }), {
      progressIntervalMs: 0,
      onProgress: (p) => progress.push(p.loss),
      checkpointEvery: 5,
      onCheckpoint: (s) => void checkpoints.push(s),
    });
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every(Number.isFinite)).toBe(true);
    expect(checkpoints.map((c) => c.step)).toEqual([5, 10, 12]);
    expect(out.state.losses.length).toBe(12);
    expect(out.state.adam.t).toBe(12);
    expect(Object.keys(out.state.params)).toEqual(['l0.W', 'l0.b', 'l1.W', 'l1.b', 'l2.W', 'l2.b', 'l3.W', 'l3.b']);
    const m = out.metrics;
    expect(m.w2).toBeGreaterThan(0);
    expect(m.npe).toBeGreaterThanOrEqual(0);
    expect(Number.isFinite(m.nll!)).toBe(true); // gaussian source
    expect(m.dispatches_per_step).toBe(2);
    expect(m.ms_per_step).toBeGreaterThan(0);
    expect(out.samples.n).toBe(256);
    expect(out.trajectories!.length).toBe(9);
    expect(out.trajectories![0]!.length).toBe(64);
    expect(b.counters.bytesLive).toBeLessThan(64 * 1024 * 1024);
  });

  test('resume continues exactly where the run stopped', async () => {
    const full = await cfmJob.run(cfg({ steps: 10 }, { trajectoryPoints: 0 }));
    let mid: TrainState | null = null;
    await cfmJob.run(cfg({ steps: 10 }, { trajectoryPoints: 0 }), { checkpointEvery: 4, onCheckpoint: (s) => void (s.step === 4 ? (mid = s) : null) });
    expect(mid).not.toBeNull();
    const resumed = await cfmJob.run(cfg({ steps: 10 }, { trajectoryPoints: 0 }), {}, mid!);
    for (const name of Object.keys(full.state.params)) {
      expect([...resumed.state.params[name]!.data]).toEqual([...full.state.params[name]!.data]);
    }
    expect([...resumed.state.adam.m]).toEqual([...full.state.adam.m]);
    expect(resumed.state.losses.map((l) => l.step)).toEqual(full.state.losses.map((l) => l.step));
    expect(resumed.metrics.w2).toBe(full.metrics.w2);
  });

  for (const [method, source, options] of [
    ['icfm', '8gaussians', {}],
    ['fm', null, {}],
    ['sbcfm', 'gaussian', {}],
    ['vpcfm', 'gaussian', {}],
    ['otcfm', 'gaussian', { ot: 'sinkhorn', pairing: 'permutation' }],
    ['otcfm', 'gaussian', { pairing: 'permutation', step: 'tape' }],
  ] as const) {
    test(`${method} ${JSON.stringify(options)} trains a few steps`, async () => {
      const out = await cfmJob.run(cfg({ method, source, steps: 4 }, { ...options, evalPoints: 64, trajectoryPoints: 0, nllPoints: 0, solverSteps: 20 }));
      expect(Number.isFinite(out.metrics.loss), method).toBe(true);
      expect(Number.isFinite(out.metrics.w2!), method).toBe(true);
      expect(out.metrics.dispatches_per_step).toBe('step' in options ? out.metrics.dispatches_per_step : method === 'sbcfm' || 'ot' in options ? 4 : 2);
    });
  }

  test('abort stops with a checkpoint', async () => {
    const ctrl = new AbortController();
    const seen: number[] = [];
    const run = cfmJob.run(cfg({ steps: 500 }), {
      progressIntervalMs: 0,
      onProgress: (p) => {
        if (p.step >= 3) ctrl.abort(new Error('stop please'));
      },
      onCheckpoint: (s) => void seen.push(s.step),
      signal: ctrl.signal,
    });
    await expect(run).rejects.toThrow('stop please');
    expect(seen.length).toBe(1);
    expect(seen[0]).toBeLessThan(500);
  });
});

describe('sample and eval from a trained state', () => {
  test('sampleCfm, evalCfm and the checkpoint adapters', async () => {
    const out = await cfmJob.run(cfg({ source: 'gaussian', steps: 6 }, { trajectoryPoints: 0 }));
    const s = await sampleCfm(out.config, out.state.params, 100, 'rk4', 20, 1, 5);
    expect(s.samples.length).toBe(200);
    expect(s.nfe).toBe(80);
    expect(s.trajectories.length).toBe(5);
    const e1 = await sampleCfm(out.config, out.state.params, 50, 'euler', 10, 1);
    expect(e1.nfe).toBe(10);
    const dp = await sampleCfm(out.config, out.state.params, 50, 'dopri5', 0, 1);
    expect(dp.nfe).toBeGreaterThan(2);
    const ev = await evalCfm(out.config, out.state.params, 'moons', { n: 256 });
    expect(ev.w2).toBeGreaterThan(0);
    expect(Number.isFinite(ev.nll!)).toBe(true);
    const ev2 = await evalCfm(out.config, out.state.params, '8gaussians', { n: 256 });
    expect(ev2.w2).toBeGreaterThan(ev.w2);
    const ck = { config: out.config, params: out.state.params, step: out.state.step };
    const cs = await cfmSample(ck, { n: 30, seed: 2, solver: 'midpoint', solverSteps: 10 });
    expect(cs.samples.n).toBe(30);
    expect(cs.nfe).toBe(20);
    const ce = await cfmEvaluate(ck, { target: null, n: 128, seed: 0 });
    expect(ce.w2).toBeGreaterThan(0);
  });
});
