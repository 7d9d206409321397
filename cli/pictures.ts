/**
 * The pictures of a run (SPEC §4): samples.png (generated vs target), trajectories.png (CFM),
 * loss.png, density.png (2-D flows). Browser-safe: the page draws them with the same code as Node.
 * PNGs are deflated with node:zlib in Node and with CompressionStream in a browser.
 */
import { encodePng } from '../io/png';
import { Canvas, autoBounds, densityImage, niceTicks, scatterPlot, textWidth, trajectoryPlot, type Bounds, type Image } from '../io/plot';
import type { DataMatrix, TrainOutcome } from '../train/contract';

export const COLORS = {
  target: [140, 140, 150, 90] as [number, number, number, number],
  samples: [37, 99, 235, 150] as [number, number, number, number],
  lossRaw: [147, 197, 253, 255] as [number, number, number, number],
  lossSmooth: [29, 78, 216, 255] as [number, number, number, number],
};

/** The first two columns of an n×dim matrix as n×2 (the plots are 2-D). */
export function firstTwo(m: DataMatrix): Float32Array {
  if (m.dim === 2) return m.data;
  const out = new Float32Array(m.n * 2);
  for (let i = 0; i < m.n; i++) {
    out[2 * i] = m.data[i * m.dim]!;
    out[2 * i + 1] = m.dim > 1 ? m.data[i * m.dim + 1]! : 0;
  }
  return out;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const x = q * (sorted.length - 1);
  const i = Math.floor(x);
  return sorted[i]! + (sorted[Math.min(sorted.length - 1, i + 1)]! - sorted[i]!) * (x - i);
}

/**
 * Plot bounds that ignore a few far-off points (a diverged sample must not shrink the picture to a
 * dot): the box of the 0.5 %–99.5 % quantiles of each axis, grown by 15 %, then aspect-fitted.
 */
export function robustBounds(sets: Float32Array[], w: number, h: number): Bounds {
  const xs: number[] = [], ys: number[] = [];
  for (const p of sets) {
    for (let i = 0; i + 1 < p.length; i += 2) {
      if (Number.isFinite(p[i]!) && Number.isFinite(p[i + 1]!)) {
        xs.push(p[i]!);
        ys.push(p[i + 1]!);
      }
    }
  }
  if (xs.length === 0) return { xmin: -1, xmax: 1, ymin: -1, ymax: 1 };
  const sx = Float64Array.from(xs).sort(), sy = Float64Array.from(ys).sort();
  const [x0, x1, y0, y1] = [quantile(sx, 0.005), quantile(sx, 0.995), quantile(sy, 0.005), quantile(sy, 0.995)];
  const gx = Math.max(x1 - x0, 1e-6) * 0.075, gy = Math.max(y1 - y0, 1e-6) * 0.075;
  return autoBounds([Float32Array.from([x0 - gx, y0 - gy, x1 + gx, y1 + gy])], w, h);
}

export function samplesImage(samples: DataMatrix, target: DataMatrix, size = 560): Image {
  const s = firstTwo(samples), t = firstTwo(target);
  return scatterPlot({
    width: size,
    height: size,
    bounds: robustBounds([t, s], size - 52, size - 22),
    series: [
      { points: t, color: COLORS.target, radius: 1.5 },
      { points: s, color: COLORS.samples, radius: 1.5 },
    ],
  });
}

export function trajectoriesImage(steps: Float32Array[], size = 560): Image {
  // Fainter paths when there are many (they build up density), stronger when there are few.
  const n = Math.min(1500, steps[0]!.length / 2);
  const alpha = Math.round(Math.min(110, Math.max(20, 40 * Math.sqrt(1000 / Math.max(1, n)))));
  return trajectoryPlot({
    width: size,
    height: size,
    steps,
    bounds: robustBounds([steps[0]!, steps[steps.length - 1]!], size - 52, size - 22),
    maxTrajectories: 1500,
    lineColor: [120, 120, 40, alpha],
    startColor: [20, 20, 20, 170],
    endColor: [37, 99, 235, 230],
    radius: 1.3,
  });
}

/** Tick values for a log10 axis spanning [lo, hi] (log10 units): 1-2-5 steps, or decades when that is too many. */
export function logTicks(lo: number, hi: number): number[] {
  for (const mant of [[1, 2, 5], [1]] as const) {
    const out: number[] = [];
    for (let k = Math.floor(lo) - 1; k <= Math.ceil(hi); k++) {
      for (const m of mant) {
        const v = Math.log10(m) + k;
        if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v);
      }
    }
    if (out.length <= 8 || mant.length === 1) return out.length >= 2 ? out : [lo, hi];
  }
  return [lo, hi];
}

function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  return String(Number(v.toPrecision(3)));
}

const GRID: [number, number, number, number] = [232, 235, 240, 255];
const INK: [number, number, number, number] = [70, 74, 82, 255];

/**
 * Loss against step with light grid lines: the recorded losses drawn faint, an exponential moving
 * average on top; the y axis is logarithmic (1-2-5 ticks) when the loss is positive and spans more
 * than a factor of 5, so both the first drop and the slow tail stay visible.
 */
export function lossImage(losses: { step: number; loss: number }[], width = 760, height = 300): Image {
  const pts = losses.filter((l) => Number.isFinite(l.loss)).sort((a, b) => a.step - b.step);
  const cv = new Canvas(width, height);
  let lo = Infinity, hi = -Infinity;
  for (const p of pts) [lo, hi] = [Math.min(lo, p.loss), Math.max(hi, p.loss)];
  const logY = pts.length > 0 && lo > 0 && hi / lo > 5;
  const f = (v: number) => (logY ? Math.log10(v) : v);
  let y0 = pts.length ? f(lo) : 0, y1 = pts.length ? f(hi) : 1;
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.04;
  [y0, y1] = [y0 - pad, y1 + pad];
  const x0 = pts.length ? Math.min(0, pts[0]!.step) : 0, x1 = Math.max(x0 + 1, pts.length ? pts[pts.length - 1]!.step : 1);
  const L = 50, R = 12, T = 8, B = 20;
  const W = width - L - R, H = height - T - B;
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - 1);
  const py = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - 1);
  // Grid and labels.
  const yt = logY ? logTicks(y0, y1) : niceTicks(y0, y1, Math.max(3, Math.floor(H / 45)));
  for (const v of yt) {
    const y = Math.round(py(v));
    cv.fillRect(L, y, L + W - 1, y, GRID);
    const s = tickLabel(logY ? 10 ** v : v);
    cv.text(L - 5 - textWidth(s), Math.max(0, Math.min(height - 7, y - 3)), s, INK);
  }
  for (const v of niceTicks(x0, x1, Math.max(3, Math.floor(W / 70)))) {
    const x = Math.round(px(v));
    cv.fillRect(x, T, x, T + H - 1, GRID);
    const s = tickLabel(v);
    cv.text(Math.max(0, Math.min(width - textWidth(s), x - Math.floor(textWidth(s) / 2))), T + H + 5, s, INK);
  }
  cv.fillRect(L - 1, T + H, L + W - 1, T + H, INK);
  cv.fillRect(L - 1, T, L - 1, T + H, INK);
  // Raw losses, then their moving average (span about 1/40 of the points).
  const line = (ys: { step: number; v: number }[], color: [number, number, number, number], dy = 0) => {
    let prev: [number, number] | null = null;
    for (const p of ys) {
      const q: [number, number] = [px(p.step), py(f(p.v)) + dy];
      if (prev) cv.line(prev[0], prev[1], q[0], q[1], color);
      prev = q;
    }
  };
  line(pts.map((p) => ({ step: p.step, v: p.loss })), COLORS.lossRaw);
  // Centred moving average (no lag at the steep start), over about 1/40 of the points, taken in
  // the plotted (log) units.
  const k = Math.max(0, Math.round(pts.length / 80));
  const fv = pts.map((p) => f(p.loss));
  const prefix = [0];
  for (const v of fv) prefix.push(prefix[prefix.length - 1]! + v);
  const smooth = pts.map((p, i) => {
    const a = Math.max(0, i - k), b = Math.min(pts.length, i + k + 1);
    const m = (prefix[b]! - prefix[a]!) / (b - a);
    return { step: p.step, v: logY ? 10 ** m : m };
  });
  line(smooth, COLORS.lossSmooth);
  line(smooth, COLORS.lossSmooth, 0.9); // a second pass just below: a bolder line than the raw one
  return cv.image();
}

/** Density heat map (exp of the log-density grid), sized to the grid's aspect. */
export function densityPicture(d: NonNullable<TrainOutcome['density']>, size = 560): Image {
  const [xmin, xmax, ymin, ymax] = d.bounds;
  const aspect = (xmax - xmin) / (ymax - ymin);
  const width = aspect >= 1 ? size : Math.max(16, Math.round(size * aspect));
  const height = aspect >= 1 ? Math.max(16, Math.round(size / aspect)) : size;
  let hi = -Infinity;
  for (const v of d.values) if (Number.isFinite(v) && v > hi) hi = v;
  const values = new Float32Array(d.values.length);
  for (let k = 0; k < values.length; k++) values[k] = Number.isFinite(d.values[k]!) ? Math.exp(d.values[k]! - hi) : 0;
  return densityImage({ width, height, values, gw: d.gw, gh: d.gh });
}

/** Raw PNG scanlines (filter byte 0 per row), what encodePng deflates. */
function scanlines(img: Image): Uint8Array {
  const stride = img.width * 4;
  const raw = new Uint8Array(img.height * (stride + 1));
  for (let y = 0; y < img.height; y++) raw.set(img.rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  return raw;
}

async function browserDeflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as BlobPart]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** PNG bytes of `img`, compressed in Node and in browsers alike. */
export async function pngOf(img: Image): Promise<Uint8Array> {
  const proc = (globalThis as { process?: { getBuiltinModule?: unknown } }).process;
  if (!proc?.getBuiltinModule && typeof CompressionStream !== 'undefined') {
    // encodePng calls deflate exactly once, on these scanlines: compress them first (async).
    const z = await browserDeflate(scanlines(img));
    return encodePng(img.width, img.height, img.rgba, () => z);
  }
  return encodePng(img.width, img.height, img.rgba);
}

export interface Pictures {
  /** File name → PNG bytes. */
  [file: string]: Uint8Array;
}

/** All pictures of a training outcome. */
export async function renderPictures(o: Pick<TrainOutcome, 'samples' | 'target' | 'trajectories' | 'density' | 'state'>): Promise<Pictures> {
  const out: Pictures = {};
  out['samples.png'] = await pngOf(samplesImage(o.samples, o.target));
  if (o.trajectories && o.trajectories.length > 1) {
    const dim = o.samples.dim;
    const steps = o.trajectories.map((t) => firstTwo({ data: t, n: t.length / dim, dim }));
    out['trajectories.png'] = await pngOf(trajectoriesImage(steps));
  }
  out['loss.png'] = await pngOf(lossImage(o.state.losses));
  if (o.density) out['density.png'] = await pngOf(densityPicture(o.density));
  return out;
}
