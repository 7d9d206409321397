/**
 * Memory stays flat during training (issue 12 item 3): a hundred or two steps of OT-CFM and
 * RealNVP through the CLI's own TrainJob, the engine's pool and allocation counters sampled every
 * 25 steps from the checkpoint hook (batch 32 and a tiny evaluation, to stay fast). After the
 * first sample (warm-up: pipelines compiled, the pool filled) nothing may move: a tensor not
 * disposed per step grows buffersLive, a buffer the pool does not reuse grows buffersCreated.
 * bench/soak.ts runs the same check for 20 000 steps.
 *
 * RealNVP's bind-group cache is left out: bind groups are cached by buffer identity, and which
 * pooled buffer an op gets varies over the first few hundred steps, so the cache is still filling
 * here; it then settles (bench/soak.ts: the same count from step 1 000 to step 20 000).
 */
import { describe, expect, it } from 'vitest';
import { getMethod } from '../cli/jobs';
import type { Method } from '../train/contract';
import type { Counters } from '../engine';
import { gpu } from './helpers';

const FLAT = ['buffersLive', 'bytesLive', 'poolBuffers', 'poolBytes', 'buffersCreated', 'bytesAllocated', 'pipelinesCompiled'] as const;
type Snapshot = { step: number } & Pick<Counters, (typeof FLAT)[number] | 'bindGroupsCached'>;

const EVERY = 25;

async function sample(method: Method, steps: number, options: Record<string, unknown>): Promise<Snapshot[]> {
  const b = await gpu();
  const impl = getMethod(method);
  if (typeof impl === 'string') throw new Error(impl);
  const flow = impl.family === 'flow';
  const snaps: Snapshot[] = [];
  await impl.job.run(
    { method, source: flow ? null : '8gaussians', target: flow ? 'ffjord-moons' : 'moons', steps, batch: 32, lr: 1e-3, seed: 0, options },
    {
      checkpointEvery: EVERY,
      onCheckpoint: (s) => {
        if (snaps.length && snaps[snaps.length - 1]!.step === s.step) return;
        const c = b.counters;
        snaps.push({ step: s.step, bindGroupsCached: c.bindGroupsCached, ...Object.fromEntries(FLAT.map((k) => [k, c[k]])) } as Snapshot);
      },
    },
  );
  return snaps;
}

function expectFlat(snaps: Snapshot[], keys: readonly (keyof Snapshot)[], steps: number): void {
  expect(snaps.map((s) => s.step)).toEqual(Array.from({ length: steps / EVERY }, (_, i) => (i + 1) * EVERY));
  const [warm, ...rest] = snaps;
  expect(warm!.buffersLive).toBeGreaterThan(0);
  for (const s of rest) for (const k of keys) expect(s[k], `${k} at step ${s.step} (step ${warm!.step}: ${warm![k]})`).toBe(warm![k]);
}

describe('memory is flat after warm-up', () => {
  it('OT-CFM, 200 steps: pool, allocation and bind-group counters do not move after step 25', async () => {
    const snaps = await sample('otcfm', 200, { evalPoints: 64, trajectoryPoints: 8, solverSteps: 4 });
    expectFlat(snaps, [...FLAT, 'bindGroupsCached'], 200);
  });

  it('RealNVP (4 couplings), 100 steps: pool and allocation counters do not move after step 25', async () => {
    const snaps = await sample('realnvp', 100, { layers: 4, testSize: 256, grid: 8 });
    expectFlat(snaps, FLAT, 100);
  });
});
