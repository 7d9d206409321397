/**
 * An MLP classifier trained by wgflow's own engine: the evaluator of image generation (issue 14).
 *
 * What it is for: the fraction of class-conditional samples classified as the class asked for, and
 * a Fréchet distance in its penultimate features (evaluate/frechet.ts). Trained with Adam on softmax
 * cross-entropy, CE = mean_i [logsumexp(z_i) − z_i,y_i], where the logsumexp is shifted by the row
 * maximum taken outside the tape (the shift cancels in the gradient, softmax(z) − onehot(y)).
 * Weights are initialised as PyTorch's nn.Linear (U(±1/√fan_in)).
 */
import { Adam, ParamSet, Rng, exp, getBackend, keep, linear, log, max, mean, mul, noGrad, scope, sub, sum, tensor, valueAndGrad, type Tensor } from '../engine';

export interface ClassifierConfig {
  inputDim: number;
  classes: number;
  /** Hidden widths, ReLU after each (default [256, 128]; the last is the feature layer). */
  hidden?: number[];
  lr?: number;
  batch?: number;
  steps?: number;
  seed?: number;
}

export interface TrainClassifierOptions {
  /** Called about every `every` steps with the mean loss since the last call. */
  onProgress?: (p: { step: number; steps: number; loss: number }) => void;
  every?: number;
}

/** Philox stream ids of the classifier (initialisation, batches). */
const STREAM = { init: 0x3fffffff, batch: (step: number) => (0x40000000 + step) >>> 0 } as const;

export class Classifier {
  readonly params: ParamSet;
  readonly dims: number[];

  constructor(readonly cfg: Required<ClassifierConfig>) {
    this.dims = [cfg.inputDim, ...cfg.hidden, cfg.classes];
    const rng = new Rng(cfg.seed, STREAM.init);
    const specs = [];
    for (let k = 0; k + 1 < this.dims.length; k++) {
      const fanIn = this.dims[k]!, fanOut = this.dims[k + 1]!;
      const bound = 1 / Math.sqrt(fanIn);
      specs.push(
        { name: `l${k}.W`, shape: [fanIn, fanOut], init: Float32Array.from({ length: fanIn * fanOut }, () => rng.uniformIn(-bound, bound)) },
        { name: `l${k}.b`, shape: [fanOut], init: Float32Array.from({ length: fanOut }, () => rng.uniformIn(-bound, bound)) },
      );
    }
    this.params = new ParamSet(specs);
  }

  /** Penultimate activations (the last hidden layer, after ReLU), [B, hidden.at(-1)]. */
  features(x: Tensor): Tensor {
    const p = this.params.params;
    let h = x;
    for (let k = 0; k + 2 < this.dims.length; k++) {
      const next = linear(h, p[2 * k]!, p[2 * k + 1]!, 'relu');
      if (h !== x) h.dispose();
      h = next;
    }
    return h;
  }

  /** Class scores (logits), [B, classes]. */
  logits(x: Tensor): Tensor {
    const p = this.params.params;
    const k = this.dims.length - 2;
    const f = this.features(x);
    const z = linear(f, p[2 * k]!, p[2 * k + 1]!, 'none');
    f.dispose();
    return z;
  }

  dispose(): void {
    this.params.dispose();
  }
}

/** Mean softmax cross-entropy of logits z [B, C] against one-hot targets [B, C]. */
export function crossEntropy(z: Tensor, onehot: Tensor): Tensor {
  const m = noGrad(() => max(z, 1, true));
  const shifted = sub(z, m);
  const lse = log(sum(exp(shifted), 1, true));
  return mean(sub(lse, sum(mul(shifted, onehot), 1, true)));
}

export function withDefaults(cfg: ClassifierConfig): Required<ClassifierConfig> {
  const c = { hidden: [256, 128], lr: 1e-3, batch: 256, steps: 1000, seed: 0, ...cfg };
  const int = (name: string, v: number, lo: number) => {
    if (!Number.isInteger(v) || v < lo) throw new RangeError(`classifier: ${name} must be an integer ≥ ${lo}, got ${v}`);
  };
  int('inputDim', c.inputDim, 1);
  int('classes', c.classes, 2);
  int('batch', c.batch, 1);
  int('steps', c.steps, 1);
  if (!Array.isArray(c.hidden) || c.hidden.length === 0) throw new RangeError('classifier: hidden must list at least one width');
  c.hidden.forEach((h) => int('hidden width', h, 1));
  if (!(c.lr > 0)) throw new RangeError(`classifier: lr must be positive, got ${c.lr}`);
  return c;
}

/**
 * Trains a classifier on n rows of x (row-major, n × inputDim) with labels in 0..classes−1. Each
 * step's batch is drawn with replacement from a Philox stream keyed by (seed, step), so a run is
 * reproducible. The batch is uploaded per step (the data may exceed a storage binding: Fashion-MNIST's
 * training set is 188 MB as float32); the loss is read back only every `every` steps.
 */
export async function trainClassifier(x: Float32Array, labels: Uint8Array, cfg: ClassifierConfig, opts: TrainClassifierOptions = {}): Promise<Classifier> {
  const c = withDefaults(cfg);
  const n = labels.length;
  if (x.length !== n * c.inputDim) throw new RangeError(`classifier: ${x.length} values are not ${n} rows of ${c.inputDim}`);
  for (let i = 0; i < n; i++) if (labels[i]! >= c.classes) throw new RangeError(`classifier: label ${labels[i]} of row ${i} is not below ${c.classes}`);
  const model = new Classifier(c);
  const adam = new Adam(model.params, { lr: c.lr });
  const every = opts.every ?? 50;
  const xb = new Float32Array(c.batch * c.inputDim);
  const yb = new Float32Array(c.batch * c.classes);
  let pending: Tensor[] = [];
  let since = 0;
  for (let step = 1; step <= c.steps; step++) {
    const rng = new Rng(c.seed, STREAM.batch(step));
    yb.fill(0);
    for (let i = 0; i < c.batch; i++) {
      const r = rng.int(n);
      xb.set(x.subarray(r * c.inputDim, (r + 1) * c.inputDim), i * c.inputDim);
      yb[i * c.classes + labels[r]!] = 1;
    }
    const loss = scope(() => {
      const xt = tensor(xb, [c.batch, c.inputDim]);
      const yt = tensor(yb, [c.batch, c.classes]);
      const { value, grads } = valueAndGrad(() => {
        const z = model.logits(xt);
        return crossEntropy(z, yt);
      }, model.params.params);
      adam.step(grads);
      getBackend().flush();
      return keep(value);
    });
    pending.push(loss);
    if (step % every === 0 || step === c.steps) {
      let total = 0;
      for (const l of pending) {
        total += await l.item();
        l.dispose();
      }
      since = pending.length;
      pending = [];
      opts.onProgress?.({ step, steps: c.steps, loss: total / since });
    }
  }
  return model;
}

/** Predicted labels and penultimate features of n rows, in chunks of `chunk` rows. */
export async function classify(model: Classifier, x: Float32Array, n: number, chunk = 2048): Promise<{ labels: Uint8Array; features: Float32Array; featureDim: number }> {
  const d = model.cfg.inputDim;
  const fd = model.dims.at(-2)!;
  const C = model.cfg.classes;
  if (x.length !== n * d) throw new RangeError(`classify: ${x.length} values are not ${n} rows of ${d}`);
  const labels = new Uint8Array(n);
  const features = new Float32Array(n * fd);
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const [f, z] = noGrad(() =>
      scope(() => {
        const xt = tensor(x.subarray(start * d, (start + m) * d), [m, d]);
        const feat = model.features(xt);
        const p = model.params.params;
        const k = model.dims.length - 2;
        return [keep(feat), keep(linear(feat, p[2 * k]!, p[2 * k + 1]!, 'none'))] as const;
      }),
    );
    features.set(await f.data(), start * fd);
    const zs = await z.data();
    f.dispose();
    z.dispose();
    for (let i = 0; i < m; i++) {
      let best = 0;
      for (let j = 1; j < C; j++) if (zs[i * C + j]! > zs[i * C + best]!) best = j;
      labels[start + i] = best;
    }
  }
  return { labels, features, featureDim: fd };
}

/** Fraction of predictions equal to the labels. */
export function accuracy(pred: Uint8Array, labels: Uint8Array): number {
  if (pred.length !== labels.length) throw new Error(`accuracy: ${pred.length} predictions for ${labels.length} labels`);
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) ok++;
  return ok / pred.length;
}
