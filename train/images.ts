/**
 * Image datasets as training data and as something to judge (issue 14), for every face: the
 * library's `train({ target: 'fashion-mnist' })` and `evaluateImages(model)` (api/) and `wgflow train
 * --target fashion-mnist` (cli/, which only adds its flag names, PNG files and the report) resolve,
 * load and evaluate image runs here, so the two give the same run and the same `images` block.
 *
 *  - names: `fashion-mnist`, `fashion-mnist:7,9` (some classes), `@pcaK` / `@pixels` (model space,
 *    default PCA 64; datasets/image-names.ts). A source naming an image class (`fashion-mnist:7`)
 *    makes an unpaired translation (OT-CFM between two classes' PCA codes); otherwise the source is
 *    N(0, I) (`gaussian`);
 *  - training rows: the images in model space (datasets/images.ts: the PCA basis fitted by wgflow
 *    on the training split, cached, found again from the name alone), their labels for
 *    `condition: 'labels'`, the source class's rows for translation;
 *  - evaluation: the model sampled with RK4 and judged by the classifier wgflow trains itself
 *    (evaluate/images.ts): Fréchet distance in its features (FID-style, not Inception FID) with its
 *    model-space floor, conditional accuracy, translation fraction and pixel distance vs a random
 *    pairing; returned with the pixel arrays the pictures are drawn from.
 *
 * Node only where it touches files (the IDX files, the cache): datasets/ and evaluate/ reach Node's
 * built-ins at call time, so a page bundle of the library still builds; `imageTraining` refuses
 * first, in a page, with a message saying why. Errors about names are RangeErrors that name the
 * value and what is accepted, worded with the caller's field names (`IMAGE_FIELDS_LIBRARY` or the
 * CLI's flags).
 */
import type { DataMatrix, Method, TrainState } from './contract';
import { familyOf } from './contract';
import { ALL_METHODS, TRAIN_DEFAULTS, usesSource, type TrainSpec } from './options';
import { imageData, type ImageData } from '../datasets/images';
import { IMAGE_DATASETS, imageDatasetName, isImageDataset, parseClasses, parseImageDataset } from '../datasets/image-names';
import * as ev from '../evaluate/images';
import type { GenerationMetrics, TranslationMetrics } from '../evaluate/images';
import { getBackend, init, mlpFallbackReason, tensor, type FusionLevel } from '../engine';
import { Rng } from '../engine/philox';
import { VectorField } from '../cfm/mlp';
import { odeSolve, readSolution } from '../cfm/ode';
import { configFrom, mlpConfigOf, paramsToFlat } from '../cfm/config';

/**
 * Defaults of image runs, as trainer options (visible in metrics.json and the reproduce command):
 * a wider field (256 × 3: 64 dimensions, not 2), the `layer` fusion level (measured on SwiftShader:
 * the whole-step kernel at these widths spent minutes compiling, README), and a lighter built-in
 * evaluation (its W2 and trajectories are of PCA codes; the image metrics are computed here).
 */
export const IMAGE_OPTION_DEFAULTS: Readonly<Record<string, unknown>> = { hidden: '256,256,256', fusion: 'layer', evalPoints: 512, solverSteps: 20, trajectoryPoints: 0, nllPoints: 0 };

/** Samples and translations judged after training, the RK4 steps they are drawn with, and the pictures' layout. */
export const IMAGE_EVAL = { samples: 1000, translations: 500, solverSteps: 20, times: 9, gridColumns: 12, strips: 10 } as const;

/** How errors name the caller's fields: the library's (`target`) or the command line's (`--target`). */
export interface ImageFields {
  target: string;
  source: string;
  classes: string;
}
export const IMAGE_FIELDS_LIBRARY: ImageFields = { target: 'target', source: 'source', classes: 'classes' };

const accepted = () => Object.keys(IMAGE_DATASETS).join(', ');

/**
 * The canonical image dataset `target` names, with a class list `classes` ("7,9") folded in, or null
 * for a target that is not an image dataset (a 2-D set). RangeError for a bad name or class list.
 */
export function imageTargetName(target: string | null | undefined, classes?: string, f: ImageFields = IMAGE_FIELDS_LIBRARY): string | null {
  let spec;
  try {
    spec = target === undefined || target === null ? null : parseImageDataset(target);
  } catch (e) {
    throw new RangeError(`${f.target}: ${(e as Error).message}`);
  }
  if (!spec) {
    if (classes !== undefined) throw new RangeError(`${f.classes}: only image datasets have classes (${accepted()}); ${f.target} is ${JSON.stringify(target ?? 'the default')}`);
    return null;
  }
  if (classes !== undefined) {
    if (spec.classes) throw new RangeError(`${f.classes}: ${f.target} ${target} already names its classes; give them once`);
    const list = parseClasses(spec.base, classes, f.classes);
    spec.classes = list.length === IMAGE_DATASETS[spec.base]!.classes.length ? null : list;
  }
  return imageDatasetName(spec);
}

/** The canonical image source `source`, checked against the image target `target` (same dataset, same model space). */
export function imageSourceName(source: string, target: string | null, f: ImageFields = IMAGE_FIELDS_LIBRARY): string {
  let spec;
  try {
    spec = parseImageDataset(source);
  } catch (e) {
    throw new RangeError(`${f.source}: ${(e as Error).message}`);
  }
  if (!spec) throw new RangeError(`${f.source}: ${JSON.stringify(source)} is not an image dataset`);
  const t = target ? parseImageDataset(target) : null;
  if (!t) throw new RangeError(`${f.source} ${source}: an image source translates to an image target of the same dataset (e.g. ${f.source} fashion-mnist:7 ${f.target} fashion-mnist:9); ${f.target} is ${JSON.stringify(target)}`);
  if (t.base !== spec.base || t.latent !== spec.latent) throw new RangeError(`${f.source} ${source}: source and target must be the same dataset in the same model space (target ${target})`);
  return imageDatasetName(spec);
}

/** Image datasets train with the flow-matching methods that take rows of any dimension (not sf2m, not the flows). */
export function checkImageMethod(method: Method, target: string, f: ImageFields = IMAGE_FIELDS_LIBRARY): void {
  if (familyOf(method) !== 'cfm' || method === 'sf2m') throw new RangeError(`${f.target} ${target}: image datasets train with the flow-matching methods otcfm, icfm, fm, sbcfm, vpcfm (method is ${method})`);
}

/** Image-run defaults (IMAGE_OPTION_DEFAULTS) filled into the options the caller left out. */
export function withImageDefaults(options: Record<string, unknown>): Record<string, unknown> {
  const o = { ...options };
  for (const [k, v] of Object.entries(IMAGE_OPTION_DEFAULTS)) if (o[k] === undefined) o[k] = v;
  return o;
}

/** Whether Node's file access is here (process.getBuiltinModule, Node ≥ 20.16): image datasets are files. */
export function canReadImageFiles(): boolean {
  return typeof (globalThis as { process?: { getBuiltinModule?: unknown } }).process?.getBuiltinModule === 'function';
}

/** Refuses, outside Node, with a message saying why and what to do instead. */
function needFiles(name: string): void {
  if (!canReadImageFiles()) {
    throw new Error(`${JSON.stringify(name)}: image datasets are read from files (the IDX files and a PCA cache), in Node only (>= 20.16); in a page, train on rows you give: train({ data, ... })`);
  }
}

export interface ImageTraining {
  data: DataMatrix;
  labels?: { labels: Uint8Array; numClasses: number };
  sourceData?: DataMatrix;
  target: ImageData;
  source: ImageData | null;
}

/**
 * The training rows of an image run from its canonical target/source names and options: the target
 * images in model space, their labels when options.condition is 'labels', the source images for a
 * translation. `note` hears about a PCA fit (seconds, once). Throws, in a page, an Error saying that
 * image datasets are read from files; a missing file or bad name throws as datasets/images.ts does.
 */
export function imageTraining(target: string, source: string | null, options: Record<string, unknown>, note?: (line: string) => void): ImageTraining {
  needFiles(target);
  const t = imageData(target, 'train', note);
  const s = source && isImageDataset(source) ? imageData(source, 'train', note) : null;
  const out: ImageTraining = { data: t.data, target: t, source: s };
  if (options.condition === 'labels') out.labels = { labels: t.labels, numClasses: IMAGE_DATASETS[t.spec.base]!.classes.length };
  if (s) out.sourceData = s.data;
  return out;
}

/**
 * A library TrainSpec whose target names an image dataset, resolved as `wgflow train` resolves the
 * same flags (cli/config.ts): the canonical names, a method that trains on images, the source N(0, I)
 * (`gaussian`) unless it names an image class (translation), IMAGE_OPTION_DEFAULTS under the
 * caller's options, and the rows loaded (target, labels for condition 'labels', source). Null when
 * the spec names no image dataset, brings its own `data` (then the target is only its name), or has
 * a method or options train/options.ts will refuse. Node only (reads the files); `note` hears about a PCA fit.
 */
export function imageTrainSpec(spec: TrainSpec, note?: (line: string) => void): TrainSpec | null {
  if (!spec || typeof spec !== 'object' || spec.data) return null;
  const method = spec.method ?? TRAIN_DEFAULTS.method;
  // A bad method or options are train/options.ts's to refuse, with its message.
  if (!ALL_METHODS.includes(method)) return null;
  if (spec.options !== undefined && (spec.options === null || typeof spec.options !== 'object' || Array.isArray(spec.options))) return null;
  const target = imageTargetName(spec.target);
  const imageSource = typeof spec.source === 'string' && Object.hasOwn(IMAGE_DATASETS, spec.source.split(/[:@]/)[0]!);
  if (!target) {
    if (imageSource) imageSourceName(spec.source!, spec.target ?? null); // throws: an image source needs an image target
    return null;
  }
  checkImageMethod(method, target);
  for (const k of ['labels', 'context', 'sourceData'] as const) {
    if (spec[k]) throw new RangeError(`${k}: the image target ${target} brings its own rows${k === 'labels' ? ' and labels (options.condition \'labels\')' : ''}; leave ${k} out, or give data with it`);
  }
  let source = spec.source ?? null;
  if (usesSource(method)) source = imageSource ? imageSourceName(spec.source!, target) : (source ?? 'gaussian');
  const options = withImageDefaults(spec.options ?? {});
  const rows = imageTraining(target, source, options, note);
  const out: TrainSpec = { ...spec, target, source, options, data: rows.data };
  if (rows.labels) out.labels = rows.labels;
  if (rows.sourceData) out.sourceData = rows.sourceData;
  return out;
}

/**
 * A model's model-space rows (n × dim, as sample() gives them; `k` = the model space's dimension,
 * any columns after it, e.g. a label column, are kept last) as pixels in [−1, 1] (n × side²).
 * The basis comes back from the dataset's name (datasets/images.ts: cached, or fitted again to the
 * same numbers). Node only.
 */
export function imageSamplesToPixels(target: string, s: DataMatrix, k: number): DataMatrix {
  needFiles(target);
  if (!(Number.isInteger(k) && k >= 1 && s.dim >= k && s.data.length === s.n * s.dim)) throw new RangeError(`samples: expected n × dim model-space rows with dim ≥ ${k} (the model's dimension) and n × dim values; got ${s.data.length} values for n = ${s.n}, dim = ${s.dim}`);
  const t = imageData(target, 'train');
  if (k !== t.data.dim) throw new RangeError(`samples: a model of dimension ${k} is not a model of ${t.name}, whose model space has ${t.data.dim} dimensions`);
  const extra = s.dim - k;
  const z = new Float32Array(s.n * k);
  for (let i = 0; i < s.n; i++) z.set(s.data.subarray(i * s.dim, i * s.dim + k), i * k);
  const px = t.toPixels(z, s.n);
  const D = t.side * t.side;
  if (extra === 0) return { data: px, n: s.n, dim: D };
  const out = new Float32Array(s.n * (D + extra));
  for (let i = 0; i < s.n; i++) {
    out.set(px.subarray(i * D, (i + 1) * D), i * (D + extra));
    out.set(s.data.subarray(i * s.dim + k, (i + 1) * s.dim), i * (D + extra) + D);
  }
  return { data: out, n: s.n, dim: D + extra };
}

/** The `images` block of a run's metrics.json (the CLI writes it as is). */
export type ImageMetrics = {
  dataset: string;
  /** `pca64`, `pcaK` or `pixels`. */
  model_space: string;
  /** Fraction of the pixel variance the model space keeps (1 for pixels). */
  explained_variance: number;
  evaluator: { steps: number; test_accuracy: number; solver: string };
  /** The fusion level the samples were drawn at, and why it fell back to `layer` (null: it did not). */
  fusion: { level: string; fallback: string | null };
  generation?: GenerationMetrics;
  translation?: TranslationMetrics;
};

/** The pixels the metrics were computed from: rows of side² values in [−1, 1] (1 is ink), row-major. */
export interface ImagePixels {
  side: number;
  /** Generation: the IMAGE_EVAL.samples images drawn from the model. */
  samples?: Float32Array;
  /** Conditional generation: the class each of `samples` was drawn for (classes cycled). */
  sampleLabels?: Uint8Array;
  /** Conditional generation: for each class trained on, up to IMAGE_EVAL.gridColumns of its samples. */
  perClass?: { classes: number[]; rows: Float32Array[] };
  /** Translation: source test images as the model sees them (their model-space round trip), and their translations, row-aligned. */
  sources?: Float32Array;
  translations?: Float32Array;
  /** Translation: the first IMAGE_EVAL.strips sources along the ODE, one array per time of `times` (t = 0 … 1). */
  trajectory?: Float32Array[];
  times?: number[];
}

export interface ImageEvaluation {
  metrics: ImageMetrics;
  pixels: ImagePixels;
}

export interface ImageEvalOptions {
  /** The canonical names the model was trained on (its config's target and source). */
  target: string;
  source: string | null;
  /** Keys the Philox stream of the generation's starting points (the run's seed). */
  seed: number;
  /** Hears about the evaluator: trained on first use (minutes on SwiftShader), then cached. */
  note?: (line: string) => void;
  /**
   * The ODE solver the images are drawn with (default RK4, IMAGE_EVAL.solverSteps steps). Fewer
   * steps ask how straight the learned paths are: OT-CFM's claim over I-CFM is at low NFE.
   */
  solver?: ImageSolver;
}

/** A solver of the image evaluation: a fixed-step one (dopri5 adapts, sde needs a score). */
export type ImageSolver = { solver: 'euler' | 'midpoint' | 'rk4'; steps: number };
export const IMAGE_SOLVERS = ['euler', 'midpoint', 'rk4'] as const;

/** Checks an ImageSolver: a fixed-step solver and 1 to 10 000 steps (RangeError naming the value). */
export function checkImageSolver(s: ImageSolver): ImageSolver {
  if (!(IMAGE_SOLVERS as readonly string[]).includes(s.solver)) throw new RangeError(`solver: ${JSON.stringify(s.solver)} is not accepted for image metrics; accepted: ${IMAGE_SOLVERS.join(', ')} (fixed steps)`);
  if (!Number.isInteger(s.steps) || s.steps < 1 || s.steps > 10_000) throw new RangeError(`solver steps: ${s.steps} is not accepted; accepted: an integer from 1 to 10000`);
  return s;
}

/** The solver image metrics use unless told otherwise. */
export const DEFAULT_IMAGE_SOLVER: ImageSolver = { solver: 'rk4', steps: IMAGE_EVAL.solverSteps };

/**
 * x₁ = ODE(v, x₀) for n model-space rows x₀ (default RK4, IMAGE_EVAL.solverSteps steps; a conditional
 * field's context rows alongside), with the states at `times` (t = 0 … 1) when asked.
 */
async function solveRows(vf: VectorField, fusion: FusionLevel, x0: Float32Array, n: number, context?: { rows: Float32Array; cols: number }, times?: number[], solver: ImageSolver = DEFAULT_IMAGE_SOLVER): Promise<{ x: Float32Array; traj: Float32Array[] }> {
  const d = x0.length / n;
  const xt = tensor(x0, [n, d]);
  const ct = context ? tensor(context.rows, [n, context.cols]) : undefined;
  try {
    const { x, trajectory } = await readSolution(await odeSolve(vf, xt, { solver: solver.solver, steps: solver.steps, fusion, times, ...(ct ? { context: ct } : {}) }));
    return { x, traj: trajectory };
  } finally {
    xt.dispose();
    ct?.dispose();
  }
}

/** The engine's device, or Node's (Dawn) acquired when there is none. */
async function ensureNodeDevice(): Promise<void> {
  try {
    getBackend();
  } catch {
    const { prepareDawnEnvironment } = await import('../engine/dawn-env');
    prepareDawnEnvironment();
    await init({ runtime: 'node' });
  }
}

/**
 * An unpaired translation model's map applied to the first n test images of its source class
 * (`wgflow sample` on such a checkpoint; the model was trained from `source` to `target`):
 * the sources as the model sees them (their model-space round trip) and their translations,
 * n × side² pixels each, row-aligned.
 */
export async function translateImages(config: Record<string, unknown>, params: TrainState['params'], opts: { target: string; source: string; n: number }): Promise<{ sources: Float32Array; translations: Float32Array; n: number; side: number }> {
  needFiles(opts.target);
  await ensureNodeDevice();
  const c = configFrom(config);
  const t = imageData(opts.target, 'train');
  const s = parseImageDataset(opts.source);
  if (!s) throw new RangeError(`source: ${JSON.stringify(opts.source)} is not an image dataset; only a translation model (trained from an image class) translates images`);
  if (c.dim !== t.data.dim) throw new RangeError(`model: dimension ${c.dim} is not that of ${t.name}'s model space (${t.data.dim}); was it trained on these images?`);
  const test = ev.testImages(t.spec.base, s.classes);
  if (!Number.isInteger(opts.n) || opts.n < 1 || opts.n > test.n) throw new RangeError(`n: ${opts.n} translations asked; the test split has ${test.n} images of ${opts.source} (accepted: 1 to ${test.n})`);
  const z0 = t.fromPixels(test.x.subarray(0, opts.n * t.side * t.side), opts.n);
  const vf = new VectorField(mlpConfigOf(c), paramsToFlat(c, params));
  try {
    const { x } = await solveRows(vf, c.fusion ?? 'step', z0, opts.n);
    return { sources: t.toPixels(z0, opts.n), translations: t.toPixels(x, opts.n), n: opts.n, side: t.side };
  } finally {
    vf.dispose();
  }
}

/**
 * Samples a trained image model (config: the trainer's resolved CfmConfig; params: a state's) and
 * judges it with the evaluator wgflow trains (evaluate/images.ts). Generation: IMAGE_EVAL.samples
 * draws x₁ = ODE_RK4(v, x₀ ~ N(0, I)) (conditional models: classes in turn), the Fréchet distance
 * ‖μ−μ'‖² + tr(Σ + Σ' − 2(ΣΣ')^½) of their classifier features to the test images' (and of the
 * test images' model-space round trip: the floor a perfect model of that space would reach).
 * Translation: up to IMAGE_EVAL.translations source-class test images carried by the ODE, the
 * fraction classified as the target class, and the mean pixel distance ‖x − T(x)‖₂ against a random
 * pairing. Runs on the engine's current device, or acquires Node's (Dawn) when there is none.
 */
export async function evaluateImageModel(config: Record<string, unknown>, params: TrainState['params'], opts: ImageEvalOptions): Promise<ImageEvaluation> {
  const note = opts.note ?? (() => {});
  const solver = checkImageSolver(opts.solver ?? DEFAULT_IMAGE_SOLVER);
  needFiles(opts.target);
  await ensureNodeDevice();
  const c = configFrom(config);
  const t = imageData(opts.target, 'train');
  if (c.dim !== t.data.dim) throw new RangeError(`model: dimension ${c.dim} is not that of ${t.name}'s model space (${t.data.dim}); was it trained on these images?`);
  const base = t.spec.base;
  const side = t.side;
  const D = side * side;
  const evaluator = await ev.imageEvaluator(base, note);
  note(`judging the model's images with the evaluator (${evaluator.steps} steps, test accuracy ${(100 * evaluator.testAccuracy).toFixed(1)} %${evaluator.cached ? ', cached' : ''})`);
  const vf = new VectorField(mlpConfigOf(c), paramsToFlat(c, params));
  const fusion = c.fusion ?? 'step';
  const fallback = fusion === 'step' ? mlpFallbackReason(vf.layout.dims) : null;
  const K = IMAGE_DATASETS[base]!.classes.length;
  const pixels: ImagePixels = { side };
  const metrics: ImageMetrics = { dataset: t.name, model_space: t.pca ? `pca${t.pca.k}` : 'pixels', explained_variance: t.pca ? +t.pca.explained.toFixed(4) : 1, evaluator: { steps: evaluator.steps, test_accuracy: evaluator.testAccuracy, solver: `${solver.solver} ${solver.steps} step${solver.steps === 1 ? '' : 's'}` }, fusion: { level: fallback ? 'layer' : fusion, fallback } };
  const solve = (x0: Float32Array, n: number, context?: Float32Array, times?: number[]) => solveRows(vf, fusion, x0, n, context ? { rows: context, cols: K } : undefined, times, solver);
  try {
    if (opts.source && isImageDataset(opts.source)) {
      // Translation: test images of the source class to the target class.
      const s = parseImageDataset(opts.source)!;
      const srcTest = ev.testImages(base, s.classes, IMAGE_EVAL.translations);
      const tgtTest = ev.testImages(base, t.spec.classes);
      const z0 = t.fromPixels(srcTest.x, srcTest.n);
      const times = Array.from({ length: IMAGE_EVAL.times }, (_, i) => i / (IMAGE_EVAL.times - 1));
      const { x, traj } = await solve(z0, srcTest.n, undefined, times);
      const outPx = t.toPixels(x, srcTest.n);
      // The source as the model sees it (its PCA reconstruction), so the distance measures the map, not the projection.
      const srcPx = t.toPixels(z0, srcTest.n);
      metrics.translation = await ev.translationMetrics(evaluator, srcPx, outPx, srcTest.n, tgtTest.x, tgtTest.n, s.classes?.[0] ?? -1, t.spec.classes?.[0] ?? -1);
      const m = Math.min(IMAGE_EVAL.strips, srcTest.n);
      Object.assign(pixels, { sources: srcPx, translations: outPx, trajectory: traj.map((z) => t.toPixels(z.subarray(0, m * c.dim), m)), times });
    } else {
      const n = IMAGE_EVAL.samples;
      const rng = new Rng(opts.seed, 0x7e57_0001);
      const z0 = Float32Array.from({ length: n * c.dim }, () => rng.normal());
      const classes = t.spec.classes ?? [...Array(K).keys()];
      let asked: Uint8Array | null = null;
      let context: Float32Array | undefined;
      if (c.condition) {
        asked = Uint8Array.from({ length: n }, (_, i) => classes[i % classes.length]!);
        context = new Float32Array(n * K);
        asked.forEach((a, i) => (context![i * K + a] = 1));
      }
      const { x } = await solve(z0, n, context);
      const px = t.toPixels(x, n);
      const test = ev.testImages(base, t.spec.classes, n);
      const rec = t.toPixels(t.fromPixels(test.x, test.n), test.n);
      metrics.generation = await ev.generationMetrics(evaluator, px, n, t.spec.classes, asked, { x: rec, n: test.n });
      pixels.samples = px;
      if (asked) {
        const rows = classes.map((k) => {
          const idx = [...asked!.keys()].filter((i) => asked![i] === k).slice(0, IMAGE_EVAL.gridColumns);
          const out = new Float32Array(idx.length * D);
          idx.forEach((r, j) => out.set(px.subarray(r * D, (r + 1) * D), j * D));
          return out;
        });
        pixels.sampleLabels = asked;
        pixels.perClass = { classes: [...classes], rows };
      }
    }
  } finally {
    vf.dispose();
  }
  return { metrics, pixels };
}
