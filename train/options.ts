/**
 * The one table of the training options every method shares (method, source, target/data, steps,
 * batch, lr, seed, options): their defaults, their bounds and their checks. The command line
 * (cli/flags.ts builds its flags' bounds from these constants, cli/config.ts its defaults) and the
 * library (api/ trainConfig) both resolve through here, so `wgflow train` and `train({...})` give
 * the same configuration (tests/train-options.test.ts compares them). Method-specific options are
 * each family's own (cfm/config.ts resolveConfig, flows/train.ts): they reject unknown keys, naming
 * the accepted ones. Browser-safe.
 */
import { DATASETS, labelledDatasets } from '../datasets/toy2d';
import { checkLabels, type LabelSet } from '../datasets/labels';
import { CFM_METHODS, FLOW_METHODS, familyOf, type Condition, type DataMatrix, type Method, type TrainConfig } from './contract';

export const ALL_METHODS: readonly Method[] = [...CFM_METHODS, ...FLOW_METHODS];

/**
 * Largest batch. Why: the CFM step kernels take at most 65 536 rows, and beyond it a flow's
 * activations alone outgrow a GPU's storage buffers (a RealNVP at batch 1 048 576 reached 6.3 GB).
 * Flow matching needs at least 2 rows (cfm/train.ts says why).
 */
export const MIN_BATCH = 1;
export const MAX_BATCH = 65536;
/** Seeds key Philox streams with one 32-bit word. */
export const MAX_SEED = 2 ** 32 - 1;

/** Defaults of the shared options (SPEC §4; `wgflow train` with no flags). Steps has none here: the CLI picks it by adapter. */
export const TRAIN_DEFAULTS = {
  method: 'otcfm',
  /** Source of the flow-matching methods that take one (not fm, not the flows). */
  source: '8gaussians',
  target: { cfm: 'moons', flow: 'ffjord-moons' },
  batch: 256,
  lr: 1e-3,
  seed: 0,
} as const satisfies { method: Method; source: string; target: Record<'cfm' | 'flow', string>; batch: number; lr: number; seed: number };

/** What a library caller gives: every field but `steps` has a default (TRAIN_DEFAULTS). */
export interface TrainSpec {
  method?: Method;
  /** Flow matching's source dataset (default 8gaussians; fm and the flows start from N(0, I): leave it out). */
  source?: string | null;
  /** Target dataset name (default moons for flow matching, ffjord-moons for flows), or `data`. */
  target?: string | null;
  data?: DataMatrix;
  /** Labels of `data`'s rows, for options.condition = 'labels' (built-in labelled targets bring their own). */
  labels?: LabelSet;
  /** Context vectors of `data`'s rows (n × cols), for options.condition = 'context'. */
  context?: DataMatrix;
  /** Rows of an image source (translation; `source` names it): datasets/images.ts imageData(name).data. */
  sourceData?: DataMatrix;
  steps: number;
  batch?: number;
  lr?: number;
  seed?: number;
  /** Method-specific options (cfm/train.ts, flows/train.ts list them). */
  options?: Record<string, unknown>;
}


/** Whether `method` starts from a source dataset (the flow-matching methods but fm). */
export const usesSource = (method: Method): boolean => familyOf(method) === 'cfm' && method !== 'fm';

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v) : String(v));

function bad(field: string, v: unknown, accepted: string): RangeError {
  return new RangeError(`${field} = ${show(v)} is not accepted; accepted: ${accepted}`);
}

function checkDatasetName(field: string, name: unknown): void {
  if (typeof name !== 'string' || !Object.hasOwn(DATASETS, name)) throw new RangeError(`${field}: unknown dataset ${show(name)}; accepted: ${Object.keys(DATASETS).join(', ')} (or data for your own)`);
}

/** A TrainConfig from a spec: defaults filled in, every shared field checked (RangeError naming it). */
export function trainConfig(spec: TrainSpec): TrainConfig {
  if (!spec || typeof spec !== 'object') throw new TypeError('train: expected a configuration object ({ method, target, steps, ... })');
  const known = ['method', 'source', 'target', 'data', 'labels', 'context', 'sourceData', 'steps', 'batch', 'lr', 'seed', 'options'];
  for (const k of Object.keys(spec)) if (!known.includes(k)) throw new RangeError(`unknown training field "${k}"; accepted: ${known.join(', ')} (method-specific ones go in options)`);
  const method = spec.method ?? TRAIN_DEFAULTS.method;
  if (!ALL_METHODS.includes(method)) throw bad('method', method, ALL_METHODS.join(', '));
  const family = familyOf(method);
  const cfg: TrainConfig = {
    method,
    source: usesSource(method) ? (spec.source ?? TRAIN_DEFAULTS.source) : (spec.source ?? null),
    target: spec.data ? (spec.target ?? null) : (spec.target ?? TRAIN_DEFAULTS.target[family]),
    steps: spec.steps,
    batch: spec.batch ?? TRAIN_DEFAULTS.batch,
    lr: spec.lr ?? TRAIN_DEFAULTS.lr,
    seed: spec.seed ?? TRAIN_DEFAULTS.seed,
    options: { ...(spec.options ?? {}) },
  };
  if (spec.data) cfg.data = spec.data;
  if (spec.labels) cfg.labels = spec.labels;
  if (spec.context) cfg.context = spec.context;
  if (spec.sourceData) cfg.sourceData = spec.sourceData;
  checkCommonConfig(cfg);
  return cfg;
}

/**
 * The checks of the shared fields, for a complete TrainConfig (the driver runs them first, so a
 * config built by hand is held to the same rules as one from trainConfig() or the command line).
 */
export function checkCommonConfig(cfg: TrainConfig): void {
  if (!cfg || typeof cfg !== 'object') throw new TypeError('training: missing configuration');
  if (!ALL_METHODS.includes(cfg.method)) throw bad('method', cfg.method, ALL_METHODS.join(', '));
  const int = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);
  if (!int(cfg.steps) || cfg.steps < 1) throw bad('steps', cfg.steps, 'a positive integer');
  if (!int(cfg.batch) || cfg.batch < MIN_BATCH || cfg.batch > MAX_BATCH) throw bad('batch', cfg.batch, `an integer from ${MIN_BATCH} to ${MAX_BATCH}`);
  if (typeof cfg.lr !== 'number' || !Number.isFinite(cfg.lr) || cfg.lr <= 0) throw bad('lr', cfg.lr, 'a positive number');
  if (!int(cfg.seed) || cfg.seed < 0 || cfg.seed > MAX_SEED) throw bad('seed', cfg.seed, `an integer from 0 to ${MAX_SEED}`);
  if (cfg.options === null || typeof cfg.options !== 'object' || Array.isArray(cfg.options)) throw bad('options', cfg.options, 'an object of method-specific options');
  if (cfg.data && cfg.target && familyOf(cfg.method) === 'flow') throw new RangeError('target and data: give either a target dataset or data, not both (data replaces the target dataset)');
  if (!cfg.data && !cfg.target) throw new RangeError('training needs a target dataset (target) or data');
  if (!cfg.data) checkDatasetName('target', cfg.target);
  if (cfg.data) {
    const m = cfg.data;
    if (m.n === 0 && m.data?.length === 0) throw new RangeError('data is empty (0 rows)');
    if (!(m.data instanceof Float32Array) || !int(m.n) || !int(m.dim) || m.n < 1 || m.dim < 1 || m.data.length !== m.n * m.dim) {
      throw new RangeError(`data: expected { data: Float32Array, n, dim } with n × dim values and n, dim ≥ 1; got ${m.data?.length} values for n = ${show(m.n)}, dim = ${show(m.dim)}`);
    }
  }
  resolveCondition(cfg);
  if (cfg.sourceData) {
    const m = cfg.sourceData;
    if (!usesSource(cfg.method)) throw new RangeError(`sourceData: ${cfg.method} takes no source`);
    if (!(m.data instanceof Float32Array) || !int(m.n) || !int(m.dim) || m.n < 1 || m.data.length !== m.n * m.dim || m.dim !== (cfg.data?.dim ?? 2)) {
      throw new RangeError(`sourceData: expected { data: Float32Array, n, dim } with n ≥ 1 rows of the target's dimension ${cfg.data?.dim ?? 2}; got ${m.data?.length} values for n = ${show(m.n)}, dim = ${show(m.dim)}`);
    }
  } else if (usesSource(cfg.method)) checkDatasetName('source', cfg.source);
  else if (cfg.source !== null && cfg.source !== undefined && !(cfg.method === 'fm' && cfg.source === 'gaussian')) {
    throw new RangeError(`source: ${cfg.method} starts from N(0, I) and takes no source; got ${show(cfg.source)}`);
  }
}

/** The values of the conditioning option (options.condition) every method accepts; 'none' is the default. */
export const CONDITIONS = ['none', 'labels', 'context'] as const;

/**
 * The one conditioning option of every method (issue 13 item 3), `options.condition`:
 *  - 'none' (default): an unconditional model, exactly as before;
 *  - 'labels': the model takes a label's one-hot (K context columns). Labels come from the user
 *    data's `labels` (the CLI's --label-column) or, with a built-in target, from its labelling
 *    (datasets/toy2d.ts: the eight-mode sets' mode index, moons' moon, checkerboard's square,
 *    pinwheel's arm, rings' ring);
 *  - 'context': the model takes the user data's `context` rows (n × cols) as given.
 * Returns null for 'none', else what the model is conditioned on; throws naming the bad value.
 */
export function resolveCondition(cfg: Pick<TrainConfig, 'options' | 'data' | 'target' | 'labels' | 'context'>): Condition | null {
  const v = cfg.options?.condition ?? 'none';
  if (typeof v !== 'string' || !(CONDITIONS as readonly string[]).includes(v)) throw bad('option condition', v, CONDITIONS.join(', '));
  if (v !== 'labels' && cfg.labels) throw new RangeError(`labels were given but option condition is ${show(v)}; set condition = "labels" to train on them`);
  if (v !== 'context' && cfg.context) throw new RangeError(`context rows were given but option condition is ${show(v)}; set condition = "context" to train on them`);
  if (v === 'none') return null;
  if (v === 'labels') {
    if (cfg.data) {
      if (!cfg.labels) throw new RangeError('option condition = "labels" with data needs the labels of its rows (the CLI: --label-column N)');
      checkLabels(cfg.labels, cfg.data.n, 'labels');
      return { kind: 'labels', numClasses: cfg.labels.numClasses };
    }
    const ds = typeof cfg.target === 'string' && Object.hasOwn(DATASETS, cfg.target) ? DATASETS[cfg.target]! : null;
    if (!ds?.labels) throw new RangeError(`option condition = "labels": target ${show(cfg.target)} has no labels; labelled sets: ${labelledDatasets().join(', ')} (or data with labels)`);
    return { kind: 'labels', numClasses: ds.labels.classes };
  }
  if (!cfg.data || !cfg.context) throw new RangeError('option condition = "context" needs data and the context rows of its rows (context: { data, n, dim })');
  const c = cfg.context;
  if (!(c.data instanceof Float32Array) || !Number.isInteger(c.dim) || c.dim < 1 || c.n !== cfg.data.n || c.data.length !== c.n * c.dim) throw new RangeError(`context: expected ${cfg.data.n} rows (one per data row) of ≥ 1 columns as a Float32Array; got ${c.data?.length} values for n = ${show(c.n)}, dim = ${show(c.dim)}`);
  for (let i = 0; i < c.data.length; i++) if (!Number.isFinite(c.data[i]!)) throw new RangeError(`context: row ${Math.floor(i / c.dim) + 1}, column ${(i % c.dim) + 1} holds ${c.data[i]}; accepted: finite values`);
  return { kind: 'context', cols: c.dim };
}

/** Context columns of a condition (K for labels). */
export function conditionCols(c: Condition | null): number {
  return !c ? 0 : c.kind === 'labels' ? c.numClasses : c.cols;
}
