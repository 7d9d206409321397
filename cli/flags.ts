/**
 * The model and data flags shared by train and serve, and the resource bounds they enforce. Kept
 * apart from cli/config.ts (which reads files, Node only) because a checkpoint's stored
 * configuration is checked against these same rules (cli/stored-config.ts), in code that the
 * browser page bundles too. Browser-safe.
 */
import { DATASETS } from '../datasets/toy2d';
import { IMAGE_DATASETS, IMAGE_DATASET_NAMES, parseImageDataset } from '../datasets/image-names';
import { quote } from '../io/quote';
import { UsageError, suggest, type FlagKind, type FlagSpec } from './args';
import { FUSION_LEVELS } from '../engine/config';
import { ALL_METHODS, CONDITIONS, MAX_BATCH, MAX_SEED, MIN_BATCH } from '../train/options';

// The shared training options' bounds are train/options.ts's (the library checks the same ones).
export { ALL_METHODS, MAX_BATCH };
/** Most hidden layers of a network (--option hidden=…): the flows' limit, also applied to CFM. */
export const MAX_HIDDEN_LAYERS = 16;
/** Widest hidden layer of a CFM vector field (cfm/train.ts enforces it). */
export const MAX_CFM_WIDTH = 1024;
/** Widest hidden layer of a flow conditioner, and most flow layers (flows/build.ts enforces them). */
export const MAX_FLOW_WIDTH = 4096;
export const MAX_FLOW_LAYERS = 1024;

/** Largest estimated working memory of a training run (bytes), checked by cli/resources.ts: 4 GiB. */
export const MEMORY_BOUND = 4 * 2 ** 30;
/** Most points sample and eval draw (--n): 16.7 M points of 2-D data are 134 MB on the host and the GPU. */
export const MAX_POINTS = 1 << 24;
/** Most ODE solver steps (--solver-steps). */
export const MAX_SOLVER_STEPS = 100_000;

export const SEED_KIND: FlagKind = { type: 'int', min: 0, max: MAX_SEED };

/** Flags shared by train and serve: the model, the data and the optimiser. */
export const MODEL_FLAGS: FlagSpec[] = [
  { name: 'method', kind: { type: 'enum', values: ALL_METHODS } },
  { name: 'source', kind: { type: 'string', meta: 'a dataset name' } },
  { name: 'target', kind: { type: 'string', meta: 'a dataset name' } },
  { name: 'data', kind: { type: 'string', meta: 'a .npy or .csv file' } },
  { name: 'sigma', kind: { type: 'number', min: 0 } },
  { name: 'ot', kind: { type: 'enum', values: ['exact', 'sinkhorn'] } },
  // The engine's fusion ladder (engine/config.ts), passed to the trainers as their option `fusion`.
  { name: 'fusion', kind: { type: 'enum', values: FUSION_LEVELS } },
  // Conditional generation (train/options.ts resolveCondition): the option `condition`, and the
  // data file's label column (1-based) split off the data as its rows' labels.
  { name: 'condition', kind: { type: 'enum', values: CONDITIONS } },
  { name: 'label-column', kind: { type: 'int', min: 1 } },
  // Image targets (datasets/image-names.ts): the classes kept, e.g. 7,9 (cli/images.ts).
  { name: 'classes', kind: { type: 'string', meta: 'class numbers, e.g. 7,9' } },
  { name: 'option', kind: { type: 'keyvalue' }, repeatable: true },
  { name: 'steps', kind: { type: 'int', min: 1 } },
  { name: 'batch', kind: { type: 'int', min: MIN_BATCH, max: MAX_BATCH } },
  { name: 'lr', kind: { type: 'number', positive: true } },
  { name: 'seed', kind: SEED_KIND },
];

/** The kind of model flag `name` (a typo here is a programming error). */
export function flagKind(name: string): FlagKind {
  const spec = MODEL_FLAGS.find((s) => s.name === name);
  if (!spec) throw new Error(`flagKind: no model flag --${name}`);
  return spec.kind;
}

/**
 * `name` if it is a dataset of datasets/toy2d.ts or an image dataset (datasets/image-names.ts, e.g.
 * fashion-mnist:7,9), else a UsageError "LABEL: unknown dataset …" (label default --flag).
 */
export function checkDataset(flag: string, name: string, label = `--${flag}`): string {
  let image = false;
  try {
    image = parseImageDataset(name) !== null;
  } catch (e) {
    throw new UsageError(`${label}: ${(e as Error).message}`);
  }
  if (!image && !Object.hasOwn(DATASETS, name)) {
    throw new UsageError(`${label}: unknown dataset ${quote(name, 60)}${name.length <= 100 ? suggest(name, [...Object.keys(DATASETS), ...Object.keys(IMAGE_DATASETS)]) : ''}; accepted: ${Object.keys(DATASETS).join(', ')}, ${IMAGE_DATASET_NAMES.join(', ')} (or --data FILE for your own)`);
  }
  return name;
}

/** The number of hidden layers an option `hidden` asks for, as the trainers split it ("64,64", "64x64", [64, 64], 64). */
export function hiddenLayerCount(hidden: unknown): number {
  if (Array.isArray(hidden)) return hidden.length;
  if (typeof hidden === 'string') return hidden.split(/[,x ]+/).filter(Boolean).length;
  return 1;
}

/**
 * The resource bounds of the options (`label` names where they came from, e.g. "--option"): at
 * most MAX_HIDDEN_LAYERS hidden layers. Widths and flow layers are bounded by the trainers
 * (MAX_CFM_WIDTH, MAX_FLOW_WIDTH, MAX_FLOW_LAYERS), memory by cli/resources.ts.
 */
export function checkOptionBounds(options: Record<string, unknown>, label = '--option'): void {
  if (options.hidden !== undefined && hiddenLayerCount(options.hidden) > MAX_HIDDEN_LAYERS) {
    throw new UsageError(`${label} hidden: ${hiddenLayerCount(options.hidden)} hidden layers; accepted: 1 to ${MAX_HIDDEN_LAYERS} (widths up to ${MAX_CFM_WIDTH} for flow matching, ${MAX_FLOW_WIDTH} for flows)`);
  }
}
