/**
 * `wgflow train` on image datasets (issue 14): `--target fashion-mnist` (optionally `--classes 7,9`,
 * or `fashion-mnist:7,9`; `@pixels` or `@pcaK` picks the model space, default PCA 64), class-
 * conditional with `--condition labels`, and unpaired translation with `--source fashion-mnist:7
 * --target fashion-mnist:9` (OT-CFM between the two classes' PCA codes).
 *
 * A thin face over the training layer's train/images.ts, which the library uses too: the names are
 * resolved there (its RangeErrors become UsageErrors worded with the flags, exit 2), the rows loaded
 * there, and the trained model sampled and judged there (on Node's WebGPU, by the evaluator wgflow
 * trains: evaluate/images.ts). What is the command line's own is here: the flag names and the
 * pictures (cli/image-pictures.ts), which replace the 2-D scatter plots under the same file names.
 */
import type { Method, TrainState } from '../train/contract';
import { IMAGE_EVAL, checkImageMethod, evaluateImageModel, imageSourceName as sourceName, imageTargetName as targetName, imageTraining as training, type ImageFields, type ImageTraining } from '../train/images';
import { UsageError } from './args';
import type { Pictures } from './pictures';

const FLAGS: ImageFields = { target: '--target', source: '--source', classes: '--classes' };

/** `f()`, its RangeError (a bad value, named with its flag) turned into a UsageError (exit 2). */
function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
}

/** The canonical image dataset of --target (with --classes folded in), or null for a 2-D target. */
export const imageTargetName = (target: string | undefined, classes: string | undefined): string | null => usage(() => targetName(target, classes, FLAGS));

/** The canonical image source of --source, checked against the target (same dataset and model space). */
export const imageSourceName = (source: string, target: string | null): string => usage(() => sourceName(source, target, FLAGS));

/** --method must be one that trains on images (train/images.ts checkImageMethod). */
export const checkImageFlags = (method: Method, target: string): void => usage(() => checkImageMethod(method, target, FLAGS));

/** The training rows of an image run (its stored target/source names and options); a failure names --target. */
export function imageTraining(target: string, source: string | null, options: Record<string, unknown>, note?: (line: string) => void): ImageTraining {
  try {
    return training(target, source, options, note);
  } catch (e) {
    throw new UsageError(`--target ${target}: ${(e as Error).message}`);
  }
}

export interface ImageRunResult {
  pictures: Pictures;
  metrics: Record<string, unknown>;
}

/**
 * Samples the trained model (config: the trainer's resolved CfmConfig; params: the final state's)
 * and measures it with the evaluator (train/images.ts); returns the pictures drawn from its pixels
 * and the `images` block of metrics.json.
 */
export async function evaluateImageRun(config: Record<string, unknown>, params: TrainState['params'], target: string, source: string | null, seed: number, note: (line: string) => void): Promise<ImageRunResult> {
  const { metrics, pixels: p } = await evaluateImageModel(config, params, { target, source, seed, note });
  const { classGrid, imageGrid, trajectoryStrips } = await import('./image-pictures');
  const { pngOf } = await import('./pictures');
  const pictures: Pictures = {};
  const side = p.side;
  const D = side * side;
  if (p.sources && p.translations && p.trajectory) {
    const n = p.sources.length / D;
    pictures['trajectories.png'] = await pngOf(trajectoryStrips(p.trajectory, side, Math.min(IMAGE_EVAL.strips, n)));
    pictures['samples.png'] = await pngOf(imageGrid(interleave(p.sources, p.translations, D, Math.min(48, n)), side, 8, 12));
  } else if (p.perClass) {
    pictures['samples.png'] = await pngOf(classGrid(p.perClass.rows, p.perClass.classes, side, IMAGE_EVAL.gridColumns));
  } else if (p.samples) {
    pictures['samples.png'] = await pngOf(imageGrid(p.samples, side, 8, IMAGE_EVAL.gridColumns));
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
