/**
 * `wgflow train` on image datasets (issue 14): `--target fashion-mnist` (optionally `--classes 7,9`,
 * or `fashion-mnist:7,9`; `@pixels` or `@pcaK` picks the model space, default PCA 64), class-
 * conditional with `--condition labels`, and unpaired translation with `--source fashion-mnist:7
 * --target fashion-mnist:9` (OT-CFM between the two classes' PCA codes).
 *
 * The images are read and projected here, in Node, and handed to the trainer as data (so both
 * runtimes train on them); the checkpoint stores the dataset's name, from which the same PCA basis
 * comes back (datasets/images.ts: fitted deterministically, cached). After training, the model is
 * sampled here on Node's WebGPU and judged by the evaluator that wgflow trained (evaluate/images.ts);
 * the pictures (cli/image-pictures.ts) replace the 2-D scatter plots under the same file names.
 */
import type { DataMatrix, TrainState } from '../train/contract';
import { imageData, type ImageData } from '../datasets/images';
import { IMAGE_DATASETS, imageDatasetName, isImageDataset, parseClasses, parseImageDataset } from '../datasets/image-names';
import { UsageError } from './args';
import type { Pictures } from './pictures';

/**
 * Defaults of image runs, as trainer options (visible in metrics.json and the reproduce command):
 * a wider field (256 × 3: 64 dimensions, not 2), the `layer` fusion level (measured on SwiftShader:
 * the whole-step kernel at these widths spent minutes compiling, README), and a lighter built-in
 * evaluation (its W2 and trajectories are of PCA codes; the image metrics are computed here).
 */
export const IMAGE_OPTION_DEFAULTS: Record<string, unknown> = { hidden: '256,256,256', fusion: 'layer', evalPoints: 512, solverSteps: 20, trajectoryPoints: 0, nllPoints: 0 };

/** Samples and translations judged after training, and the RK4 steps they are drawn with. */
export const IMAGE_EVAL = { samples: 1000, translations: 500, solverSteps: 20, times: 9, gridColumns: 12, strips: 10 } as const;

/** The canonical image dataset of --target (with --classes folded in), or null for a 2-D target. */
export function imageTargetName(target: string | undefined, classes: string | undefined): string | null {
  let spec;
  try {
    spec = target === undefined ? null : parseImageDataset(target);
  } catch (e) {
    throw new UsageError(`--target: ${(e as Error).message}`);
  }
  if (!spec) {
    if (classes !== undefined) throw new UsageError(`--classes: only image datasets have classes (${Object.keys(IMAGE_DATASETS).join(', ')}); --target is ${JSON.stringify(target ?? 'the default')}`);
    return null;
  }
  if (classes !== undefined) {
    if (spec.classes) throw new UsageError(`--classes: --target ${target} already names its classes; give them once`);
    try {
      const list = parseClasses(spec.base, classes, '--classes');
      spec.classes = list.length === IMAGE_DATASETS[spec.base]!.classes.length ? null : list;
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return imageDatasetName(spec);
}

/** The canonical image source of --source, checked against the target (same dataset and model space). */
export function imageSourceName(source: string, target: string | null): string {
  let spec;
  try {
    spec = parseImageDataset(source);
  } catch (e) {
    throw new UsageError(`--source: ${(e as Error).message}`);
  }
  if (!spec) throw new UsageError(`--source: ${JSON.stringify(source)} is not an image dataset`);
  const t = target ? parseImageDataset(target) : null;
  if (!t) throw new UsageError(`--source ${source}: an image source translates to an image target of the same dataset (e.g. --source fashion-mnist:7 --target fashion-mnist:9); --target is ${JSON.stringify(target)}`);
  if (t.base !== spec.base || t.latent !== spec.latent) throw new UsageError(`--source ${source}: source and target must be the same dataset in the same model space (target ${target})`);
  return imageDatasetName(spec);
}

export interface ImageTraining {
  data: DataMatrix;
  labels?: { labels: Uint8Array; numClasses: number };
  sourceData?: DataMatrix;
  target: ImageData;
  source: ImageData | null;
}

/** The training data of an image run (its stored target/source names and options). */
export function imageTraining(target: string, source: string | null, options: Record<string, unknown>, note?: (line: string) => void): ImageTraining {
  let t: ImageData, s: ImageData | null = null;
  try {
    t = imageData(target, 'train', note);
    if (source && isImageDataset(source)) s = imageData(source, 'train', note);
  } catch (e) {
    throw new UsageError(`--target ${target}: ${(e as Error).message}`);
  }
  const out: ImageTraining = { data: t.data, target: t, source: s };
  if (options.condition === 'labels') out.labels = { labels: t.labels, numClasses: IMAGE_DATASETS[t.spec.base]!.classes.length };
  if (s) out.sourceData = s.data;
  return out;
}

/** Image-run defaults filled into options the user left out. */
export function withImageDefaults(options: Record<string, unknown>): Record<string, unknown> {
  const o = { ...options };
  for (const [k, v] of Object.entries(IMAGE_OPTION_DEFAULTS)) if (o[k] === undefined) o[k] = v;
  return o;
}

export interface ImageRunResult {
  pictures: Pictures;
  metrics: Record<string, unknown>;
}

/**
 * Samples the trained model (config: the trainer's resolved CfmConfig; params: the final state's)
 * on Node's WebGPU and measures it with the evaluator; returns the pictures and the `images` block
 * of metrics.json.
 */
export async function evaluateImageRun(config: Record<string, unknown>, params: TrainState['params'], target: string, source: string | null, seed: number, note: (line: string) => void): Promise<ImageRunResult> {
  const { prepareDawnEnvironment } = await import('../engine/dawn-env');
  prepareDawnEnvironment();
  const { init, tensor } = await import('../engine');
  const { Rng } = await import('../engine/philox');
  const { VectorField } = await import('../cfm/mlp');
  const { odeSolve } = await import('../cfm/ode');
  const { configFrom, mlpConfigOf, paramsToFlat } = await import('../cfm/train');
  const ev = await import('../evaluate/images');
  const { classGrid, imageGrid, trajectoryStrips } = await import('./image-pictures');
  const { pngOf } = await import('./pictures');
  await init({ runtime: 'node' });
  const c = configFrom(config);
  const t = imageData(target, 'train');
  const base = t.spec.base;
  const side = t.side;
  const D = side * side;
  const evaluator = await ev.imageEvaluator(base, note);
  note(`judging the model's images with the evaluator (${evaluator.steps} steps, test accuracy ${(100 * evaluator.testAccuracy).toFixed(1)} %${evaluator.cached ? ', cached' : ''})`);
  const vf = new VectorField(mlpConfigOf(c), paramsToFlat(c, params));
  const fusion = c.fusion ?? 'step';
  const { mlpFallbackReason } = await import('../engine');
  const fallback = fusion === 'step' ? mlpFallbackReason(vf.layout.dims) : null;
  const K = IMAGE_DATASETS[base]!.classes.length;
  const pictures: Pictures = {};
  const metrics: Record<string, unknown> = { dataset: t.name, model_space: t.pca ? `pca${t.pca.k}` : 'pixels', explained_variance: t.pca ? +t.pca.explained.toFixed(4) : 1, evaluator: { steps: evaluator.steps, test_accuracy: evaluator.testAccuracy, solver: `rk4 ${IMAGE_EVAL.solverSteps} steps` }, fusion: { level: fallback ? 'layer' : fusion, fallback } };
  const solve = async (x0: Float32Array, n: number, context?: Float32Array, times?: number[]) => {
    const xt = tensor(x0, [n, c.dim]);
    const ct = context ? tensor(context, [n, K]) : undefined;
    const sol = await odeSolve(vf, xt, { solver: 'rk4', steps: IMAGE_EVAL.solverSteps, fusion, times, ...(ct ? { context: ct } : {}) });
    const x = await sol.x.data();
    const traj: Float32Array[] = [];
    for (const s of sol.trajectory) {
      traj.push(await s.data());
      s.dispose();
    }
    sol.x.dispose();
    xt.dispose();
    ct?.dispose();
    return { x, traj };
  };
  try {
    if (source && isImageDataset(source)) {
      // Translation: test images of the source class to the target class.
      const s = parseImageDataset(source)!;
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
      pictures['trajectories.png'] = await pngOf(trajectoryStrips(traj.map((z) => t.toPixels(z.subarray(0, m * c.dim), m)), side, m));
      pictures['samples.png'] = await pngOf(imageGrid(interleave(srcPx, outPx, D, Math.min(48, srcTest.n)), side, 8, 12));
    } else {
      const n = IMAGE_EVAL.samples;
      const rng = new Rng(seed, 0x7e57_0001);
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
      if (asked) {
        const per = classes.map((k) => {
          const rows = [...asked!.keys()].filter((i) => asked![i] === k).slice(0, IMAGE_EVAL.gridColumns);
          const out = new Float32Array(rows.length * D);
          rows.forEach((r, j) => out.set(px.subarray(r * D, (r + 1) * D), j * D));
          return out;
        });
        pictures['samples.png'] = await pngOf(classGrid(per, classes, side, IMAGE_EVAL.gridColumns));
      } else {
        pictures['samples.png'] = await pngOf(imageGrid(px, side, 8, IMAGE_EVAL.gridColumns));
      }
    }
  } finally {
    vf.dispose();
  }
  return { pictures, metrics };
}

/** Rows of pairs: source image i then its translation, `count` pairs (row-major, side² each). */
function interleave(a: Float32Array, b: Float32Array, D: number, count: number): Float32Array {
  const out = new Float32Array(2 * count * D);
  for (let i = 0; i < count; i++) {
    out.set(a.subarray(i * D, (i + 1) * D), 2 * i * D);
    out.set(b.subarray(i * D, (i + 1) * D), (2 * i + 1) * D);
  }
  return out;
}

/**
 * `wgflow sample` on an image checkpoint: its model-space rows (n × k, plus a conditional model's
 * label column) as pixels in [−1, 1] (n × side², the label column kept last). The basis comes back
 * from the dataset's name (datasets/images.ts: cached, or fitted again to the same numbers).
 */
export function imageSamplesToPixels(target: string, s: DataMatrix, k: number): DataMatrix {
  const t = imageData(target, 'train');
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
