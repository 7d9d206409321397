/**
 * Names of the image datasets (issue 14): `fashion-mnist`, or `fashion-mnist:7,9` for some of its
 * classes. Browser-safe (names only: the pixels are read in Node by datasets/images.ts), so the flag
 * checks, the stored-configuration checks and the trainers can all tell an image dataset's name from
 * a 2-D toy set's without reading files.
 *
 * Why a suffix and not only a --classes flag: unpaired translation names two subsets of one dataset
 * (`--source fashion-mnist:7 --target fashion-mnist:9`), and a checkpoint must say which classes it
 * was trained on with the name it stores.
 */

/** Fashion-MNIST's class names by label 0–9 (Xiao et al. 2017). */
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'] as const;

export const IMAGE_DATASETS: Record<string, { classes: readonly string[]; side: number; description: string }> = {
  'fashion-mnist': { classes: FASHION_MNIST_CLASSES, side: 28, description: 'Fashion-MNIST 28×28 grey images, 10 classes (Debian dataset-fashion-mnist); NAME:7,9 keeps classes 7 and 9' },
};

/**
 * Components of the PCA latent space images are trained in by default. Why PCA 64: 64 components
 * keep 88.3 % of Fashion-MNIST's pixel variance (the README's table) and the CFM step at 64
 * dimensions fits the fused whole-step kernel, where 784 pixels do not (measured: README).
 */
export const DEFAULT_LATENT = 64;

export interface ImageDatasetSpec {
  /** The dataset (a key of IMAGE_DATASETS). */
  base: string;
  /** The classes kept, ascending, or null for all. */
  classes: number[] | null;
  /** PCA components the model works in, or 0 for the pixels themselves. */
  latent: number;
}

const classList = (base: string) => IMAGE_DATASETS[base]!.classes.map((c, i) => `${i} ${c}`).join(', ');

/**
 * Parses a class list "7,9" of dataset `base`: ascending, duplicates removed. Throws a RangeError
 * naming the bad entry and the accepted classes.
 */
export function parseClasses(base: string, text: string, what = 'classes'): number[] {
  const n = IMAGE_DATASETS[base]!.classes.length;
  const parts = text.split(',').map((s) => s.trim());
  const out = new Set<number>();
  for (const p of parts) {
    const c = /^\d+$/.test(p) ? Number(p) : NaN;
    if (!(c >= 0 && c < n)) throw new RangeError(`${what}: ${JSON.stringify(p.length > 20 ? `${p.slice(0, 20)}…` : p)} is not a class of ${base}; accepted: a comma-separated list of class numbers 0–${n - 1} (${classList(base)})`);
    out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * The image dataset `name` stands for, or null when it is not an image dataset's name at all
 * (then it may be a 2-D set). A known base with a bad class list throws (RangeError).
 */
export function parseImageDataset(name: string): ImageDatasetSpec | null {
  if (typeof name !== 'string') return null;
  const at = name.indexOf('@');
  const head = at < 0 ? name : name.slice(0, at);
  const colon = head.indexOf(':');
  const base = colon < 0 ? head : head.slice(0, colon);
  if (!Object.hasOwn(IMAGE_DATASETS, base)) return null;
  const shown = JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name);
  let latent = DEFAULT_LATENT;
  if (at >= 0) {
    const rep = name.slice(at + 1);
    const m = /^pca(\d{1,4})$/.exec(rep);
    const side = IMAGE_DATASETS[base]!.side;
    if (rep === 'pixels') latent = 0;
    else if (m && Number(m[1]) >= 1 && Number(m[1]) < side * side) latent = Number(m[1]);
    else throw new RangeError(`dataset ${shown}: representation ${JSON.stringify(rep.slice(0, 20))} is not accepted; accepted: @pcaK with K from 1 to ${side * side - 1} (default @pca${DEFAULT_LATENT}) or @pixels`);
  }
  if (colon < 0) return { base, classes: null, latent };
  const classes = parseClasses(base, head.slice(colon + 1), `dataset ${shown}`);
  return { base, classes: classes.length === IMAGE_DATASETS[base]!.classes.length ? null : classes, latent };
}

export const isImageDataset = (name: unknown): boolean => {
  if (typeof name !== 'string') return false;
  try {
    return parseImageDataset(name) !== null;
  } catch {
    return false;
  }
};

/** The canonical name of a spec: `fashion-mnist`, `fashion-mnist:7,9`, `fashion-mnist:7@pixels`, `fashion-mnist@pca32`. */
export function imageDatasetName(spec: ImageDatasetSpec): string {
  const rep = spec.latent === DEFAULT_LATENT ? '' : spec.latent === 0 ? '@pixels' : `@pca${spec.latent}`;
  return `${spec.classes ? `${spec.base}:${spec.classes.join(',')}` : spec.base}${rep}`;
}

/** The dimension a model of this dataset works in. */
export function imageModelDim(spec: ImageDatasetSpec): number {
  const side = IMAGE_DATASETS[spec.base]!.side;
  return spec.latent === 0 ? side * side : spec.latent;
}

/** The names to offer in "accepted:" lists. */
export const IMAGE_DATASET_NAMES = Object.keys(IMAGE_DATASETS).map((b) => `${b}[:CLASSES][@pcaK|@pixels]`);
