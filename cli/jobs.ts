/**
 * The command line's method registry: the training layer's (train/registry.ts) with the CLI's
 * checks of a checkpoint's stored configuration (cli/stored-config.ts, the flags' own rules) added.
 * Its own module because it is a test seam: WGFLOW_JOBS replaces it at bundle time
 * (cli/build.mjs; tests/fixtures/cli-fake-jobs.ts). Browser-safe: the page entry bundles it.
 */
import type { Method } from '../train/contract';
import type { JobsModule, MethodImpl } from '../train/methods';
import { getMethod as trainGetMethod } from '../train/registry';
import { checkModelConfig } from './stored-config';

const withChecks = new Map<Method, MethodImpl>();

export const getMethod: JobsModule['getMethod'] = (method) => {
  let m = withChecks.get(method);
  if (!m) {
    m = { ...trainGetMethod(method), checkConfig: (config, params) => checkModelConfig(method, config, params) };
    withChecks.set(method, m);
  }
  return m;
};
