/**
 * Classifier-based metrics of image models (issue 14), with the evaluator trained by wgflow itself
 * (evaluate/classifier.ts) and cached:
 *
 *  - Fréchet distance (evaluate/frechet.ts) between generated images and the test images of the
 *    same classes in the classifier's penultimate features: an FID-style score for comparing wgflow's
 *    own models, NOT comparable to Inception FID (other network, other features, 28×28 grey images);
 *  - conditional accuracy: the fraction of class-conditional samples the classifier assigns to the
 *    class asked for;
 *  - translation: the fraction of translated images classified as the target class, and the mean
 *    pixel distance ‖x − T(x)‖₂ between each source image and its translation against that between
 *    the source image and a random target-class image (an OT map should stay closer than chance).
 *
 * The evaluator (an MLP 784 → 256 → 128 → 10, Adam 1e-3, batch 256, seed 0, 1 500 steps on the whole
 * training split: 87.8 % test accuracy, README) is trained on first use, which takes minutes on
 * SwiftShader, and kept with its test-set features in the cache folder (datasets/images.ts
 * imageCacheDir) under the data files' fingerprint and its step count. WGFLOW_EVALUATOR_STEPS sets
 * the step count (for tests and quick looks: fewer steps give a weaker evaluator, so the metrics of
 * runs are comparable only at the same count, which metrics.json records). Node only.
 */
import { nodeFs, nodePath } from '../io/atomic';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors';
import { dataFingerprint, imageCacheDir, loadImageSplit, selectClasses } from '../datasets/images';
import { IMAGE_DATASETS } from '../datasets/image-names';
import { accuracy, Classifier, classify, trainClassifier, withDefaults, type ClassifierConfig } from './classifier';
import { frechetDistance, frechetTerms, gaussianStats } from './frechet';

export const EVALUATOR = { hidden: [256, 128], steps: 1500, batch: 256, lr: 1e-3, seed: 0 } as const;

/** The evaluator's training steps: WGFLOW_EVALUATOR_STEPS, else 1 500. */
export function evaluatorSteps(): number {
  const v = process.env.WGFLOW_EVALUATOR_STEPS;
  if (v === undefined || v === '') return EVALUATOR.steps;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new RangeError(`WGFLOW_EVALUATOR_STEPS=${JSON.stringify(v.slice(0, 20))} is not accepted; accepted: an integer from 1 to 1000000 (default ${EVALUATOR.steps})`);
  return n;
}

export interface ImageEvaluator {
  model: Classifier;
  steps: number;
  testAccuracy: number;
  /** Penultimate features (n × featureDim) and labels of the whole test split. */
  testFeatures: Float32Array;
  testLabels: Uint8Array;
  featureDim: number;
  /** Whether it came from the cache. */
  cached: boolean;
}

/** The evaluator of dataset `base` (see the file comment); `onNote` hears about a training that takes minutes. */
export async function imageEvaluator(base: string, onNote?: (line: string) => void): Promise<ImageEvaluator> {
  const side = IMAGE_DATASETS[base]!.side;
  const steps = evaluatorSteps();
  const cfg: ClassifierConfig = { inputDim: side * side, classes: IMAGE_DATASETS[base]!.classes.length, hidden: [...EVALUATOR.hidden], steps, batch: EVALUATOR.batch, lr: EVALUATOR.lr, seed: EVALUATOR.seed };
  // Node's fs at call time (io/atomic.ts): a page bundle of the library reaches this module.
  const path = nodePath(), { existsSync, mkdirSync } = nodeFs();
  const file = path.join(imageCacheDir(), `${base}-evaluator-s${steps}-${dataFingerprint(base)}.safetensors`);
  const test = loadImageSplit(base, 'test');
  if (existsSync(file)) {
    try {
      const st = readSafetensorsFile(file);
      const model = new Classifier(withDefaults(cfg));
      model.params.load(st.tensors);
      const feats = st.tensors['test.features'];
      const fd = model.dims.at(-2)!;
      if (feats && feats.data.length === test.n * fd) {
        return { model, steps, testAccuracy: Number(st.metadata.test_accuracy), testFeatures: feats.data, testLabels: test.labels, featureDim: fd, cached: true };
      }
      model.dispose();
    } catch {
      // unreadable: train again
    }
  }
  onNote?.(`training the ${base} evaluator (MLP ${[side * side, ...EVALUATOR.hidden, cfg.classes].join('→')}, ${steps} steps; once, then cached in ${path.dirname(file)})`);
  const train = loadImageSplit(base, 'train');
  const t0 = performance.now();
  const model = await trainClassifier(train.images, train.labels, cfg, {
    every: 100,
    onProgress: (p) => onNote?.(`evaluator step ${p.step}/${p.steps}, loss ${p.loss.toFixed(4)} (${((performance.now() - t0) / p.step / 1000).toFixed(2)} s/step)`),
  });
  const out = await classify(model, test.images, test.n);
  const testAccuracy = accuracy(out.labels, test.labels);
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    const params = await model.params.read();
    writeSafetensorsFile(file, { ...params, 'test.features': { data: out.features, shape: [test.n, out.featureDim] } }, { test_accuracy: String(testAccuracy), steps: String(steps) });
  } catch {
    // a read-only cache: trained again next time
  }
  return { model, steps, testAccuracy, testFeatures: out.features, testLabels: test.labels, featureDim: out.featureDim, cached: false };
}

/** Test-set features of the classes given (all when null). */
function testFeaturesOf(ev: ImageEvaluator, classes: readonly number[] | null): { x: Float32Array; n: number } {
  if (!classes) return { x: ev.testFeatures, n: ev.testLabels.length };
  const keep = new Set(classes);
  const rows: number[] = [];
  ev.testLabels.forEach((l, i) => keep.has(l) && rows.push(i));
  const x = new Float32Array(rows.length * ev.featureDim);
  rows.forEach((r, i) => x.set(ev.testFeatures.subarray(r * ev.featureDim, (r + 1) * ev.featureDim), i * ev.featureDim));
  return { x, n: rows.length };
}

export interface GenerationMetrics {
  /** Fréchet distance to the test images of the same classes (classifier features; not Inception FID). */
  frechet: number;
  /** The same score of as many test images passed through the model space (PCA and back): what a perfect model of that space would get. */
  frechet_floor: number;
  /** Of the Fréchet distance: the mean term ‖μ_samples − μ_test‖², and the samples' total feature variance over the test images' (below 1: less varied than the data). */
  frechet_mean_term: number;
  feature_spread: number;
  samples: number;
  /** Fraction of samples the evaluator puts in each class 0..K−1. */
  class_fractions: number[];
  /** Conditional models: the fraction classified as the class asked for, overall and per class. */
  conditional_accuracy?: number;
  conditional_accuracy_per_class?: Record<string, number>;
}

/**
 * Metrics of n generated images (pixels, n × side²). `classes` are the classes the model was trained
 * on (null: all); `asked`, for conditional models, the class each sample was generated for;
 * `reconstructed` the model-space round trip of test images (for the floor).
 */
export async function generationMetrics(ev: ImageEvaluator, pixels: Float32Array, n: number, classes: readonly number[] | null, asked: Uint8Array | null, reconstructed: { x: Float32Array; n: number }): Promise<GenerationMetrics> {
  const out = await classify(ev.model, pixels, n);
  const ref = testFeaturesOf(ev, classes);
  const refStats = gaussianStats(ref.x, ref.n, ev.featureDim);
  const genStats = gaussianStats(out.features, n, ev.featureDim);
  const frechet = frechetDistance(genStats, refStats);
  const terms = frechetTerms(genStats, refStats);
  const rec = await classify(ev.model, reconstructed.x, reconstructed.n);
  const floor = frechetDistance(gaussianStats(rec.features, reconstructed.n, ev.featureDim), refStats);
  const K = ev.model.cfg.classes;
  const counts = new Array<number>(K).fill(0);
  for (const l of out.labels) counts[l]!++;
  const m: GenerationMetrics = { frechet, frechet_floor: floor, frechet_mean_term: terms.mean, feature_spread: terms.traceA / terms.traceB, samples: n, class_fractions: counts.map((c) => c / n) };
  if (asked) {
    m.conditional_accuracy = accuracy(out.labels, asked);
    const per: Record<string, number> = {};
    for (const c of new Set(asked)) {
      let ok = 0, all = 0;
      asked.forEach((a, i) => {
        if (a !== c) return;
        all++;
        if (out.labels[i] === c) ok++;
      });
      per[String(c)] = ok / all;
    }
    m.conditional_accuracy_per_class = per;
  }
  return m;
}

export interface TranslationMetrics {
  source_class: number;
  target_class: number;
  images: number;
  /** Fraction of translations classified as the target class (and of the sources, before). */
  target_class_fraction: number;
  source_images_target_fraction: number;
  /** Mean ‖x − T(x)‖₂ in pixels ([−1, 1] scale) against a random pairing with target-class test images. */
  mean_distance: number;
  random_pairing_distance: number;
}

const dist = (a: Float32Array, i: number, b: Float32Array, j: number, d: number) => {
  let s = 0;
  for (let k = 0; k < d; k++) s += (a[i * d + k]! - b[j * d + k]!) ** 2;
  return Math.sqrt(s);
};

/**
 * Translation metrics of m source images (pixels) and their translations; `targets` are target-class
 * test images, paired with the sources at random (a fixed derangement by index: source i with target
 * (i·7919 + 13) mod count) for the chance distance.
 */
export async function translationMetrics(ev: ImageEvaluator, source: Float32Array, translated: Float32Array, m: number, targets: Float32Array, targetCount: number, sourceClass: number, targetClass: number): Promise<TranslationMetrics> {
  const d = source.length / m;
  const out = await classify(ev.model, translated, m);
  const before = await classify(ev.model, source, m);
  let hit = 0, hitBefore = 0, dT = 0, dR = 0;
  for (let i = 0; i < m; i++) {
    if (out.labels[i] === targetClass) hit++;
    if (before.labels[i] === targetClass) hitBefore++;
    dT += dist(source, i, translated, i, d);
    dR += dist(source, i, targets, (i * 7919 + 13) % targetCount, d);
  }
  return { source_class: sourceClass, target_class: targetClass, images: m, target_class_fraction: hit / m, source_images_target_fraction: hitBefore / m, mean_distance: dT / m, random_pairing_distance: dR / m };
}

/** Test images of `classes` (pixels), at most `max` of them in file order. */
export function testImages(base: string, classes: readonly number[] | null, max = Infinity): { x: Float32Array; n: number; labels: Uint8Array } {
  const s = selectClasses(loadImageSplit(base, 'test'), classes);
  const n = Math.min(s.n, max);
  return { x: s.images.subarray(0, n * s.dim), n, labels: s.labels.subarray(0, n) };
}
