/**
 * The 2-D toy distributions of SPEC §2, each a sampler `(n, rng) => Float32Array` (row-major n×2).
 *
 * Every sampler follows its reference definition to the letter (scales, splits between arms, the
 * kind of noise and its quirks) because wgflow's figures are compared against results produced
 * with those references:
 * - torchcfm 1.0.7 `torchcfm/utils.py` (`sample_8gaussians`, `sample_moons`) and torchdyn
 *   `generate_moons`;
 * - FFJORD `lib/toy_data.py` (`inf_train_gen`);
 * - scikit-learn `make_moons`, `make_circles`, `make_swiss_roll`, `make_s_curve`.
 * Only the random streams differ (Philox instead of NumPy/torch), so a batch matches the
 * reference in distribution, not bit for bit. Where a reference returns fewer than n rows
 * (FFJORD's 2spirals and pinwheel use n // 2 and n // 5 per arm) we draw whole arms for
 * ceil(n / arms) and keep n rows of the shuffled batch, so every sampler returns exactly n rows.
 */
import { Rng } from '../engine/philox';

export type Sampler = (n: number, rng: Rng) => Float32Array;

/** Points with a class label per row (0..classes−1). */
export interface Labelled {
  points: Float32Array;
  labels: Int32Array;
}

/**
 * A labelled set's labelling (conditional generation, cfm/conditional.ts): `sample` makes exactly
 * the draws of the set's unlabelled sampler, so its points are the same for the same stream.
 */
export interface Labelling {
  classes: number;
  /** What a label means (e.g. "mode index in torchcfm's direction order"). */
  meaning: string;
  sample: (n: number, rng: Rng) => Labelled;
}

export interface DatasetInfo {
  sample: Sampler;
  dim: 2;
  description: string;
  /** Differential entropy in nats where known (SPEC §2): a floor for any model's test NLL. */
  entropy?: number;
  /** The set's natural classes, where it has them. */
  labels?: Labelling;
}

const SQRT1_2 = 1 / Math.sqrt(2);
/** The eight directions in the order torchcfm and FFJORD list them. */
const EIGHT_DIRS: ReadonlyArray<readonly [number, number]> = [
  [1, 0], [-1, 0], [0, 1], [0, -1],
  [SQRT1_2, SQRT1_2], [SQRT1_2, -SQRT1_2], [-SQRT1_2, SQRT1_2], [-SQRT1_2, -SQRT1_2],
];

function checkN(n: number, name: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`dataset "${name}": n must be a non-negative integer, got ${n}`);
  }
}

/** numpy.linspace(start, stop, num, endpoint): start + i·step, the last value set to stop exactly. */
export function linspace(start: number, stop: number, num: number, endpoint = true): Float64Array {
  const out = new Float64Array(num);
  const div = endpoint ? num - 1 : num;
  const step = div > 0 ? (stop - start) / div : 0;
  for (let i = 0; i < num; i++) out[i] = start + i * step;
  if (endpoint && num > 1) out[num - 1] = stop;
  return out;
}

/** Rows of `src` (m×2, float64) in a random order, the first n of them, as float32 (and their labels by `labelOf(source row)`). */
function shuffledRows(src: Float64Array, n: number, rng: Rng, labels?: { out: Int32Array; of: (row: number) => number }): Float32Array {
  const m = src.length / 2;
  const perm = rng.permutation(m);
  const out = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const j = perm[i]!;
    out[2 * i] = src[2 * j]!;
    out[2 * i + 1] = src[2 * j + 1]!;
    if (labels) labels.out[i] = labels.of(j);
  }
  return out;
}

/**
 * sklearn make_moons: n_out = n // 2 points on the upper unit arc (cos a, sin a) and
 * n_in = n − n_out on the lower arc (1 − cos a, 1 − sin a − 0.5), a = linspace(0, π) per arc
 * (endpoints included), rows shuffled, then N(0, noise²) added to every coordinate.
 */
export function makeMoons(n: number, noise: number, rng: Rng): Float64Array {
  const nOut = Math.floor(n / 2), nIn = n - nOut;
  const pts = new Float64Array(2 * n);
  const aOut = linspace(0, Math.PI, nOut), aIn = linspace(0, Math.PI, nIn);
  for (let i = 0; i < nOut; i++) {
    pts[2 * i] = Math.cos(aOut[i]!);
    pts[2 * i + 1] = Math.sin(aOut[i]!);
  }
  for (let i = 0; i < nIn; i++) {
    pts[2 * (nOut + i)] = 1 - Math.cos(aIn[i]!);
    pts[2 * (nOut + i) + 1] = 1 - Math.sin(aIn[i]!) - 0.5;
  }
  const out = new Float64Array(2 * n);
  const perm = rng.permutation(n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = pts[2 * perm[i]!]! + noise * rng.normal();
    out[2 * i + 1] = pts[2 * perm[i]! + 1]! + noise * rng.normal();
  }
  return out;
}

/**
 * sklearn make_circles: n // 2 points on the unit circle and the rest on a circle of radius
 * `factor`, angles linspace(0, 2π, endpoint=False) per circle, shuffled, plus N(0, noise²).
 */
export function makeCircles(n: number, factor: number, noise: number, rng: Rng): Float64Array {
  const nOut = Math.floor(n / 2), nIn = n - nOut;
  const pts = new Float64Array(2 * n);
  const aOut = linspace(0, 2 * Math.PI, nOut, false), aIn = linspace(0, 2 * Math.PI, nIn, false);
  for (let i = 0; i < nOut; i++) {
    pts[2 * i] = Math.cos(aOut[i]!);
    pts[2 * i + 1] = Math.sin(aOut[i]!);
  }
  for (let i = 0; i < nIn; i++) {
    pts[2 * (nOut + i)] = Math.cos(aIn[i]!) * factor;
    pts[2 * (nOut + i) + 1] = Math.sin(aIn[i]!) * factor;
  }
  const out = new Float64Array(2 * n);
  const perm = rng.permutation(n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = pts[2 * perm[i]!]! + noise * rng.normal();
    out[2 * i + 1] = pts[2 * perm[i]! + 1]! + noise * rng.normal();
  }
  return out;
}

/**
 * Columns (0, 2) of sklearn make_swiss_roll: t = 1.5π(1 + 2U), (t cos t, t sin t) plus
 * N(0, noise²) per coordinate. The dropped middle column (21·U) is not drawn.
 */
function swissRollXZ(n: number, noise: number, rng: Rng): Float64Array {
  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    const t = 1.5 * Math.PI * (1 + 2 * rng.uniform());
    out[2 * i] = t * Math.cos(t) + noise * rng.normal();
    out[2 * i + 1] = t * Math.sin(t) + noise * rng.normal();
  }
  return out;
}

/**
 * Columns (0, 2) of sklearn make_s_curve: t = 3π(U − 0.5), (sin t, sign(t)(cos t − 1)) plus
 * N(0, noise²) per coordinate. The dropped middle column (2·U) is not drawn.
 */
function sCurveXZ(n: number, noise: number, rng: Rng): Float64Array {
  const out = new Float64Array(2 * n);
  for (let i = 0; i < n; i++) {
    const t = 3 * Math.PI * (rng.uniform() - 0.5);
    out[2 * i] = Math.sin(t) + noise * rng.normal();
    out[2 * i + 1] = Math.sign(t) * (Math.cos(t) - 1) + noise * rng.normal();
  }
  return out;
}

/** (radius·d_k + std·N(0, I))·post with k uniform over the eight directions (torchcfm eight_normal_sample); k into `labels`. */
function eightModes(n: number, rng: Rng, radius: number, std: number, post = 1, labels?: Int32Array): Float32Array {
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    const k = rng.int(8);
    if (labels) labels[i] = k;
    const [cx, cy] = EIGHT_DIRS[k]!;
    out[2 * i] = (radius * cx + std * rng.normal()) * post;
    out[2 * i + 1] = (radius * cy + std * rng.normal()) * post;
  }
  return out;
}

/** N(0, I). */
export const gaussian: Sampler = (n, rng) => {
  checkN(n, 'gaussian');
  const out = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) out[i] = rng.normal();
  return out;
};

/**
 * torchcfm sample_8gaussians = eight_normal_sample(n, 2, scale=5, var=0.1): the covariance passed
 * to MultivariateNormal is sqrt(var)·I, so the per-coordinate std is 0.1^(1/4) ≈ 0.562, not √0.1.
 */
export const eightGaussians: Sampler = (n, rng) => {
  checkN(n, '8gaussians');
  return eightModes(n, rng, 5, Math.pow(0.1, 0.25));
};

/**
 * torchcfm sample_moons = torchdyn generate_moons(n, noise=0.2)·3 − 1. torchdyn's noise is ONE
 * U[0, 0.2) value per point added to both coordinates (np.random.rand(n, 1)·noise, broadcast),
 * not Gaussian; arcs are evenly spaced and unshuffled there, so we shuffle the rows.
 */
export const moons: Sampler = (n, rng) => moonsLabelled(n, rng).points;

function moonsLabelled(n: number, rng: Rng): Labelled {
  checkN(n, 'moons');
  const labels = new Int32Array(n);
  const nOut = Math.floor(n / 2), nIn = n - nOut;
  const pts = new Float64Array(2 * n);
  const aOut = linspace(0, Math.PI, nOut), aIn = linspace(0, Math.PI, nIn);
  for (let i = 0; i < nOut; i++) {
    const u = 0.2 * rng.uniform();
    pts[2 * i] = (Math.cos(aOut[i]!) + u) * 3 - 1;
    pts[2 * i + 1] = (Math.sin(aOut[i]!) + u) * 3 - 1;
  }
  for (let i = 0; i < nIn; i++) {
    const u = 0.2 * rng.uniform();
    pts[2 * (nOut + i)] = (1 - Math.cos(aIn[i]!) + u) * 3 - 1;
    pts[2 * (nOut + i) + 1] = (1 - Math.sin(aIn[i]!) - 0.5 + u) * 3 - 1;
  }
  return { points: shuffledRows(pts, n, rng, { out: labels, of: (j) => (j < nOut ? 0 : 1) }), labels };
}

/** FFJORD 8gaussians: (4·d_k + 0.5·N(0, I)) / 1.414 (the literal 1.414, not √2). */
export const ffjordEightGaussians: Sampler = (n, rng) => {
  checkN(n, 'ffjord-8gaussians');
  return eightModes(n, rng, 4, 0.5, 1 / 1.414);
};

/** FFJORD moons: make_moons(noise=0.1)·2 + (−1, −0.2). */
export const ffjordMoons: Sampler = (n, rng) => {
  checkN(n, 'ffjord-moons');
  const m = makeMoons(n, 0.1, rng);
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = m[2 * i]! * 2 - 1;
    out[2 * i + 1] = m[2 * i + 1]! * 2 - 0.2;
  }
  return out;
};

/**
 * FFJORD checkerboard: x1 ~ U[−2, 2), x2 = U[0, 1) − 2·B + (floor(x1) mod 2) with B ~ Bernoulli(½),
 * all ·2: uniform on the 8 dark 2×2 squares of [−4, 4)² (Python's mod is non-negative).
 */
export const checkerboard: Sampler = (n, rng) => checkerboardLabelled(n, rng).points;

/** Label of a checkerboard point: 2·column + (0 lower, 1 upper square of that column), column floor(x1) + 2 in 0..3. */
function checkerboardLabelled(n: number, rng: Rng): Labelled {
  checkN(n, 'checkerboard');
  const out = new Float32Array(2 * n);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const x1 = rng.uniform() * 4 - 2;
    const u = rng.uniform();
    const b = rng.int(2);
    const x2 = u - b * 2 + (((Math.floor(x1) % 2) + 2) % 2);
    out[2 * i] = x1 * 2;
    out[2 * i + 1] = x2 * 2;
    labels[i] = 2 * (Math.floor(x1) + 2) + 1 - b; // B = 1 moves the point down two rows
  }
  return { points: out, labels };
}

/**
 * FFJORD 2spirals: t = √U·540·2π/360 = 3π√U, arm d = (−t cos t + 0.5·U′, t sin t + 0.5·U″); the
 * batch is {d} ∪ {−d} (the second arm is the exact mirror of the first, before noise), /3, then
 * N(0, 0.1²) per coordinate. We shuffle the rows (the reference leaves them in arm order).
 */
export const twoSpirals: Sampler = (n, rng) => {
  checkN(n, '2spirals');
  const half = Math.ceil(n / 2);
  const pts = new Float64Array(4 * half);
  for (let i = 0; i < half; i++) {
    const t = Math.sqrt(rng.uniform()) * 540 * (2 * Math.PI) / 360;
    const dx = -Math.cos(t) * t + rng.uniform() * 0.5;
    const dy = Math.sin(t) * t + rng.uniform() * 0.5;
    pts[2 * i] = dx / 3;
    pts[2 * i + 1] = dy / 3;
    pts[2 * (half + i)] = -dx / 3;
    pts[2 * (half + i) + 1] = -dy / 3;
  }
  for (let i = 0; i < pts.length; i++) pts[i] = pts[i]! + rng.normal() * 0.1;
  return shuffledRows(pts, n, rng);
};

/**
 * FFJORD pinwheel: 5 arms; f = (1 + 0.3·z₀, 0.1·z₁), α = 2πk/5 + 0.25·exp(f₀), output 2·f·R(α)
 * with R = [[cos α, −sin α], [sin α, cos α]] applied as a row vector (einsum "ti,tij->tj"), i.e.
 * a rotation by −α: the arms curl clockwise. Rows permuted.
 */
export const pinwheel: Sampler = (n, rng) => pinwheelLabelled(n, rng).points;

function pinwheelLabelled(n: number, rng: Rng): Labelled {
  checkN(n, 'pinwheel');
  const labels = new Int32Array(n);
  const classes = 5, perClass = Math.ceil(n / classes), rate = 0.25;
  const m = classes * perClass;
  const pts = new Float64Array(2 * m);
  for (let k = 0; k < classes; k++) {
    const rad = (2 * Math.PI * k) / classes;
    for (let j = 0; j < perClass; j++) {
      const f0 = rng.normal() * 0.3 + 1, f1 = rng.normal() * 0.1;
      const a = rad + rate * Math.exp(f0);
      const c = Math.cos(a), s = Math.sin(a);
      const i = k * perClass + j;
      pts[2 * i] = 2 * (f0 * c + f1 * s);
      pts[2 * i + 1] = 2 * (-f0 * s + f1 * c);
    }
  }
  return { points: shuffledRows(pts, n, rng, { out: labels, of: (j) => Math.floor(j / perClass) }), labels };
}

/** FFJORD circles: make_circles(factor=0.5, noise=0.08)·3 (radii 3 and 1.5, noise std 0.24). */
export const circles: Sampler = (n, rng) => {
  checkN(n, 'circles');
  const c = makeCircles(n, 0.5, 0.08, rng);
  const out = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) out[i] = c[i]! * 3;
  return out;
};

/**
 * FFJORD rings: 4 concentric circles of radii (1, 0.75, 0.5, 0.25)·3 with n // 4 points each on the
 * three outer ones and the remainder on the innermost, angles linspace(0, 2π, endpoint=False),
 * shuffled, then N(0, 0.08²) added after the ·3.
 */
export const rings: Sampler = (n, rng) => ringsLabelled(n, rng).points;

function ringsLabelled(n: number, rng: Rng): Labelled {
  checkN(n, 'rings');
  const labels = new Int32Array(n);
  const q = Math.floor(n / 4);
  const counts = [q, q, q, n - 3 * q];
  const radii = [1, 0.75, 0.5, 0.25];
  const pts = new Float64Array(2 * n);
  let row = 0;
  for (let c = 0; c < 4; c++) {
    const a = linspace(0, 2 * Math.PI, counts[c]!, false);
    for (let i = 0; i < counts[c]!; i++, row++) {
      pts[2 * row] = Math.cos(a[i]!) * radii[c]! * 3;
      pts[2 * row + 1] = Math.sin(a[i]!) * radii[c]! * 3;
    }
  }
  const out = shuffledRows(pts, n, rng, { out: labels, of: (j) => (j < q ? 0 : j < 2 * q ? 1 : j < 3 * q ? 2 : 3) });
  for (let i = 0; i < 2 * n; i++) out[i] = out[i]! + rng.normal() * 0.08;
  return { points: out, labels };
}

/** FFJORD swissroll: make_swiss_roll(noise=1.0), columns (0, 2), /5. */
export const swissroll: Sampler = (n, rng) => {
  checkN(n, 'swissroll');
  const s = swissRollXZ(n, 1.0, rng);
  const out = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) out[i] = s[i]! / 5;
  return out;
};

/** OT-CFM paper moons: make_moons(noise=0.05)·2, then x₀ −= 1. */
export const paperMoons: Sampler = (n, rng) => {
  checkN(n, 'paper-moons');
  const m = makeMoons(n, 0.05, rng);
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = m[2 * i]! * 2 - 1;
    out[2 * i + 1] = m[2 * i + 1]! * 2;
  }
  return out;
};

/** OT-CFM paper S-curve: make_s_curve(noise=0.05), columns (0, 2), ·1.5. */
export const paperSCurve: Sampler = (n, rng) => {
  checkN(n, 'paper-scurve');
  const s = sCurveXZ(n, 0.05, rng);
  const out = new Float32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) out[i] = s[i]! * 1.5;
  return out;
};

/** OT-CFM paper 8 Gaussians: eight modes at radius 5 with std 1 (eight_normal_sample var=1). */
export const paperEightGaussians: Sampler = (n, rng) => {
  checkN(n, 'paper-8gaussians');
  return eightModes(n, rng, 5, 1);
};

/**
 * Source of the paper's moons→8gaussians task: make_moons(noise=0.1), standardised by the batch's
 * scalar mean and std over all 2n entries (torch-style unbiased std), then ·7.
 */
export const paperMoonsStd7: Sampler = (n, rng) => {
  checkN(n, 'paper-moons-std7');
  const m = makeMoons(n, 0.1, rng);
  let mean = 0;
  for (let i = 0; i < m.length; i++) mean += m[i]!;
  mean /= Math.max(1, m.length);
  let ss = 0;
  for (let i = 0; i < m.length; i++) ss += (m[i]! - mean) ** 2;
  const std = m.length > 1 ? Math.sqrt(ss / (m.length - 1)) : 1;
  const out = new Float32Array(2 * n);
  for (let i = 0; i < m.length; i++) out[i] = ((m[i]! - mean) / (std > 0 ? std : 1)) * 7;
  return out;
};

/** Target of the paper's moons→8gaussians task: eight modes (radius 4, std 0.5), all ·3. */
export const paperEightGaussiansR12: Sampler = (n, rng) => {
  checkN(n, 'paper-8gaussians-r12');
  return eightModes(n, rng, 4, 0.5, 3);
};

/** The eight-mode sets' labelling: the mode index k of the direction list above. */
function eightLabels(name: string, radius: number, std: number, post = 1): Labelling {
  return {
    classes: 8,
    meaning: 'mode index k: direction (1,0), (−1,0), (0,1), (0,−1), then the diagonals (+,+), (+,−), (−,+), (−,−)',
    sample: (n, rng) => {
      checkN(n, name);
      const labels = new Int32Array(n);
      return { points: eightModes(n, rng, radius, std, post, labels), labels };
    },
  };
}

export const DATASETS: Record<string, DatasetInfo> = {
  gaussian: { sample: gaussian, dim: 2, description: 'standard normal N(0, I)', entropy: 1 + Math.log(2 * Math.PI) },
  '8gaussians': { sample: eightGaussians, dim: 2, description: 'torchcfm: 8 modes at radius 5, per-coordinate std 0.1^0.25 ≈ 0.562', labels: eightLabels('8gaussians', 5, Math.pow(0.1, 0.25)) },
  moons: { sample: moons, dim: 2, description: 'torchcfm: torchdyn generate_moons(noise=0.2)·3 − 1 (uniform offset shared by both coordinates)', labels: { classes: 2, meaning: 'moon: 0 the upper arc, 1 the lower', sample: moonsLabelled } },
  'ffjord-8gaussians': { sample: ffjordEightGaussians, dim: 2, description: 'FFJORD: 8 modes at radius 4, std 0.5, /1.414', entropy: 2.834, labels: eightLabels('ffjord-8gaussians', 4, 0.5, 1 / 1.414) },
  'ffjord-moons': { sample: ffjordMoons, dim: 2, description: 'FFJORD: make_moons(noise=0.1)·2 + (−1, −0.2)', entropy: 2.388 },
  checkerboard: { sample: checkerboard, dim: 2, description: 'FFJORD: uniform on 8 dark squares of a 4×4 board on [−4, 4)²', entropy: Math.log(32), labels: { classes: 8, meaning: 'square: 2·column + (0 lower, 1 upper), columns left to right', sample: checkerboardLabelled } },
  '2spirals': { sample: twoSpirals, dim: 2, description: 'FFJORD: two mirrored spiral arms, noise 0.1' },
  pinwheel: { sample: pinwheel, dim: 2, description: 'FFJORD: 5 curled arms (radial std 0.3, tangential std 0.1)', labels: { classes: 5, meaning: 'arm k (angle 2πk/5)', sample: pinwheelLabelled } },
  circles: { sample: circles, dim: 2, description: 'FFJORD: make_circles(factor=0.5, noise=0.08)·3', entropy: 3.266 },
  rings: { sample: rings, dim: 2, description: 'FFJORD: 4 rings of radii 3, 2.25, 1.5, 0.75, noise 0.08', entropy: 2.632, labels: { classes: 4, meaning: 'ring: 0 the outermost … 3 the innermost', sample: ringsLabelled } },
  swissroll: { sample: swissroll, dim: 2, description: 'FFJORD: make_swiss_roll(noise=1.0) columns (0, 2) / 5', entropy: 2.669 },
  'paper-moons': { sample: paperMoons, dim: 2, description: 'OT-CFM paper: make_moons(noise=0.05)·2, x −= 1' },
  'paper-scurve': { sample: paperSCurve, dim: 2, description: 'OT-CFM paper: make_s_curve(noise=0.05) columns (0, 2) ·1.5' },
  'paper-8gaussians': { sample: paperEightGaussians, dim: 2, description: 'OT-CFM paper: 8 modes at radius 5, std 1', labels: eightLabels('paper-8gaussians', 5, 1) },
  'paper-moons-std7': { sample: paperMoonsStd7, dim: 2, description: 'OT-CFM paper: make_moons(noise=0.1) standardised (scalar mean/std) ·7' },
  'paper-8gaussians-r12': { sample: paperEightGaussiansR12, dim: 2, description: 'OT-CFM paper: 8 modes (radius 4, std 0.5) ·3', labels: eightLabels('paper-8gaussians-r12', 4, 0.5, 3) },
};

/** The dataset registered under `name`; the error lists the accepted names. */
export function getDataset(name: string): DatasetInfo {
  const d = Object.prototype.hasOwnProperty.call(DATASETS, name) ? DATASETS[name] : undefined;
  if (!d) throw new Error(`unknown dataset "${name}"; accepted: ${Object.keys(DATASETS).join(', ')}`);
  return d;
}

/** Names of the sets that have labels (conditional generation). */
export function labelledDatasets(): string[] {
  return Object.keys(DATASETS).filter((k) => DATASETS[k]!.labels);
}
