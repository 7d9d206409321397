/**
 * From flags to a TrainConfig: defaults, dataset and method validation, the default output folder,
 * and the checks --resume makes against the checkpoint it continues. Node only (reads --data files).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadDataFile } from '../datasets/files';
import { isImageDataset } from '../datasets/image-names';
import { checkImageFlags, imageSourceName, imageTargetName, imageTraining } from './images';
import { withImageDefaults } from '../train/images';
import { splitLabelColumn } from '../datasets/labels';
import { UsageError, type FlagSpec, type Parsed } from './args';
import type { DataMatrix, LabelSet, Method, TrainConfig } from '../train/contract';
import { familyOf } from '../train/methods';
import { TRAIN_DEFAULTS, usesSource } from '../train/options';

export { ALL_METHODS, MODEL_FLAGS, checkDataset } from './flags';
import { checkDataset, checkOptionBounds } from './flags';

export const BROWSER_FLAGS: FlagSpec[] = [
  { name: 'chromium', kind: { type: 'string', meta: 'the path of a Chromium executable' } },
  { name: 'gpu', kind: { type: 'enum', values: ['auto', 'on', 'off'] } },
];

export function loadData(file: string, flag = 'data'): DataMatrix {
  try {
    return loadDataFile(file);
  } catch (e) {
    throw new UsageError(`--${flag}: ${(e as Error).message}`);
  }
}

/** The CLI's part of a run's identity, stored in the checkpoint (metadata "train_config") for --resume. */
export type { StoredTrainConfig } from './stored-config';
import type { StoredTrainConfig } from './stored-config';

export interface ResolvedModel {
  config: TrainConfig;
  stored: StoredTrainConfig;
}

/**
 * A data file with its label column (1-based) split off: the data and its rows' labels
 * (datasets/labels.ts; a bad label is a UsageError naming the row and the value).
 */
export function loadLabelledData(file: string, column: number, flag = 'data'): { data: DataMatrix; labels: LabelSet } {
  const m = loadData(file, flag);
  try {
    return splitLabelColumn(m, column, `--label-column ${column} of ${file}`);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Flags that are trainer options under their own name (the rest come as --option KEY=VALUE). */
export const OPTION_FLAGS = ['sigma', 'ot', 'fusion', 'condition'] as const;

/** Options from --sigma, --ot, --fusion, --condition and --option KEY=VALUE. */
export function optionsFrom(values: Record<string, unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const k of OPTION_FLAGS) if (values[k] !== undefined) options[k] = values[k];
  for (const [k, v] of (values.option as [string, unknown][] | undefined) ?? []) options[k] = v;
  return options;
}

/**
 * Method, source, target/data, batch, lr, seed and options from flags with the shared defaults
 * (train/options.ts TRAIN_DEFAULTS, the library's too).
 * `steps` must be resolved by the caller (it depends on the runtime).
 */
export function resolveModel(p: Parsed, steps: number): ResolvedModel {
  const v = p.values;
  const method = (v.method as Method | undefined) ?? TRAIN_DEFAULTS.method;
  const family = familyOf(method);
  if (p.given.has('source') && family === 'flow') {
    throw new UsageError(`--source: not used by the normalizing flow ${method} (its base distribution is N(0, I)); leave --source out`);
  }
  if (p.given.has('source') && method === 'fm') {
    throw new UsageError('--source: not used by fm (Lipman flow matching starts from N(0, I)); leave --source out, or use icfm/otcfm with --source gaussian');
  }
  if (p.given.has('data') && p.given.has('target')) {
    throw new UsageError('--data and --target: give one of them (--data FILE replaces the target dataset)');
  }
  if (family === 'flow' && (p.given.has('sigma') || p.given.has('ot'))) {
    const flag = p.given.has('sigma') ? 'sigma' : 'ot';
    throw new UsageError(`--${flag}: a flow-matching option, not used by the normalizing flow ${method}`);
  }
  if (p.given.has('ot') && method !== 'otcfm' && method !== 'sbcfm' && method !== 'sf2m') throw new UsageError(`--ot: only otcfm, sbcfm and sf2m use an OT plan (method is ${method})`);
  const dataFile = (v.data as string | undefined) ?? null;
  // An image target (train/images.ts; cli/images.ts words its errors with the flags): its canonical
  // name, a N(0, I) source unless --source names an image class to translate from, and the image
  // runs' default options.
  if (dataFile && p.given.has('classes')) throw new UsageError('--classes: only image targets have classes (e.g. --target fashion-mnist --classes 7,9), not --data');
  const imageTarget = dataFile ? null : imageTargetName(v.target as string | undefined, v.classes as string | undefined);
  if (imageTarget) checkImageFlags(method, imageTarget);
  const sourceName = (v.source as string | undefined) ?? (imageTarget ? 'gaussian' : TRAIN_DEFAULTS.source);
  const source = usesSource(method) ? (isImageDataset(sourceName) ? imageSourceName(sourceName, imageTarget) : checkDataset('source', sourceName)) : null;
  const target = dataFile ? null : (imageTarget ?? checkDataset('target', (v.target as string | undefined) ?? TRAIN_DEFAULTS.target[family]));
  const options = imageTarget ? withImageDefaults(optionsFrom(v)) : optionsFrom(v);
  checkOptionBounds(options);
  const labelColumn = (v['label-column'] as number | undefined) ?? null;
  if (labelColumn !== null && !dataFile) throw new UsageError('--label-column: needs --data FILE (built-in targets bring their own labels: --condition labels)');
  if (labelColumn !== null && options.condition !== 'labels') throw new UsageError('--label-column: set --condition labels to train a conditional model on the labels');
  if (options.condition === 'labels' && dataFile && labelColumn === null) throw new UsageError('--condition labels with --data: give --label-column N, the column (from 1) that holds each row\'s class label');
  if (options.condition === 'context') throw new UsageError('--condition context: context vectors are given through the library (train({ data, context })); the command line takes labels (--condition labels)');
  const labelled = dataFile && labelColumn !== null ? loadLabelledData(dataFile, labelColumn) : null;
  const data = labelled ? labelled.data : dataFile ? loadData(dataFile) : undefined;
  const stored: StoredTrainConfig = {
    method,
    source,
    target,
    data_file: dataFile,
    ...(labelColumn !== null ? { label_column: labelColumn } : {}),
    steps,
    batch: (v.batch as number | undefined) ?? TRAIN_DEFAULTS.batch,
    lr: (v.lr as number | undefined) ?? TRAIN_DEFAULTS.lr,
    seed: (v.seed as number | undefined) ?? TRAIN_DEFAULTS.seed,
    options,
  };
  return { stored, config: toTrainConfig(stored, data, labelled?.labels) };
}

export function toTrainConfig(s: StoredTrainConfig, data?: DataMatrix, labels?: LabelSet): TrainConfig {
  const c: TrainConfig = { method: s.method, source: s.source, target: s.target, steps: s.steps, batch: s.batch, lr: s.lr, seed: s.seed, options: { ...s.options } };
  if (data) c.data = data;
  if (labels) c.labels = labels;
  if (s.target && isImageDataset(s.target)) {
    // An image run trains on the images' model-space rows (train/images.ts), loaded from the name.
    const img = imageTraining(s.target, s.source, s.options, (line) => process.stderr.write(`wgflow: ${line}\n`));
    c.data = img.data;
    if (img.labels) c.labels = img.labels;
    if (img.sourceData) c.sourceData = img.sourceData;
  }
  return c;
}

/** runs/<method>-<source>-<target>-<seed>/ (parts that do not apply are left out). */
export function defaultOutDir(s: Pick<StoredTrainConfig, 'method' | 'source' | 'target' | 'data_file' | 'seed'>): string {
  const target = s.target ?? (s.data_file ? path.basename(s.data_file).replace(/\.(npy|csv)$/i, '') : 'data');
  // Image dataset names carry ':' ',' '@' (fashion-mnist:7,9@pixels): not in folder names.
  return path.join('runs', [s.method, s.source, target, String(s.seed)].filter((x) => x !== null && x !== '').join('-').replace(/[:,@]/g, '-'));
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * --resume: the flags given must agree with the run being continued (it is the same run); those
 * not given are taken from it. Returns the configuration to continue with.
 */
export function mergeResume(p: Parsed, prev: StoredTrainConfig, checkpointStep: number, dir: string): ResolvedModel {
  const v = p.values;
  const conflict = (flag: string, was: unknown, got: unknown) =>
    new UsageError(`--${flag}: the run in ${dir} was trained with ${JSON.stringify(was)}, got ${JSON.stringify(got)} (--resume continues the same run; use another --out for a new one)`);
  const pairs: [string, keyof StoredTrainConfig, unknown][] = [
    ['method', 'method', v.method],
    ['source', 'source', v.source],
    ['target', 'target', v.target],
    ['data', 'data_file', v.data],
    ['batch', 'batch', v.batch],
    ['lr', 'lr', v.lr],
    ['seed', 'seed', v.seed],
  ];
  for (const [flag, key, got] of pairs) if (p.given.has(flag) && !same(prev[key], got)) throw conflict(flag, prev[key], got);
  const given = optionsFrom(v);
  for (const [k, val] of Object.entries(given)) {
    if (!same(prev.options?.[k], val)) throw conflict((OPTION_FLAGS as readonly string[]).includes(k) ? k : `option ${k}`, prev.options?.[k] ?? null, val);
  }
  const steps = (v.steps as number | undefined) ?? prev.steps;
  if (steps < checkpointStep) {
    throw new UsageError(`--steps: the checkpoint in ${dir} is already at step ${checkpointStep}; pass --steps ${checkpointStep} or more (the total, not the number of extra steps)`);
  }
  const stored: StoredTrainConfig = { ...prev, options: { ...(prev.options ?? {}) }, steps };
  if (p.given.has('label-column') && !same(prev.label_column ?? null, v['label-column'])) throw conflict('label-column', prev.label_column ?? null, v['label-column']);
  let data: DataMatrix | undefined;
  let labels: LabelSet | undefined;
  if (stored.data_file) {
    if (!existsSync(stored.data_file)) throw new UsageError(`--resume: the run was trained on --data ${stored.data_file}, which is no longer there`);
    if (stored.label_column) ({ data, labels } = loadLabelledData(stored.data_file, stored.label_column));
    else data = loadData(stored.data_file);
  }
  return { stored, config: toTrainConfig(stored, data, labels) };
}
