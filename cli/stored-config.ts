/**
 * A checkpoint's stored configurations, checked once when the checkpoint is read and returned
 * typed, so that nothing after the read (the samplers, the evaluators, --resume) meets a value that
 * its own code would not have produced.
 *
 * Why here and not in cfm/ or flows/: those trust the configuration they resolved themselves; a
 * file can hold anything (a missing "arch", `hidden: 30000`, a dimension that is not a number, a
 * `standardize.std` that is a string), and the failures then surfaced deep inside as TypeError,
 * RangeError or a wrong message with exit status 1. The rules are not copied: fields that are flags
 * are checked with the flag's own FlagKind (cli/flags.ts, cli/args.ts checkValue), and the
 * trainer-specific fields by the trainer's own resolver (cfm resolveConfig, flows resolveArch),
 * whose result must give back exactly what is stored. Every message names the metadata key, the
 * field and what is accepted. Browser-safe (cli/jobs.ts bundles it into the page too).
 */
import { mlpShapes } from '../cfm/mlp';
import { sf2mShapes } from '../cfm/sf2m';
import { resolveConfig as resolveCfmConfig, type CfmConfig } from '../cfm/config';
import { resolveArch } from '../flows/build';
import type { FlowRunConfig } from '../flows/checkpoint';
import { quote } from '../io/quote';
import { checkValue, UsageError, type FlagKind } from './args';
import { ALL_METHODS, MAX_CFM_WIDTH, MAX_HIDDEN_LAYERS, checkDataset, checkOptionBounds, flagKind } from './flags';
import { CFM_METHODS, FLOW_METHODS, type Condition, type Method, type TrainConfig, type TrainState } from '../train/contract';
import { MAX_CLASSES } from '../datasets/labels';
import { SOLVERS, familyOf } from '../train/methods';

/** The command line's part of a run (metadata "train_config"), as cli/config.ts writes it. */
export interface StoredTrainConfig {
  method: Method;
  source: string | null;
  target: string | null;
  data_file: string | null;
  /** The data file's label column (1-based; --label-column), absent or null when none. */
  label_column?: number | null;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  options: Record<string, unknown>;
}

/**
 * Bounds of stored fields that no flag bounds (they size evaluation work): point counts and
 * solver steps beyond these would allocate gigabytes or run for hours from one edited number.
 */
export const MAX_STORED_POINTS = 1 << 20;
export const MAX_STORED_STEPS = 100_000;

type Params = TrainState['params'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Field access and messages for one metadata key ("config" or "train_config"). */
class Fields {
  constructor(
    readonly key: string,
    readonly raw: Record<string, unknown>,
  ) {}

  label(field: string): string {
    return `metadata "${this.key}" field "${field}"`;
  }

  fail(field: string, accepted: string): never {
    const has = Object.hasOwn(this.raw, field);
    throw new UsageError(`${this.label(field)} ${has ? `is ${quote(this.raw[field], 60)}` : 'is missing'}; accepted: ${accepted}`);
  }

  /** The field's value by the rules of a flag kind. */
  flag<T>(field: string, kind: FlagKind): T {
    if (!Object.hasOwn(this.raw, field)) this.fail(field, describe(kind));
    return checkValue(this.label(field), kind, this.raw[field]) as T;
  }

  nullable<T>(field: string, check: (v: unknown) => T, accepted: string): T | null {
    if (!Object.hasOwn(this.raw, field)) this.fail(field, `null or ${accepted}`);
    const v = this.raw[field];
    return v === null ? null : check(v);
  }

  dataset(field: string, allowNull: boolean): string | null {
    const v = this.raw[field];
    if (v === null && allowNull) return null;
    if (typeof v !== 'string') this.fail(field, allowNull ? 'null or a dataset name' : 'a dataset name');
    return checkDataset(field, v, this.label(field));
  }

  int(field: string, min: number, max: number): number {
    const v = this.raw[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(field, `an integer from ${min} to ${max}`);
    return v;
  }

  bool(field: string): boolean {
    const v = this.raw[field];
    if (typeof v !== 'boolean') this.fail(field, 'true or false');
    return v;
  }

  oneOf<T extends string>(field: string, values: readonly T[]): T {
    const v = this.raw[field];
    if (typeof v !== 'string' || !values.includes(v as T)) this.fail(field, `one of ${values.join(', ')}`);
    return v as T;
  }

  object(field: string): Record<string, unknown> {
    const v = this.raw[field];
    if (!isObject(v)) this.fail(field, 'a JSON object');
    return v;
  }
}

function describe(kind: FlagKind): string {
  switch (kind.type) {
    case 'int':
      return kind.max !== undefined ? `an integer from ${kind.min} to ${kind.max}` : `an integer ≥ ${kind.min}`;
    case 'number':
      return kind.positive ? 'a positive number' : kind.min !== undefined ? `a number ≥ ${kind.min}` : 'a number';
    case 'enum':
      return `one of ${kind.values.join(', ')}`;
    default:
      return 'a value';
  }
}

/** Metadata "train_config" (what --resume continues) by the rules of the train flags. */
export function checkTrainConfig(raw: Record<string, unknown>): StoredTrainConfig {
  const f = new Fields('train_config', raw);
  const method = f.flag<Method>('method', flagKind('method'));
  const noSource = familyOf(method) === 'flow' || method === 'fm';
  const source = f.dataset('source', noSource);
  if (noSource && source !== null) f.fail('source', `null (${method} has no source distribution)`);
  const target = f.dataset('target', true);
  const dataFile = f.nullable('data_file', (v) => (typeof v === 'string' && v !== '' && v.length <= 4096 ? v : f.fail('data_file', 'null or a file name')), 'a file name');
  if ((target === null) === (dataFile === null)) f.fail(target === null ? 'target' : 'data_file', 'a target dataset or a data file, exactly one of them');
  const options = f.object('options');
  checkOptionBounds(options, f.label('options'));
  const labelColumn = raw.label_column === undefined ? null : f.nullable('label_column', (v) => checkValue(f.label('label_column'), flagKind('label-column'), v) as number, 'a column number from 1');
  if (labelColumn !== null && dataFile === null) f.fail('label_column', 'null (a label column needs a data file)');
  return {
    method,
    source,
    target,
    data_file: dataFile,
    ...(labelColumn !== null ? { label_column: labelColumn } : {}),
    steps: f.flag('steps', flagKind('steps')),
    batch: f.flag('batch', flagKind('batch')),
    lr: f.flag('lr', flagKind('lr')),
    seed: f.flag('seed', flagKind('seed')),
    options,
  };
}

/** Parameters named and shaped exactly as `expected` (no more, no fewer): the model a config describes. */
function checkParamShapes(expected: { name: string; shape: number[] }[], params: Params, what: string): void {
  const want = new Set(expected.map((e) => e.name));
  for (const e of expected) {
    const p = Object.hasOwn(params, e.name) ? params[e.name] : undefined;
    if (!p) throw new UsageError(`the parameters do not match metadata "config": ${what} needs parameter ${quote(e.name)} of shape [${e.shape.join(', ')}], which is missing`);
    if (!same(p.shape, e.shape)) throw new UsageError(`the parameters do not match metadata "config": ${what} needs ${quote(e.name)} of shape [${e.shape.join(', ')}], the checkpoint has [${p.shape.join(', ')}]`);
  }
  const extra = Object.keys(params).filter((n) => !want.has(n));
  if (extra.length) throw new UsageError(`the parameters do not match metadata "config": ${what} has no parameter ${quote(extra[0])}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''}`);
}

/** Stored CFM field ↔ option key of cfm/config.ts resolveConfig (the rest are the same name). */
const CFM_OPTION_OF: Record<string, string> = { stepMode: 'step', coupling: 'ot' };
/** Fields of a CfmConfig that are not resolveConfig options. */
const CFM_FIXED = ['method', 'source', 'target', 'dataName', 'dim', 'steps', 'batch', 'lr', 'seed'];

/** A stored condition (cfm/conditional.ts): null, {kind: "labels", numClasses} or {kind: "context", cols}. */
function storedCondition(f: Fields, v: unknown): Condition | null {
  if (v === undefined || v === null) return null;
  const n = (x: unknown) => Number.isInteger(x) && (x as number) >= 1 && (x as number) <= MAX_CLASSES;
  if (isObject(v) && v.kind === 'labels' && n(v.numClasses) && Object.keys(v).length === 2) return { kind: 'labels', numClasses: v.numClasses as number };
  if (isObject(v) && v.kind === 'context' && n(v.cols) && Object.keys(v).length === 2) return { kind: 'context', cols: v.cols as number };
  return f.fail('condition', `null, {"kind": "labels", "numClasses": 1..${MAX_CLASSES}} or {"kind": "context", "cols": 1..${MAX_CLASSES}}`);
}

/** Metadata "config" of a flow-matching checkpoint (cfm/train.ts CfmConfig), checked against its parameters. */
export function checkCfmConfig(raw: Record<string, unknown>, params: Params): CfmConfig {
  const f = new Fields('config', raw);
  const method = f.flag<Method>('method', { type: 'enum', values: CFM_METHODS });
  const source = f.dataset('source', true);
  const target = f.dataset('target', true);
  const dataName = f.nullable('dataName', (v) => (typeof v === 'string' && v.length <= 4096 ? v : f.fail('dataName', 'null or a name')), 'a name');
  const hiddenRaw = raw.hidden;
  if (!Array.isArray(hiddenRaw) || hiddenRaw.length < 1 || hiddenRaw.length > MAX_HIDDEN_LAYERS || hiddenRaw.some((h) => !Number.isInteger(h) || h < 1 || h > MAX_CFM_WIDTH)) {
    f.fail('hidden', `a list of 1 to ${MAX_HIDDEN_LAYERS} widths from 1 to ${MAX_CFM_WIDTH}, e.g. [64, 64, 64]`);
  }
  const hidden = hiddenRaw as number[];
  // The dimension is bounded by the parameters that must match it (l0.W is [dim + 1, width]).
  const dim = f.int('dim', 1, Number.MAX_SAFE_INTEGER);
  const activation = f.oneOf('activation', ['selu', 'relu', 'tanh', 'sigmoid', 'none'] as const);
  const condition = storedCondition(f, raw.condition);
  const context = condition ? (condition.kind === 'labels' ? condition.numClasses : condition.cols) : 0;
  // sf2m stores a score network (score.l{k}.*) next to the vector field.
  checkParamShapes((method === 'sf2m' ? sf2mShapes : mlpShapes)(context ? { dim, hidden, activation, context } : { dim, hidden, activation }), params, `a ${method} ${method === 'sf2m' ? 'vector field and score network' : 'vector field'} of dimension ${dim} with hidden widths [${hidden.join(', ')}]`);
  for (const k of ['evalPoints', 'trajectoryPoints', 'nllPoints']) f.int(k, 0, MAX_STORED_POINTS);
  for (const k of ['solverSteps', 'nllSteps', 'trajectoryTimes', 'sinkhornMaxIter', 'sinkhornEpsScaling']) f.int(k, 0, MAX_STORED_STEPS);
  f.oneOf('solver', SOLVERS);
  f.bool('normalizeCost');
  f.nullable('reg', (v) => checkValue(f.label('reg'), { type: 'number', positive: true }, v), 'a positive number');
  // The trainer's own rules for the rest: resolve the same settings and require what is stored.
  // Every other stored field is an option of cfm/config.ts resolveConfig (which names unknown ones).
  const options: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (CFM_FIXED.includes(k) || (k === 'coupling' && v === 'independent') || (k === 'reg' && v === null)) continue;
    options[CFM_OPTION_OF[k] ?? k] = k === 'condition' ? (condition?.kind ?? 'none') : v;
  }
  const cfg: TrainConfig = {
    method,
    source,
    // Trained on a data file: the data is not stored; a stand-in of the stored dimension resolves the same way.
    target: dataName === null ? target : null,
    steps: f.flag('steps', flagKind('steps')),
    batch: f.flag('batch', flagKind('batch')),
    lr: f.flag('lr', flagKind('lr')),
    seed: f.flag('seed', flagKind('seed')),
    options,
  };
  f.flag('sigma', flagKind('sigma'));
  if (dataName !== null) cfg.data = { data: new Float32Array(dim), n: 1, dim };
  // A conditional model on data: stand-in labels (or context) of the stored class count (or width).
  if (dataName !== null && condition?.kind === 'labels') cfg.labels = { labels: new Int32Array(1), numClasses: condition.numClasses };
  if (dataName !== null && condition?.kind === 'context') cfg.context = { data: new Float32Array(condition.cols), n: 1, dim: condition.cols };
  let resolved: CfmConfig;
  try {
    resolved = resolveCfmConfig(cfg);
  } catch (e) {
    // "option step: …" → the stored field's name.
    const msg = (e as Error).message.replace(/^option (\w+):/, (_, k: string) => `field "${Object.keys(CFM_OPTION_OF).find((s) => CFM_OPTION_OF[s] === k) ?? k}":`);
    throw new UsageError(`metadata "config" is not a configuration ${method} accepts: ${msg}`);
  }
  for (const [k, v] of Object.entries(resolved)) {
    if (k === 'dataName') continue;
    if (!same(raw[k], v)) f.fail(k, `${quote(v, 60)} (what ${method} resolves the stored settings to)`);
  }
  return { ...resolved, dataName };
}

/** Metadata "config" of a normalizing-flow checkpoint (flows/checkpoint.ts FlowRunConfig), checked against its parameters. */
export function checkFlowConfig(raw: Record<string, unknown>, params: Params): FlowRunConfig {
  const f = new Fields('config', raw);
  if (raw.family !== 'flow') f.fail('family', '"flow"');
  const method = f.flag<FlowRunConfig['method']>('method', { type: 'enum', values: FLOW_METHODS });
  if (raw.source !== null) f.fail('source', 'null (a flow samples from N(0, I))');
  const target = f.dataset('target', true);
  const dim = f.int('dim', 1, Number.MAX_SAFE_INTEGER);
  const data = f.nullable('data', (v) => (isObject(v) && Number.isSafeInteger(v.n) && (v.n as number) >= 1 && v.dim === dim ? { n: v.n as number, dim } : f.fail('data', `null or {"n": rows, "dim": ${dim}} (the config's dimension)`)), '{n, dim}');
  if ((target === null) === (data === null)) f.fail(target === null ? 'target' : 'data', 'a target dataset or the data\'s {n, dim}, exactly one of them');
  if (target !== null && dim !== 2) f.fail('dim', `2 (the datasets are 2-D; target is ${target})`);
  const seed = f.flag<number>('seed', flagKind('seed'));
  const arch = f.object('arch');
  if (arch.method !== method) new Fields('config', { 'arch.method': arch.method }).fail('arch.method', `${quote(method)} (the config's method)`);
  if (arch.dim !== dim) new Fields('config', { 'arch.dim': arch.dim }).fail('arch.dim', `${dim} (the config's dimension)`);
  // The allocation a build of this architecture makes is bounded by what the file holds: each
  // layer has at least `dim` parameters (planar, radial), or a conditioner whose hidden layers
  // alone hold Σ width·next + Σ width. A config that asks for more does not describe these parameters.
  const held = Object.values(params).reduce((a, p) => a + p.data.length, 0);
  let resolved;
  try {
    resolved = resolveArch(method, dim, arch, seed);
  } catch (e) {
    throw new UsageError(`metadata "config" field "arch" is not an architecture ${method} accepts: ${(e as Error).message}`);
  }
  for (const [k, v] of Object.entries(resolved)) {
    if (!same(arch[k], v)) new Fields('config', { [`arch.${k}`]: arch[k] }).fail(`arch.${k}`, `${quote(v, 60)} (what ${method} resolves this architecture to)`);
  }
  const h = resolved.hidden;
  const perLayer = method === 'planar' || method === 'radial' ? dim : h.reduce((a, w, i) => a + w + (i + 1 < h.length ? w * h[i + 1]! : 0), 0) + Math.floor(dim / 2) * h[0]!;
  if (resolved.layers * perLayer > held) {
    throw new UsageError(`the parameters do not match metadata "config": ${resolved.layers} ${method} layers of dimension ${dim} with hidden widths [${h.join(', ')}] need more than the ${held} values the checkpoint holds`);
  }
  let standardize: FlowRunConfig['standardize'] = null;
  if (raw.standardize !== null) {
    const s = raw.standardize;
    const vec = (v: unknown, ok: (x: number) => boolean) => Array.isArray(v) && v.length === dim && v.every((x) => typeof x === 'number' && Number.isFinite(x) && ok(x));
    if (isObject(s) && vec(s.mean, () => true) && vec(s.std, (x) => x > 0)) standardize = { mean: (s.mean as number[]).slice(), std: (s.std as number[]).slice() };
    else f.fail('standardize', `null or {"mean": ${dim} finite numbers, "std": ${dim} positive finite numbers}`);
  }
  const options = f.object('options');
  const condition = storedCondition(f, raw.condition);
  if ((condition ? (condition.kind === 'labels' ? condition.numClasses : condition.cols) : 0) !== resolved.contextDim) f.fail('condition', `a condition of ${resolved.contextDim} context columns (arch.contextDim), or null when it is 0`);
  return {
    ...(condition ? { condition } : {}),
    family: 'flow',
    method,
    source: null,
    target,
    data,
    dim,
    steps: f.flag('steps', flagKind('steps')),
    batch: f.flag('batch', flagKind('batch')),
    lr: f.flag('lr', flagKind('lr')),
    seed,
    schedule: f.oneOf('schedule', ['cosine', 'constant'] as const),
    testSize: f.int('testSize', 1, Number.MAX_SAFE_INTEGER),
    testFraction: typeof raw.testFraction === 'number' && raw.testFraction > 0 && raw.testFraction < 1 ? raw.testFraction : f.fail('testFraction', 'a number between 0 and 1'),
    arch: resolved,
    standardize,
    options,
  };
}

/** The model config of a checkpoint of `method`, checked and typed (as a plain record for cli/methods.ts). */
export function checkModelConfig(method: Method, raw: Record<string, unknown>, params: Params): Record<string, unknown> {
  if (!ALL_METHODS.includes(method)) throw new UsageError(`metadata "config" field "method" is ${quote(method, 40)}; accepted: one of ${ALL_METHODS.join(', ')}`);
  const typed = familyOf(method) === 'cfm' ? checkCfmConfig(raw, params) : checkFlowConfig(raw, params);
  if (typed.method !== method) throw new UsageError(`metadata "config" field "method" is ${quote(typed.method)}, the checkpoint was read as ${method}`);
  return typed as unknown as Record<string, unknown>;
}

/** The first non-finite value of the parameters (name, index, value), or null when all are finite. */
export function firstNonFinite(params: Params): { name: string; index: number; value: number } | null {
  for (const [name, p] of Object.entries(params)) {
    for (let i = 0; i < p.data.length; i++) if (!Number.isFinite(p.data[i]!)) return { name, index: i, value: p.data[i]! };
  }
  return null;
}

/**
 * The state --resume continues: finite parameters and Adam moments, one moment per parameter
 * value, and the moving average of the weights exactly when the stored configuration keeps one
 * (option ema). (A non-finite state would only train on as NaN; a mismatched optimizer state would
 * fail inside the trainer with a stack trace.)
 */
export function checkResumableState(state: TrainState, config: Record<string, unknown> = {}): void {
  const bad = firstNonFinite(state.params);
  if (bad) throw new UsageError(`parameter ${quote(bad.name)} holds ${bad.value} at index ${bad.index}: the run had diverged at this checkpoint, so it cannot be continued; start a new run (with a smaller --lr)`);
  const count = Object.values(state.params).reduce((a, p) => a + p.data.length, 0);
  const keepsAverage = typeof config.ema === 'number' && config.ema > 0;
  if (keepsAverage && !state.adam.ema) throw new UsageError(`metadata "config" keeps a moving average of the weights (ema ${config.ema}) but tensor "optimizer.ema" is missing`);
  const tensors: [string, Float32Array][] = [['optimizer.adam.m', state.adam.m], ['optimizer.adam.v', state.adam.v]];
  if (state.adam.ema) tensors.push(['optimizer.ema', state.adam.ema]);
  for (const [name, m] of tensors) {
    if (m.length !== count) throw new UsageError(`tensor "${name}" has ${m.length} values, the parameters ${count}: the optimizer state does not belong to these parameters`);
    for (let i = 0; i < m.length; i++) if (!Number.isFinite(m[i]!)) throw new UsageError(`tensor "${name}" holds ${m[i]} at index ${i}: the optimizer state is not finite`);
  }
}
