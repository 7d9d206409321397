/**
 * The non-finite guard (engine/loss-ring.ts, kernels/guard.ts) in every trainer: CFM's fused and
 * tape steps and the flows. A NaN/Inf loss or parameter raises a flag on the GPU inside the step;
 * the trainer finds it with the loss ring it reads anyway and stops with a NonFiniteError naming
 * the first bad step (1-based, as the loss record counts), never handing a non-finite state to
 * onCheckpoint. The checkpoint writer refuses one anyway, and leaves the file on disk as it was.
 *
 * Last, the reproduction through the CLI (otcfm --lr 1e6), in Node and in Chromium: exit 1
 * naming the step and --lr, no stack, the step-1 checkpoint kept, metrics.json with the failure.
 *
 * Divergence is made deterministic: one data row of 1e20 (its first draw gives an infinite loss,
 * found from the trainer's own per-step batch streams), or a resumed state with a NaN in Adam's v
 * (the loss stays finite; the update makes a parameter NaN: the parameter check must see it).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CHROMIUM_CANDIDATES } from '../browser/chromium';
import { encodeCheckpoint, NonFiniteCheckpointError, readCheckpoint, writeCheckpoint } from '../train/checkpoint';
import type { DataMatrix, TrainConfig, TrainState } from '../train/contract';
import { cfmJob, flowJob } from '../train/registry';
import { sourceSampler, stepBatch, targetSampler } from '../cfm/train';
import { resolveConfig } from '../cfm/config';
import { getBackend, LOSS_SLOTS, NonFiniteError } from '../engine';
import { Rng } from '../engine/philox';
import { gpu } from './helpers';

const dir = mkdtempSync(path.join(tmpdir(), 'wgflow-nonfinite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  await gpu();
});

const N_ROWS = 400;
const small = { hidden: '16,16', evalPoints: 32, trajectoryPoints: 0, nllPoints: 0, solverSteps: 4 };

function cfmCfg(data: DataMatrix, over: Partial<TrainConfig> = {}, options: Record<string, unknown> = {}): TrainConfig {
  return { method: 'icfm', source: 'gaussian', target: null, data, steps: 40, batch: 16, lr: 1e-3, seed: 7, options: { ...small, ...options }, ...over };
}

function gaussianRows(n: number, seed: number): Float32Array {
  const rng = new Rng(seed, 99);
  return Float32Array.from({ length: n * 2 }, () => rng.normal());
}

/**
 * The data with one row set to 1e20, chosen so that the first step drawing it lies in [lo, hi]
 * (0-based); the steps are read off the trainer's own batch streams with row numbers as data.
 */
function poisoned(c: (d: DataMatrix) => TrainConfig, lo: number, hi: number): { data: DataMatrix; firstBad: number } {
  const ids: DataMatrix = { data: Float32Array.from({ length: N_ROWS * 2 }, (_, i) => (i % 2 === 0 ? i / 2 : 0)), n: N_ROWS, dim: 2 };
  const rc = resolveConfig(c(ids));
  const src = sourceSampler(rc);
  const tgt = targetSampler(rc, ids);
  const first = new Map<number, number>();
  for (let s = 0; s <= hi; s++) {
    const xy = stepBatch(rc, s, src, tgt);
    for (let b = 0; b < rc.batch; b++) {
      const row = xy[(rc.batch + b) * 2]!;
      if (!first.has(row)) first.set(row, s);
    }
  }
  const pick = [...first.entries()].find(([, s]) => s >= lo && s <= hi);
  if (!pick) throw new Error('no row is first drawn in the window; change the seed');
  const data = gaussianRows(N_ROWS, 1);
  data[pick[0] * 2] = 1e20;
  return { data: { data, n: N_ROWS, dim: 2 }, firstBad: pick[1] };
}

const allFinite = (s: TrainState) => Object.values(s.params).every((p) => p.data.every(Number.isFinite));

async function failure(run: Promise<unknown>): Promise<NonFiniteError> {
  const e = await run.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, 'the run must fail').toBeInstanceOf(NonFiniteError);
  return e as NonFiniteError;
}

describe('CFM: an infinite loss stops the run at its step, before any checkpoint of it', () => {
  for (const step of ['fused', 'tape'] as const) {
    test(`${step} step`, async () => {
      const { data, firstBad } = poisoned((d) => cfmCfg(d, {}, { step }), 8, 30);
      const checkpoints: TrainState[] = [];
      // Reads only at checkpoints (every 5 steps): the guard still names the exact first step.
      const e = await failure(cfmJob.run(cfmCfg(data, {}, { step }), { progressIntervalMs: 1e9, checkpointEvery: 5, onCheckpoint: (s) => void checkpoints.push(s) }));
      expect(e.step).toBe(firstBad + 1);
      expect(e.message).toMatch(new RegExp(`diverged at step ${firstBad + 1}: the loss is (Infinity|NaN).*lower --lr`));
      expect(checkpoints.length).toBe(Math.floor(firstBad / 5));
      expect(checkpoints.every(allFinite)).toBe(true);
      expect(checkpoints.every((c) => c.step <= firstBad)).toBe(true);
      expect(e.losses.map((l) => l.step)).toEqual(Array.from({ length: firstBad + 1 }, (_, i) => i + 1));
      expect(e.losses.slice(0, -1).every((l) => Number.isFinite(l.loss))).toBe(true);
      expect(Number.isFinite(e.losses.at(-1)!.loss)).toBe(false);
    });
  }

  test(`without checkpoints or progress reads, the run stops at the forced ring read (≤ ${LOSS_SLOTS / 2} steps after)`, async () => {
    const { data, firstBad } = poisoned((d) => cfmCfg(d, { batch: 8 }, { hidden: '4' }), 2, 6);
    const b = getBackend();
    const d0 = b.counters.dispatches;
    const e = await failure(cfmJob.run(cfmCfg(data, { batch: 8, steps: 100_000 }, { hidden: '4' }), { progressIntervalMs: 1e9 }));
    expect(e.step).toBe(firstBad + 1);
    const stepsRun = (b.counters.dispatches - d0) / 2; // the fused step: 2 dispatches (+ a few at set-up)
    expect(stepsRun - (firstBad + 1)).toBeLessThanOrEqual(LOSS_SLOTS / 2);
  });

  for (const step of ['fused', 'tape'] as const) {
    test(`${step} step: a parameter made NaN by the update (finite loss) is caught at that step`, async () => {
      const data: DataMatrix = { data: gaussianRows(N_ROWS, 2), n: N_ROWS, dim: 2 };
      let mid: TrainState | null = null;
      await cfmJob.run(cfmCfg(data, { steps: 3 }, { step }), { checkpointEvery: 2, onCheckpoint: (s) => void (s.step === 2 ? (mid = s) : null) });
      const bad = structuredClone(mid!);
      bad.adam.v[0] = NaN;
      const checkpoints: TrainState[] = [];
      // The bad update is the last step: without the parameter check the run would end "fine".
      const e = await failure(cfmJob.run(cfmCfg(data, { steps: 3 }, { step }), { checkpointEvery: 1, onCheckpoint: (s) => void checkpoints.push(s) }, bad));
      expect(e.step).toBe(3);
      expect(e.message).toMatch(/step 3: a parameter became NaN or infinite/);
      expect(checkpoints).toEqual([]);
      expect(e.losses.at(-1)).toMatchObject({ step: 3 });
      expect(Number.isFinite(e.losses.at(-1)!.loss)).toBe(true);
    });
  }
});

describe('flows: the same guard', () => {
  const flowCfg = (over: Partial<TrainConfig> = {}): TrainConfig => ({ method: 'realnvp', source: null, target: 'moons', steps: 30, batch: 32, lr: 1e-3, seed: 0, options: { layers: 2, hidden: [8], testSize: 64, grid: 4, w2: false }, ...over });

  test('lr 1e6: stops at the first bad step with the step named, nothing non-finite checkpointed', async () => {
    const checkpoints: TrainState[] = [];
    const e = await failure(flowJob.run(flowCfg({ lr: 1e6 }), { progressIntervalMs: 1e9, checkpointEvery: 1, onCheckpoint: (s) => void checkpoints.push(s) }));
    expect(e.message).toMatch(new RegExp(`training diverged at step ${e.step}: .*lower --lr`));
    expect(checkpoints.every(allFinite)).toBe(true);
    expect(checkpoints.map((c) => c.step)).toEqual(Array.from({ length: e.step - 1 }, (_, i) => i + 1));
    expect(e.losses.map((l) => l.step)).toEqual(Array.from({ length: e.step }, (_, i) => i + 1));
  });

  test('a parameter made NaN by the last update is caught at that step', async () => {
    let mid: TrainState | null = null;
    await flowJob.run(flowCfg({ steps: 3 }), { checkpointEvery: 2, onCheckpoint: (s) => void (s.step === 2 ? (mid = s) : null) });
    const bad = structuredClone(mid!);
    bad.adam.v[0] = NaN;
    const checkpoints: TrainState[] = [];
    const e = await failure(flowJob.run(flowCfg({ steps: 3 }), { checkpointEvery: 1, onCheckpoint: (s) => void checkpoints.push(s) }, bad));
    expect(e.step).toBe(3);
    expect(e.message).toMatch(/step 3: a parameter became NaN or infinite/);
    expect(checkpoints).toEqual([]);
  });
});

describe('the checkpoint writer refuses non-finite parameters', () => {
  const state = (x: number): TrainState => ({
    step: 4,
    params: { w: { data: new Float32Array([1, x, 3]), shape: [3] } },
    adam: { t: 4, m: new Float32Array(3), v: new Float32Array(3) },
    extra: {},
    losses: [{ step: 4, loss: 0.5 }],
  });
  const contents = (x: number) => ({ config: { method: 'otcfm' }, trainConfig: {}, state: state(x) });

  test('NaN and ±Inf are refused, naming the parameter; the file on disk stays as it was', () => {
    for (const x of [NaN, Infinity, -Infinity]) expect(() => encodeCheckpoint(contents(x))).toThrow(NonFiniteCheckpointError);
    expect(() => encodeCheckpoint(contents(NaN))).toThrow(/step 4 refused: parameter "w" holds NaN at index 1/);
    const file = path.join(dir, 'model.safetensors');
    writeCheckpoint(file, contents(2));
    const before = readFileSync(file);
    expect(() => writeCheckpoint(file, contents(NaN))).toThrow(NonFiniteCheckpointError);
    expect(readFileSync(file).equals(before)).toBe(true);
    expect(readdirSync(dir)).toEqual(['model.safetensors']); // no temporary file left behind
  });
});

const haveChromium = CHROMIUM_CANDIDATES.some((p) => existsSync(p)) || !!process.env.WGFLOW_CHROMIUM;

function wgflow(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.resolve(__dirname, '..', 'bin', 'wgflow.js'), ...args], { env: { ...process.env, WGFLOW_JOBS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('wgflow train --method otcfm --lr 1e6 (the issue\'s reproduction)', () => {
  for (const runtime of ['node', 'browser'] as const) {
    test.skipIf(runtime === 'browser' && !haveChromium)(runtime, async () => {
      const out = path.join(dir, `cli-${runtime}`);
      const r = await wgflow(['train', '--method', 'otcfm', '--steps', '200', '--lr', '1e6', '--checkpoint-every', '1', '--runtime', runtime, '--out', out]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/training diverged at step 2: the loss is (Infinity|NaN)\. Try a lower --lr \(this run: 1000000\)/);
      expect(r.stderr).toMatch(/the last checkpoint \(step 1\) is kept in .*model\.safetensors/);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      const ck = readCheckpoint(path.join(out, 'model.safetensors'));
      expect(ck.state.step).toBe(1);
      expect(allFinite(ck.state)).toBe(true);
      const m = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8'));
      expect(m.failure).toMatchObject({ kind: 'nonfinite', step: 2 });
      expect(m.checkpoint_step).toBe(1);
      expect(m.losses.map((l: [number, number | null]) => l[0])).toEqual([1, 2]);
      expect(m.losses[1][1]).toBeNull(); // the non-finite loss, as JSON can hold it
      expect(readdirSync(out).sort()).toEqual(['metrics.json', 'model.safetensors']);
    }, 300_000);
  }
});
