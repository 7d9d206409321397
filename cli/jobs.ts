/**
 * The method registry: which TrainJob (and sampler/evaluator) serves each --method.
 *
 * The trainers are imported as namespaces: a trainer file missing from a checkout is replaced at
 * bundle time by a stub (cli/build.mjs, OPTIONAL_MODULES), and getMethod() then says the method is
 * not available instead of the whole CLI failing to build. Browser-safe.
 */
import * as cfmModule from '../cfm/train';
import * as flowsModule from '../flows/train';
import type { Method, TrainConfig } from './job';
import { familyOf, type JobsModule, type MethodImpl } from './methods';
import { checkModelConfig } from './stored-config';

type AnyModule = Record<string, unknown> & { __missing?: string };

function adapt(method: Method): MethodImpl | string {
  const family = familyOf(method);
  const mod = (family === 'cfm' ? cfmModule : flowsModule) as unknown as AnyModule;
  const file = family === 'cfm' ? 'cfm/train.ts' : 'flows/train.ts';
  if (mod.__missing) return `method ${method}: ${file} is not part of this build yet (the ${family === 'cfm' ? 'flow-matching' : 'normalizing-flow'} trainer is missing)`;
  const job = (family === 'cfm' ? mod.cfmJob : mod.flowJob) as MethodImpl['job'] | undefined;
  if (!job || typeof job.run !== 'function') return `method ${method}: ${file} does not export ${family === 'cfm' ? 'cfmJob' : 'flowJob'}`;
  const helper = <F>(name: string): F =>
    typeof mod[name] === 'function'
      ? (mod[name] as F)
      : ((async () => {
          throw new Error(`method ${method}: ${file} does not export ${name} yet`);
        }) as F);
  const resolve = family === 'cfm' ? mod.resolveConfig : undefined;
  return {
    family,
    job,
    // cfm/train.ts: cfmSample/cfmEvaluate take checkpoints (ModelCheckpoint); flows/train.ts: sampleFlow/evalFlow.
    sample: helper<MethodImpl['sample']>(family === 'cfm' ? 'cfmSample' : 'sampleFlow'),
    evaluate: helper<MethodImpl['evaluate']>(family === 'cfm' ? 'cfmEvaluate' : 'evalFlow'),
    checkConfig: (config, params) => checkModelConfig(method, config, params),
    resolveConfig: typeof resolve === 'function' ? (cfg) => ({ ...(resolve as (c: TrainConfig) => object)(cfg) }) : undefined,
  };
}

export const getMethod: JobsModule['getMethod'] = (method) => adapt(method);
