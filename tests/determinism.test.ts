/**
 * Determinism (issue 12 item 8): the same seed on the same runtime and adapter gives bit-identical
 * results, for every method of the CLI. Each method trains twice, once reading the loss ring after
 * every step and once only at the end: the loss record is indexed by step, so when and how often it
 * is read (wall-clock progress windows) must not change a single number. Compared: metrics (all
 * but the timing), the per-step losses, parameters, Adam state, samples, target samples,
 * trajectories and density grid. Then once through the CLI for RealNVP, whose metrics.json `loss`
 * used to depend on wall-clock windows: metrics.json (minus times and --out) and the checkpoint bytes.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CFM_METHODS, FLOW_METHODS, type Method, type TrainConfig, type TrainOutcome } from '../train/contract';
import { getMethod } from '../cli/jobs';
import { gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-determinism-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function config(method: Method): TrainConfig {
  const cfm = (CFM_METHODS as readonly string[]).includes(method);
  return {
    method,
    source: cfm && method !== 'fm' ? 'gaussian' : null,
    target: 'moons',
    steps: 6,
    batch: 32,
    lr: 3e-3,
    seed: 11,
    options: cfm
      ? { hidden: '16,16', evalPoints: 64, trajectoryPoints: 8, trajectoryTimes: 3, nllPoints: 16, nllSteps: 4, solverSteps: 4 }
      : { layers: 2, ...(method === 'planar' || method === 'radial' ? {} : { hidden: [8] }), testSize: 128, grid: 4, w2: method === 'realnvp' },
  };
}

async function train(method: Method, progressIntervalMs: number): Promise<TrainOutcome> {
  const impl = getMethod(method);
  if (typeof impl === 'string') throw new Error(impl);
  return impl.job.run(config(method), { progressIntervalMs, onProgress: () => {} });
}

const bits = (a: ArrayLike<number> | undefined) => (a ? [...new Uint32Array(Float32Array.from(a).buffer)] : a);

describe('the same seed twice gives bit-identical results, however often the losses are read', () => {
  for (const method of [...CFM_METHODS, ...FLOW_METHODS]) {
    test(method, async () => {
      const a = await train(method, 0);
      const b = await train(method, 1e9);
      const { ms_per_step: _a, ...ma } = a.metrics;
      const { ms_per_step: _b, ...mb } = b.metrics;
      expect(ma).toEqual(mb);
      expect(Number.isFinite(a.metrics.loss)).toBe(true);
      expect(a.state.losses.map((l) => l.step)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(bits(a.state.losses.map((l) => l.loss))).toEqual(bits(b.state.losses.map((l) => l.loss)));
      for (const k of Object.keys(a.state.params)) expect(bits(a.state.params[k]!.data), k).toEqual(bits(b.state.params[k]!.data));
      expect(bits(a.state.adam.m)).toEqual(bits(b.state.adam.m));
      expect(bits(a.state.adam.v)).toEqual(bits(b.state.adam.v));
      expect(bits(a.samples.data)).toEqual(bits(b.samples.data));
      expect(bits(a.target.data)).toEqual(bits(b.target.data));
      expect(a.trajectories?.map(bits)).toEqual(b.trajectories?.map(bits));
      expect(bits(a.density?.values)).toEqual(bits(b.density?.values));
    });
  }
});

function wgflow(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve(__dirname, '..', 'bin', 'wgflow.js'), ...args], { env: { ...process.env, WGFLOW_JOBS: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

test('wgflow train --method realnvp twice: the same metrics.json (but times) and the same checkpoint bytes', async () => {
  const outs = [path.join(tmp, 'a'), path.join(tmp, 'b')];
  for (const out of outs) {
    const r = await wgflow(['train', '--method', 'realnvp', '--target', 'moons', '--steps', '40', '--batch', '64', '--seed', '2', '--runtime', 'node', '--option', 'layers=2', '--option', 'hidden=16', '--option', 'testSize=256', '--option', 'grid=8', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
  }
  const [a, b] = outs.map((o) => {
    const { wall_s: _w, started_at: _s, finished_at: _f, ms_per_step: _m, out: _o, ...rest } = JSON.parse(readFileSync(path.join(o, 'metrics.json'), 'utf8'));
    return rest;
  });
  expect(a!.losses.length).toBe(40);
  expect(a).toEqual(b);
  expect(readFileSync(path.join(outs[0]!, 'model.safetensors')).equals(readFileSync(path.join(outs[1]!, 'model.safetensors')))).toBe(true);
}, 300_000);
