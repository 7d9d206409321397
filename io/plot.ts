/**
 * Rasterised plots for the run report (SPEC §4: samples.png, trajectories.png, loss.png) with no
 * library and no DOM, so the same code runs in Node and in a browser: scatter, line (optionally
 * log-y), trajectory and heat-map pictures into an RGBA8 buffer that io/png.ts encodes.
 *
 * Discs and lines are anti-aliased by pixel coverage (Wu's line algorithm) and composited with
 * Porter–Duff "over", so thousands of faint points or paths build up density as in matplotlib with
 * alpha. Tick labels use a built-in 5×7 bitmap font (digits, '.', '-', '+', 'e').
 */

/** Red, green, blue, alpha, each 0–255. */
export type RGBA = [number, number, number, number];

export interface Image {
  width: number;
  height: number;
  rgba: Uint8Array;
}

export interface Bounds {
  xmin: number;
  xmax: number;
  ymin: number;
  ymax: number;
}

const WHITE: RGBA = [255, 255, 255, 255];
const AXIS: RGBA = [60, 60, 60, 255];

// 5×7 glyphs, one 5-bit row mask per line, most significant bit leftmost.
const FONT: Record<string, number[]> = {
  '0': [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
  '1': [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  '2': [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  '3': [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  '4': [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
  '5': [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  '6': [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
  '7': [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  '8': [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  '9': [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  '.': [0, 0, 0, 0, 0, 0x0c, 0x0c],
  '-': [0, 0, 0, 0x1f, 0, 0, 0],
  '+': [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0],
  e: [0, 0, 0x0e, 0x11, 0x1f, 0x10, 0x0e],
};

/** An RGBA8 raster with "over" compositing and a few anti-aliased primitives. */
export class Canvas {
  readonly rgba: Uint8Array;

  constructor(readonly width: number, readonly height: number, background: RGBA = WHITE) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
      throw new Error(`plot size must be positive integers, got ${width}×${height}`);
    }
    this.rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) this.rgba.set(background, 4 * i);
  }

  /** Composites `color` over pixel (x, y) with its alpha scaled by `coverage` ∈ [0, 1]. */
  blend(x: number, y: number, color: RGBA, coverage = 1): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || !(coverage > 0)) return;
    const p = 4 * (y * this.width + x);
    const sa = (color[3] / 255) * Math.min(1, coverage);
    const da = this.rgba[p + 3]! / 255;
    const oa = sa + da * (1 - sa);
    if (oa <= 0) return;
    for (let c = 0; c < 3; c++) {
      this.rgba[p + c] = Math.round((color[c]! * sa + this.rgba[p + c]! * da * (1 - sa)) / oa);
    }
    this.rgba[p + 3] = Math.round(oa * 255);
  }

  /** Filled disc centred at (cx, cy) in pixel coordinates, edge coverage = r + ½ − distance. */
  disc(cx: number, cy: number, r: number, color: RGBA): void {
    if (!Number.isFinite(cx) || !Number.isFinite(cy)) return;
    if (r <= 0.5) {
      this.blend(Math.round(cx), Math.round(cy), color);
      return;
    }
    const x0 = Math.floor(cx - r - 1), x1 = Math.ceil(cx + r + 1);
    const y0 = Math.floor(cy - r - 1), y1 = Math.ceil(cy + r + 1);
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const d = Math.hypot(x - cx, y - cy);
        this.blend(x, y, color, Math.max(0, Math.min(1, r + 0.5 - d)));
      }
    }
  }

  /** Anti-aliased 1-pixel line (Wu, 1991): each step splits its ink between the two nearest pixels. */
  line(xa: number, ya: number, xb: number, yb: number, color: RGBA): void {
    if (![xa, ya, xb, yb].every(Number.isFinite)) return;
    const steep = Math.abs(yb - ya) > Math.abs(xb - xa);
    let [x0, y0, x1, y1] = steep ? [ya, xa, yb, xb] : [xa, ya, xb, yb];
    if (x0 > x1) [x0, x1, y0, y1] = [x1, x0, y1, y0];
    const dx = x1 - x0, grad = dx === 0 ? 0 : (y1 - y0) / dx;
    const plot = (a: number, b: number, c: number): void => (steep ? this.blend(b, a, color, c) : this.blend(a, b, color, c));
    const xs = Math.round(x0), xe = Math.round(x1);
    for (let x = Math.max(xs, -1); x <= Math.min(xe, (steep ? this.height : this.width) + 1); x++) {
      const y = y0 + grad * (x - x0);
      const yi = Math.floor(y), f = y - yi;
      plot(x, yi, 1 - f);
      plot(x, yi + 1, f);
    }
  }

  fillRect(x0: number, y0: number, x1: number, y1: number, color: RGBA): void {
    for (let y = Math.max(0, y0); y <= Math.min(this.height - 1, y1); y++) {
      for (let x = Math.max(0, x0); x <= Math.min(this.width - 1, x1); x++) this.blend(x, y, color);
    }
  }

  /** Text in the 5×7 font with its top-left corner at (x, y); unknown characters leave a gap. */
  text(x: number, y: number, s: string, color: RGBA): void {
    for (let k = 0; k < s.length; k++) {
      const g = FONT[s[k]!];
      if (!g) continue;
      for (let r = 0; r < 7; r++) {
        for (let c = 0; c < 5; c++) if (g[r]! & (0x10 >> c)) this.blend(x + 6 * k + c, y + r, color);
      }
    }
  }

  image(): Image {
    return { width: this.width, height: this.height, rgba: this.rgba };
  }
}

export function textWidth(s: string): number {
  return s.length > 0 ? 6 * s.length - 1 : 0;
}

/** About `count` (at most 1.5·count) round tick values, 1, 2 or 5 × 10^k apart, inside [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo) || !Number.isFinite(lo) || !Number.isFinite(hi)) return Number.isFinite(lo) ? [lo] : [];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw / 1.5) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** A short label for a tick `v` on a grid of spacing `step`. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return '0';
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  if (Math.abs(v) >= 1e5 || decimals > 3) return v.toExponential(1).replace('e+', 'e').replace('.0e', 'e');
  return v.toFixed(decimals);
}

interface Frame {
  left: number;
  top: number;
  w: number;
  h: number;
  b: Bounds;
}

function frameFor(width: number, height: number, axes: boolean): Omit<Frame, 'b'> {
  if (!axes) return { left: 0, top: 0, w: width, h: height };
  const left = Math.min(44, Math.floor(width / 4)), bottom = Math.min(16, Math.floor(height / 6));
  const top = Math.min(6, Math.floor(height / 20)), right = Math.min(8, Math.floor(width / 20));
  return { left, top, w: Math.max(1, width - left - right), h: Math.max(1, height - top - bottom) };
}

function toPx(f: Frame, x: number, y: number): [number, number] {
  return [
    f.left + ((x - f.b.xmin) / (f.b.xmax - f.b.xmin)) * (f.w - 1),
    f.top + (1 - (y - f.b.ymin) / (f.b.ymax - f.b.ymin)) * (f.h - 1),
  ];
}

/** A log10-axis tick label: decades as plain numbers near 1 and as 1eK beyond, others to 2–3 digits. */
function logLabel(v: number, step: number): string {
  const x = 10 ** v;
  if (Math.abs(v - Math.round(v)) < 1e-9) return Math.abs(v) >= 3 ? `1e${Math.round(v)}` : formatTick(x, 10 ** Math.floor(Math.min(0, v)));
  return x.toPrecision(step < 0.5 ? 3 : 2).replace('e+', 'e');
}

/** Axes box with tick marks and labels; on a log10 y axis spanning ≥ 1.5 decades only whole decades are ticked. */
function drawAxes(cv: Canvas, f: Frame, logY = false): void {
  const x0 = f.left - 1, y0 = f.top - 1, x1 = f.left + f.w, y1 = f.top + f.h;
  cv.fillRect(x0, y0, x1, y0, AXIS);
  cv.fillRect(x0, y1, x1, y1, AXIS);
  cv.fillRect(x0, y0, x0, y1, AXIS);
  cv.fillRect(x1, y0, x1, y1, AXIS);
  const xt = niceTicks(f.b.xmin, f.b.xmax, Math.max(3, Math.floor(f.w / 45)));
  const xs = xt.length > 1 ? xt[1]! - xt[0]! : 1;
  for (const v of xt) {
    const px = Math.round(toPx(f, v, f.b.ymin)[0]);
    cv.fillRect(px, y1 - 3, px, y1, AXIS);
    const s = formatTick(v, xs);
    const tx = Math.max(0, Math.min(cv.width - textWidth(s), px - Math.floor(textWidth(s) / 2)));
    if (y1 + 10 <= cv.height) cv.text(tx, y1 + 3, s, AXIS);
  }
  let yt = niceTicks(f.b.ymin, f.b.ymax, Math.max(3, Math.floor(f.h / 35)));
  if (logY && f.b.ymax - f.b.ymin >= 1.5) yt = yt.filter((v) => Math.abs(v - Math.round(v)) < 1e-9);
  const ys = yt.length > 1 ? yt[1]! - yt[0]! : 1;
  for (const v of yt) {
    const py = Math.round(toPx(f, f.b.xmin, v)[1]);
    cv.fillRect(x0, py, x0 + 3, py, AXIS);
    const s = logY ? logLabel(v, ys) : formatTick(v, ys);
    const tx = x0 - 3 - textWidth(s);
    if (tx >= 0) cv.text(tx, Math.max(0, Math.min(cv.height - 7, py - 3)), s, AXIS);
  }
}

/** Bounds around finite (x, y) pairs with 5 % margin, stretched so one unit is as long on both axes. */
export function autoBounds(sets: Float32Array[], w: number, h: number): Bounds {
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (const p of sets) {
    for (let i = 0; i + 1 < p.length; i += 2) {
      const x = p[i]!, y = p[i + 1]!;
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      if (x < xmin) xmin = x;
      if (x > xmax) xmax = x;
      if (y < ymin) ymin = y;
      if (y > ymax) ymax = y;
    }
  }
  if (!(xmax >= xmin)) return { xmin: -1, xmax: 1, ymin: -1, ymax: 1 };
  const cx = (xmin + xmax) / 2, cy = (ymin + ymax) / 2;
  const upp = Math.max((xmax - xmin) / w, (ymax - ymin) / h, 1e-9) * 1.1;
  return { xmin: cx - (upp * w) / 2, xmax: cx + (upp * w) / 2, ymin: cy - (upp * h) / 2, ymax: cy + (upp * h) / 2 };
}

function checkBounds(b: Bounds): Bounds {
  if (![b.xmin, b.xmax, b.ymin, b.ymax].every(Number.isFinite) || !(b.xmax > b.xmin) || !(b.ymax > b.ymin)) {
    throw new Error(`plot bounds ${JSON.stringify(b)} must be finite with xmax > xmin and ymax > ymin`);
  }
  return b;
}

export interface ScatterSeries {
  /** n×2 row-major points. */
  points: Float32Array;
  color: RGBA;
  /** Disc radius in pixels; ≤ 0.5 draws single pixels. */
  radius: number;
}

/** Scatter plot of several point sets, drawn in order (later series on top). */
export function scatterPlot(opts: { width: number; height: number; series: ScatterSeries[]; bounds?: Bounds; axes?: boolean; background?: RGBA }): Image {
  const cv = new Canvas(opts.width, opts.height, opts.background);
  const fr = frameFor(opts.width, opts.height, opts.axes ?? true);
  const f: Frame = { ...fr, b: checkBounds(opts.bounds ?? autoBounds(opts.series.map((s) => s.points), fr.w, fr.h)) };
  for (const s of opts.series) {
    for (let i = 0; i + 1 < s.points.length; i += 2) {
      const [px, py] = toPx(f, s.points[i]!, s.points[i + 1]!);
      if (px < f.left - s.radius - 1 || px > f.left + f.w + s.radius || py < f.top - s.radius - 1 || py > f.top + f.h + s.radius) continue;
      cv.disc(px, py, s.radius, s.color);
    }
  }
  if (opts.axes ?? true) drawAxes(cv, f);
  return cv.image();
}

export interface LineSeries {
  y: Float64Array | Float32Array | number[];
  color: RGBA;
}

/** Lines of y against index 0…len−1 (e.g. a loss curve); non-finite (or, on a log axis, non-positive) values break the line. */
export function linePlot(opts: { width: number; height: number; series: LineSeries[]; logY?: boolean; background?: RGBA }): Image {
  const cv = new Canvas(opts.width, opts.height, opts.background);
  const log = opts.logY ?? false;
  const tr = (v: number): number => (log ? (v > 0 ? Math.log10(v) : NaN) : v);
  let ymin = Infinity, ymax = -Infinity, len = 0;
  for (const s of opts.series) {
    len = Math.max(len, s.y.length);
    for (let i = 0; i < s.y.length; i++) {
      const v = tr(s.y[i]!);
      if (!Number.isFinite(v)) continue;
      if (v < ymin) ymin = v;
      if (v > ymax) ymax = v;
    }
  }
  if (!(ymax >= ymin)) [ymin, ymax] = [0, 1];
  if (ymax - ymin < 1e-12) [ymin, ymax] = [ymin - 0.5, ymax + 0.5];
  const pad = (ymax - ymin) * 0.05;
  const f: Frame = { ...frameFor(opts.width, opts.height, true), b: { xmin: 0, xmax: Math.max(1, len - 1), ymin: ymin - pad, ymax: ymax + pad } };
  for (const s of opts.series) {
    let prev: [number, number] | null = null;
    for (let i = 0; i < s.y.length; i++) {
      const v = tr(s.y[i]!);
      if (!Number.isFinite(v)) {
        prev = null;
        continue;
      }
      const p = toPx(f, i, v);
      if (prev) cv.line(prev[0], prev[1], p[0], p[1], s.color);
      else cv.blend(Math.round(p[0]), Math.round(p[1]), s.color);
      prev = p;
    }
  }
  drawAxes(cv, f, log);
  return cv.image();
}

/**
 * Paths of points through time, as in torchcfm's plot_trajectories: `steps[t]` holds the n×2
 * positions at time t; each path is a faint line, starts are drawn in `startColor` and ends in
 * `endColor` on top.
 */
export function trajectoryPlot(opts: {
  width: number;
  height: number;
  steps: Float32Array[];
  bounds?: Bounds;
  maxTrajectories?: number;
  lineColor?: RGBA;
  startColor?: RGBA;
  endColor?: RGBA;
  radius?: number;
  axes?: boolean;
}): Image {
  const { steps } = opts;
  if (steps.length === 0) throw new Error('trajectoryPlot: steps must hold at least one n×2 array');
  const n = steps[0]!.length / 2;
  for (let t = 0; t < steps.length; t++) {
    if (steps[t]!.length !== 2 * n) throw new Error(`trajectoryPlot: steps[${t}] has ${steps[t]!.length} values, expected ${2 * n} (n×2 like steps[0])`);
  }
  const axes = opts.axes ?? true;
  const fr = frameFor(opts.width, opts.height, axes);
  const f: Frame = { ...fr, b: checkBounds(opts.bounds ?? autoBounds(steps, fr.w, fr.h)) };
  const cv = new Canvas(opts.width, opts.height);
  const m = Math.min(n, opts.maxTrajectories ?? 2000);
  const line = opts.lineColor ?? [128, 128, 0, 40];
  for (let i = 0; i < m; i++) {
    let prev = toPx(f, steps[0]![2 * i]!, steps[0]![2 * i + 1]!);
    for (let t = 1; t < steps.length; t++) {
      const p = toPx(f, steps[t]![2 * i]!, steps[t]![2 * i + 1]!);
      cv.line(prev[0], prev[1], p[0], p[1], line);
      prev = p;
    }
  }
  const r = opts.radius ?? 1.2;
  const ends: [Float32Array, RGBA][] = [[steps[0]!, opts.startColor ?? [0, 0, 0, 200]], [steps[steps.length - 1]!, opts.endColor ?? [30, 60, 220, 255]]];
  for (const [pts, color] of ends) {
    for (let i = 0; i < m; i++) {
      const [px, py] = toPx(f, pts[2 * i]!, pts[2 * i + 1]!);
      cv.disc(px, py, r, color);
    }
  }
  if (axes) drawAxes(cv, f);
  return cv.image();
}

/** Eight stops sampled evenly from matplotlib's viridis (0 → dark purple, 1 → yellow). */
const VIRIDIS: ReadonlyArray<readonly [number, number, number]> = [
  [68, 1, 84], [70, 50, 126], [54, 92, 141], [39, 127, 142],
  [31, 161, 135], [74, 193, 109], [160, 218, 57], [253, 231, 37],
];

/** Viridis-like colour of t ∈ [0, 1] by linear interpolation between the eight stops. */
export function viridis(t: number): [number, number, number] {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x)), f = x - i;
  const a = VIRIDIS[i]!, b = VIRIDIS[i + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + (b[c]! - a[c]!) * f)) as [number, number, number];
}

/**
 * Heat map of a gw×gh grid `values[j·gw + i]`, column i left to right and row j from the BOTTOM
 * up (y grows upwards as in the scatter plots), scaled min→max of the finite values; non-finite
 * cells are left white.
 */
export function densityImage(opts: { width: number; height: number; values: Float32Array | Float64Array; gw: number; gh: number }): Image {
  const { width, height, values, gw, gh } = opts;
  if (!Number.isInteger(gw) || !Number.isInteger(gh) || gw < 1 || gh < 1 || values.length !== gw * gh) {
    throw new Error(`densityImage: values has ${values.length} entries, expected gw·gh with positive integers gw=${gw}, gh=${gh}`);
  }
  let lo = Infinity, hi = -Infinity;
  for (let k = 0; k < values.length; k++) {
    const v = values[k]!;
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = hi > lo ? hi - lo : 1;
  const cv = new Canvas(width, height);
  for (let y = 0; y < height; y++) {
    const j = gh - 1 - Math.min(gh - 1, Math.floor((y * gh) / height));
    for (let x = 0; x < width; x++) {
      const v = values[j * gw + Math.min(gw - 1, Math.floor((x * gw) / width))]!;
      if (!Number.isFinite(v)) continue;
      const [r, g, b] = viridis((v - lo) / span);
      cv.rgba.set([r, g, b, 255], 4 * (y * width + x));
    }
  }
  return cv.image();
}
