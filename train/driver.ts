/**
 * The training driver: the one loop every method runs (issue 11). A model family supplies config
 * resolution, a stepper and evaluation (train/contract.ts FamilyTrainer); this file owns what used
 * to be written twice, once per family, and had drifted apart:
 *
 *  - the step loop, resume (the state's step, losses, parameters and Adam state; every random draw
 *    of a step is keyed by (seed, step), so a resumed run equals the uninterrupted one);
 *  - loss readback: losses stay in a GPU ring (engine/loss-ring.ts) and are read at most every
 *    `progressIntervalMs` and before the ring could wrap (LOSS_SLOTS / 2 steps); the losses are
 *    recorded per step, so when they are read changes no number (tests/determinism.test.ts);
 *  - the non-finite guard, read with the losses: a NaN/Inf loss or parameter stops the run with a
 *    NonFiniteError naming the step, before any checkpoint of that state;
 *  - progress events, checkpoint cadence (every `checkpointEvery` steps and at the end of
 *    training), abort (the state reached is checkpointed, then the run rejects with the signal's
 *    reason, without evaluating);
 *  - timing: ms_per_step excludes the first step of the run (pipeline compilation), the same way
 *    for every method (TrainOutcome.metrics documents it).
 */
import { getBackend, LOSS_SLOTS, NonFiniteError } from '../engine';
import { CFM_METHODS, FLOW_METHODS, familyOf, type FamilyTrainer, type TrainConfig, type TrainHooks, type TrainOutcome, type TrainState } from './contract';
import { checkCommonConfig } from './options';

type Losses = TrainState['losses'];

/** Mean of the last ≤ 100 recorded losses (per step, so it does not depend on when they were read). */
function tailMean(losses: Losses): number {
  const tail = losses.slice(-100);
  return tail.length ? tail.reduce((a, l) => a + l.loss, 0) / tail.length : NaN;
}

/** The error of a run whose guard was raised at 0-based step `bad`: names the step (1-based) and what to try. */
function divergedError(bad: number, losses: Losses, advice: string): NonFiniteError {
  const last = losses[losses.length - 1];
  const what = last && last.step === bad + 1 && !Number.isFinite(last.loss) ? `the loss is ${last.loss}` : 'a parameter became NaN or infinite';
  return new NonFiniteError(`training diverged at step ${bad + 1}: ${what}. ${advice}`, bad + 1, losses.slice());
}

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error(r === undefined ? 'training aborted' : `training aborted: ${String(r)}`);
  e.name = 'AbortError';
  return e;
}

/**
 * Trains `cfg` with the family `trainer` (the backend already initialised), continuing from
 * `resume` when given, then evaluates. Throws an Error naming a bad configuration value before
 * any GPU work, NonFiniteError when training diverges, DeviceLostError when the device is lost,
 * and the signal's reason when aborted.
 */
export async function runTraining(trainer: FamilyTrainer, cfg: TrainConfig, hooks: TrainHooks = {}, resume?: TrainState): Promise<TrainOutcome> {
  if (cfg && typeof cfg === 'object' && familyOf(cfg.method) !== trainer.family) {
    throw new RangeError(`method ${JSON.stringify(cfg.method)} is not a ${trainer.family === 'cfm' ? 'flow-matching' : 'flow'} method; accepted: ${(trainer.family === 'cfm' ? CFM_METHODS : FLOW_METHODS).join(', ')}`);
  }
  checkCommonConfig(cfg);
  const config = trainer.resolveConfig(cfg);
  if (resume) {
    if (!Number.isInteger(resume.step) || resume.step < 0) throw new RangeError(`resume: the state's step ${resume.step} is not a non-negative integer`);
    if (resume.step > cfg.steps) throw new RangeError(`resume: the checkpoint is at step ${resume.step}, beyond steps = ${cfg.steps}`);
  }
  const b = getBackend();
  const run = await trainer.prepare(cfg, config, resume);
  try {
    const steps = cfg.steps;
    const start = resume?.step ?? 0;
    const losses: Losses = resume ? resume.losses.slice() : [];
    const stateAt = async (step: number): Promise<TrainState> => ({ step, ...(await run.snapshot()), losses: losses.slice() });
    const interval = hooks.progressIntervalMs ?? 500;
    const every = hooks.checkpointEvery ?? 0;
    const t0 = performance.now();
    let lastReport = t0;
    let readUpTo = start;
    // Reads the losses of the steps since the last read with the guard (one readback); returns
    // their mean. A raised guard ends the run here, before any checkpoint of that state.
    const flush = async (upTo: number): Promise<number | null> => {
      if (upTo <= readUpTo) return null;
      const { losses: vals, firstBad } = await run.readLosses(readUpTo, upTo);
      const keep = firstBad === null ? vals.length : Math.min(vals.length, firstBad - readUpTo + 1);
      let total = 0;
      for (let k = 0; k < keep; k++) {
        losses.push({ step: readUpTo + k + 1, loss: vals[k]! });
        total += vals[k]!;
      }
      if (firstBad !== null) throw divergedError(firstBad, losses, run.divergenceAdvice);
      readUpTo = upTo;
      return total / vals.length;
    };
    let tTimed = 0;
    let dTimed = 0;
    for (let step = start; step < steps; step++) {
      if (hooks.signal?.aborted) {
        await flush(step);
        if (hooks.onCheckpoint) await hooks.onCheckpoint(await stateAt(step));
        throw abortReason(hooks.signal);
      }
      run.step(step);
      if (step === start) {
        // The first step compiles the pipelines: timing starts once it is done.
        await b.sync();
        tTimed = performance.now();
        dTimed = b.counters.dispatches;
      }
      const done = step + 1;
      if (performance.now() - lastReport >= interval || done - readUpTo >= LOSS_SLOTS / 2 || done === steps) {
        const mean = await flush(done);
        lastReport = performance.now();
        if (mean !== null) hooks.onProgress?.({ step: done, steps, loss: mean, elapsedMs: lastReport - t0 });
      }
      if (every > 0 && done % every === 0 && done < steps && hooks.onCheckpoint) {
        await flush(done);
        await hooks.onCheckpoint(await stateAt(done));
      }
    }
    await b.sync();
    const timedSteps = steps - start - 1;
    const msPerStep = timedSteps > 0 ? (performance.now() - tTimed) / timedSteps : NaN;
    const dispatchesPerStep = timedSteps > 0 ? (b.counters.dispatches - dTimed) / timedSteps : NaN;
    await flush(steps);
    const state = await stateAt(steps);
    if (hooks.onCheckpoint) await hooks.onCheckpoint(state);
    const ev = await run.evaluate().catch((e: unknown) => {
      throw e instanceof NonFiniteError ? new NonFiniteError(e.message, steps, losses.slice()) : e;
    });
    return {
      config,
      state,
      metrics: { ...ev.metrics, loss: tailMean(losses), ms_per_step: msPerStep, dispatches_per_step: dispatchesPerStep, ...(run.fusion ? { fusion: run.fusion } : {}) },
      samples: ev.samples,
      target: ev.target,
      trajectories: ev.trajectories,
      density: ev.density,
    };
  } finally {
    run.dispose();
  }
}
