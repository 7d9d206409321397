/**
 * Fashion-MNIST (Xiao et al. 2017): 60 000 training and 10 000 test images of 28×28 grey pixels in
 * 10 classes, read from the IDX files that Debian's `dataset-fashion-mnist` installs (SPEC §7).
 *
 * Pixels are scaled to [−1, 1] (p / 127.5 − 1), the range flow-matching image models train in (a
 * Gaussian source centred at 0 covers it symmetrically). Node only (reads files).
 */
import { readIdxFile, type IdxArray } from './idx';
import { FASHION_MNIST_CLASSES } from './image-names';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Class names by label 0–9 (one list, in datasets/image-names.ts, browser-safe). */
export { FASHION_MNIST_CLASSES };

export const IMAGE_SIDE = 28;
export const IMAGE_DIM = IMAGE_SIDE * IMAGE_SIDE;

export interface ImageSet {
  /** n × 784 pixels in [−1, 1], row-major images. */
  images: Float32Array;
  /** n labels 0–9. */
  labels: Uint8Array;
  n: number;
  dim: number;
}

export interface FashionMnistOptions {
  split?: 'train' | 'test';
  /** Keep only these labels (in file order); default all ten. */
  classes?: readonly number[];
  /** Folder with the four .gz files; default FASHION_MNIST_DIR. */
  dir?: string;
}

/** Pixel byte → model value. */
export const pixelToValue = (p: number) => p / 127.5 - 1;
/** Model value → pixel byte (clamped). */
export const valueToPixel = (v: number) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5)));

/** Checks an images/labels pair of IDX arrays and keeps the requested classes. */
export function imageSetFrom(images: IdxArray, labels: IdxArray, classes?: readonly number[], what = 'Fashion-MNIST'): ImageSet {
  if (images.type !== 'uint8' || images.shape.length !== 3) throw new Error(`${what}: images must be uint8 [n, rows, cols], got ${images.type} [${images.shape.join(', ')}]`);
  if (images.shape[1] !== IMAGE_SIDE || images.shape[2] !== IMAGE_SIDE) throw new Error(`${what}: images are ${images.shape[1]}×${images.shape[2]}, expected ${IMAGE_SIDE}×${IMAGE_SIDE}`);
  if (labels.type !== 'uint8' || labels.shape.length !== 1) throw new Error(`${what}: labels must be uint8 [n], got ${labels.type} [${labels.shape.join(', ')}]`);
  const n = images.shape[0]!;
  if (labels.shape[0] !== n) throw new Error(`${what}: ${n} images but ${labels.shape[0]} labels`);
  const lab = labels.bytes!;
  for (let i = 0; i < n; i++) if (lab[i]! > 9) throw new Error(`${what}: label ${lab[i]} of image ${i} is not a class 0–9`);
  const keep = classes ? new Set(classes) : null;
  if (classes) for (const c of classes) if (!Number.isInteger(c) || c < 0 || c > 9) throw new Error(`classes: ${c} is not a class 0–9 (${FASHION_MNIST_CLASSES.map((name, i) => `${i} ${name}`).join(', ')})`);
  const rows: number[] = [];
  for (let i = 0; i < n; i++) if (!keep || keep.has(lab[i]!)) rows.push(i);
  const out = new Float32Array(rows.length * IMAGE_DIM);
  const outLabels = new Uint8Array(rows.length);
  const px = images.bytes!;
  rows.forEach((r, i) => {
    for (let j = 0; j < IMAGE_DIM; j++) out[i * IMAGE_DIM + j] = pixelToValue(px[r * IMAGE_DIM + j]!);
    outLabels[i] = lab[r]!;
  });
  return { images: out, labels: outLabels, n: rows.length, dim: IMAGE_DIM };
}

/** Loads a split of Fashion-MNIST, optionally only some classes. */
export function loadFashionMnist(opts: FashionMnistOptions = {}): ImageSet {
  const dir = opts.dir ?? FASHION_MNIST_DIR;
  const prefix = (opts.split ?? 'train') === 'train' ? 'train' : 't10k';
  const file = (kind: string) => `${dir}/${prefix}-${kind}-ubyte.gz`;
  let images: IdxArray, labels: IdxArray;
  try {
    images = readIdxFile(file('images-idx3'));
    labels = readIdxFile(file('labels-idx1'));
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(/no such file/.test(msg) && dir === FASHION_MNIST_DIR ? `${msg}; install the data set with \`apt-get install dataset-fashion-mnist\`` : msg);
  }
  return imageSetFrom(images, labels, opts.classes, `Fashion-MNIST ${prefix} (${dir})`);
}
