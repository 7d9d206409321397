/**
 * The method registry: every method's MethodImpl (train/methods.ts), its training served by the one
 * driver (train/driver.ts) with the model family's trainer (cfm/train.ts, flows/train.ts), its
 * sampling and evaluation by the family's checkpoint helpers. Imported directly (no lookups by
 * file name): a method is available when it is in the method lists. Browser-safe.
 */
import { cfmEvaluate, cfmSample, cfmTrainer } from '../cfm/train';
import { sf2mEvaluate, sf2mSample, sf2mTrainer } from '../cfm/sf2m-train';
import { flowTrainer } from '../flows/train';
import { evalFlow, sampleFlow } from '../flows/checkpoint';
import { familyOf, type FamilyTrainer, type Method, type TrainJob } from './contract';
import { runTraining } from './driver';
import type { JobsModule, MethodImpl } from './methods';
import { ALL_METHODS, checkCommonConfig } from './options';

/** Training of any flow-matching method (the driver with cfm/'s trainer, sf2m's for sf2m); cfg.method picks the method. */
export const cfmJob: TrainJob = { run: (cfg, hooks, resume) => runTraining(trainerOf(cfg.method), cfg, hooks, resume) };
/** Training of any normalizing-flow method (the driver with flows/'s trainer). */
export const flowJob: TrainJob = { run: (cfg, hooks, resume) => runTraining(flowTrainer, cfg, hooks, resume) };

/** The family trainer of `method`. */
export function trainerOf(method: Method): FamilyTrainer {
  if (method === 'sf2m') return sf2mTrainer;
  return familyOf(method) === 'cfm' ? cfmTrainer : flowTrainer;
}

function impl(method: Method): MethodImpl {
  const trainer = trainerOf(method);
  return {
    family: trainer.family,
    job: trainer.family === 'cfm' ? cfmJob : flowJob,
    resolveConfig(cfg) {
      checkCommonConfig(cfg);
      return trainer.resolveConfig(cfg);
    },
    sample: method === 'sf2m' ? sf2mSample : trainer.family === 'cfm' ? cfmSample : sampleFlow,
    evaluate: method === 'sf2m' ? sf2mEvaluate : trainer.family === 'cfm' ? cfmEvaluate : evalFlow,
  };
}

const IMPLS = new Map<Method, MethodImpl>(ALL_METHODS.map((m) => [m, impl(m)]));

/** The implementation of `method` (the string answer of JobsModule is for registries that lack one). */
export function getMethod(method: Method): MethodImpl {
  const found = IMPLS.get(method);
  if (!found) throw new RangeError(`method: ${JSON.stringify(method)} is not accepted; accepted: ${ALL_METHODS.join(', ')}`);
  return found;
}

export const registry: JobsModule = { getMethod };

