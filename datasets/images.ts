/**
 * Image datasets as training data (issue 14): the pixels of a named image dataset
 * (datasets/image-names.ts) in the representation a model trains in — PCA coordinates (default 64
 * components) or the pixels themselves — plus the means to go back to pixels. Node only (reads the
 * IDX files and a cache folder).
 *
 * The PCA is fitted by wgflow (datasets/pca.ts, float64) on 10 000 evenly spaced images of the whole
 * training split (all ten classes, whatever subset a run trains on), so every run and every subset
 * shares one basis, and a checkpoint needs only the dataset's name to get it back. The fit is a
 * deterministic function of the files; it is kept, rounded to float32, in the cache folder
 * (`imageCacheDir()`), keyed by the files' sizes and modification times and by K, so a later run reads
 * it in milliseconds instead of fitting it again (~10 s). A fresh fit is rounded to float32 too, so
 * a cached and a fresh basis are the same numbers and runs stay bit-reproducible.
 */
import type { DataMatrix } from './files';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors';
import { FASHION_MNIST_DIR, loadFashionMnist, type ImageSet } from './fashion-mnist';
import { IMAGE_DATASETS, imageDatasetName, parseImageDataset, type ImageDatasetSpec } from './image-names';
import { fitPca, pcaDecode, pcaEncode, type Pca } from './pca';

/**
 * A Node built-in at call time (process.getBuiltinModule, as io/atomic.ts), not a static import:
 * the library entry reaches this module (api/ → train/images.ts), and a page bundle of it must
 * build; only calling these functions in a page fails, saying so.
 */
function node<T>(id: 'node:crypto' | 'node:fs' | 'node:os' | 'node:path'): T {
  const mod = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.(id);
  if (!mod) throw new Error(`${id} is unavailable: image datasets are read from files, in Node.js >= 20.16, not in a browser`);
  return mod as T;
}
type Path = typeof import('node:path');
type Fs = typeof import('node:fs');

/** Rows the PCA covariance is accumulated from (evenly spaced over the training split). */
export const PCA_ROWS = 10_000;

/** Where the IDX files are: WGFLOW_FASHION_MNIST_DIR, else Debian's folder. */
export function imageDataDir(base: string): string {
  if (base !== 'fashion-mnist') throw new RangeError(`no image dataset ${JSON.stringify(base)}`);
  return process.env.WGFLOW_FASHION_MNIST_DIR || FASHION_MNIST_DIR;
}

/**
 * The folder wgflow keeps fitted PCA bases and trained evaluators in: WGFLOW_CACHE_DIR, else
 * $XDG_CACHE_HOME/wgflow, else ~/.cache/wgflow. Everything in it can be deleted at any time.
 */
export function imageCacheDir(): string {
  if (process.env.WGFLOW_CACHE_DIR) return process.env.WGFLOW_CACHE_DIR;
  const path = node<Path>('node:path'), os = node<typeof import('node:os')>('node:os');
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'wgflow');
}

/** A short hash of the dataset files' names, sizes and times: a cache entry is for these files only. */
export function dataFingerprint(base: string): string {
  const dir = imageDataDir(base);
  const path = node<Path>('node:path'), { existsSync, statSync } = node<Fs>('node:fs');
  const h = node<typeof import('node:crypto')>('node:crypto').createHash('sha256').update(`${base}\n${path.resolve(dir)}\n`);
  for (const f of ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']) {
    const p = path.join(dir, f);
    if (existsSync(p)) {
      const st = statSync(p);
      h.update(`${f} ${st.size} ${st.mtimeMs}\n`);
    } else h.update(`${f} missing\n`);
  }
  return h.digest('hex').slice(0, 16);
}

const splits = new Map<string, ImageSet>();

/** A split of the dataset (all classes; kept in memory for the process). */
export function loadImageSplit(base: string, split: 'train' | 'test'): ImageSet {
  const key = `${base}/${split}/${imageDataDir(base)}`;
  let s = splits.get(key);
  if (!s) {
    s = loadFashionMnist({ split, dir: imageDataDir(base) });
    splits.set(key, s);
  }
  return s;
}

/** The rows of `set` whose label is in `classes` (all when null). */
export function selectClasses(set: ImageSet, classes: readonly number[] | null): ImageSet {
  if (!classes) return set;
  const keep = new Set(classes);
  const rows: number[] = [];
  for (let i = 0; i < set.n; i++) if (keep.has(set.labels[i]!)) rows.push(i);
  const images = new Float32Array(rows.length * set.dim);
  const labels = new Uint8Array(rows.length);
  rows.forEach((r, i) => {
    images.set(set.images.subarray(r * set.dim, (r + 1) * set.dim), i * set.dim);
    labels[i] = set.labels[r]!;
  });
  return { images, labels, n: rows.length, dim: set.dim };
}

const round32 = (a: Float64Array) => Float64Array.from(Float32Array.from(a));

function pcaFromFile(file: string, dim: number, k: number): Pca | null {
  try {
    const st = readSafetensorsFile(file);
    const { mean, components, variances } = st.tensors;
    const total = Number(st.metadata.total_variance);
    if (!mean || !components || !variances || mean.data.length !== dim || components.data.length !== k * dim || variances.data.length !== k || !(total > 0)) return null;
    let kept = 0;
    for (const v of variances.data) kept += v;
    return { dim, k, mean: Float64Array.from(mean.data), components: Float64Array.from(components.data), variances: Float64Array.from(variances.data), totalVariance: total, explained: Number(st.metadata.explained) || kept / total };
  } catch {
    return null; // an unreadable cache entry is fitted again
  }
}

const pcas = new Map<string, Pca>();

/**
 * The K-component PCA of the dataset's training images (see the file comment): from the cache when
 * there, else fitted and cached. `onFit` is told before a fit starts (it takes seconds).
 */
export function imagePca(base: string, k: number, onFit?: (what: string) => void): Pca {
  const side = IMAGE_DATASETS[base]!.side;
  const dim = side * side;
  const path = node<Path>('node:path'), { existsSync, mkdirSync } = node<Fs>('node:fs');
  const file = path.join(imageCacheDir(), `${base}-pca${k}-${dataFingerprint(base)}.safetensors`);
  const hit = pcas.get(file) ?? (existsSync(file) ? pcaFromFile(file, dim, k) : null);
  if (hit) {
    pcas.set(file, hit);
    return hit;
  }
  const train = loadImageSplit(base, 'train');
  onFit?.(`fitting a ${k}-component PCA to ${Math.min(PCA_ROWS, train.n)} ${base} training images (once; cached in ${path.dirname(file)})`);
  const fit = fitPca(train.images, train.n, dim, k, { maxRows: PCA_ROWS });
  const p: Pca = { ...fit, mean: round32(fit.mean), components: round32(fit.components), variances: round32(fit.variances) };
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    writeSafetensorsFile(
      file,
      { mean: { data: Float32Array.from(p.mean), shape: [dim] }, components: { data: Float32Array.from(p.components), shape: [k, dim] }, variances: { data: Float32Array.from(p.variances), shape: [k] } },
      { total_variance: String(p.totalVariance), explained: String(p.explained), rows: String(PCA_ROWS) },
    );
  } catch {
    // A read-only cache is not an error: the fit is used and made again next time.
  }
  pcas.set(file, p);
  return p;
}

/** A model's view of an image dataset: its images, their labels and the map between pixels and model space. */
export interface ImageData {
  spec: ImageDatasetSpec;
  /** Canonical name (datasets/image-names.ts). */
  name: string;
  /** Images in model space (PCA coordinates, or pixels in [−1, 1]), n × dim. */
  data: DataMatrix;
  labels: Uint8Array;
  /** The basis (null in pixel space). */
  pca: Pca | null;
  side: number;
  /** Model-space rows → pixels in [−1, 1] (n × side²). */
  toPixels(z: ArrayLike<number>, n: number): Float32Array;
  /** Pixel rows → model space. */
  fromPixels(x: ArrayLike<number>, n: number): Float32Array;
}

/**
 * The images of `name` (an image dataset name, e.g. `fashion-mnist:7,9@pca64`) from `split`, in the
 * model space the name asks for. Throws a RangeError for a name that is not an image dataset.
 */
export function imageData(name: string, split: 'train' | 'test' = 'train', onFit?: (what: string) => void): ImageData {
  const spec = parseImageDataset(name);
  if (!spec) throw new RangeError(`${JSON.stringify(name)} is not an image dataset; accepted: ${Object.keys(IMAGE_DATASETS).join(', ')}`);
  const side = IMAGE_DATASETS[spec.base]!.side;
  const px = selectClasses(loadImageSplit(spec.base, split), spec.classes);
  if (px.n === 0) throw new RangeError(`${imageDatasetName(spec)}: no ${split} images of classes ${spec.classes?.join(',')}`);
  const pca = spec.latent > 0 ? imagePca(spec.base, spec.latent, onFit) : null;
  const toPixels = (z: ArrayLike<number>, n: number) => (pca ? pcaDecode(pca, z, n) : Float32Array.from(z));
  const fromPixels = (x: ArrayLike<number>, n: number) => (pca ? pcaEncode(pca, x, n) : Float32Array.from(x));
  const dim = pca ? pca.k : side * side;
  return { spec, name: imageDatasetName(spec), data: { data: pca ? pcaEncode(pca, px.images, px.n) : px.images, n: px.n, dim }, labels: px.labels, pca, side, toPixels, fromPixels };
}
