/**
 * Pictures of image runs (issue 14): grids of generated images (a row per class for conditional
 * models) and translation strips (a row per source image, a column per ODE time, t = 0 → 1). The
 * 2-D scatter plots of cli/pictures.ts say nothing about 784-dimensional data, so the report shows
 * these in their place (same file names: samples.png, trajectories.png). Browser-safe, no DOM.
 *
 * Pixels come in the model's [−1, 1] scale (datasets/fashion-mnist.ts) and are drawn dark on light
 * (v = 1 is black ink), each image scaled up by an integer factor with no smoothing.
 */
import { Canvas, textWidth, type Image, type RGBA } from '../io/plot';
import { valueToPixel } from '../datasets/fashion-mnist';

const PAPER: RGBA = [255, 255, 255, 255];
const INK: RGBA = [70, 74, 82, 255];

export interface GridOptions {
  /** Pixels per image pixel (default 2). */
  scale?: number;
  /** Gap between images, in screen pixels (default 2). */
  gap?: number;
  /** A label drawn left of each row (digits, '.', '-', '+', 'e': the plot font's). */
  rowLabels?: string[];
  /** A label drawn above each column. */
  colLabels?: string[];
}

/**
 * `rows × cols` images (row-major: image r·cols + c of `pixels`, each side² values) on one canvas.
 * A missing image (fewer than rows·cols given) leaves its cell blank.
 */
export function imageGrid(pixels: ArrayLike<number>, side: number, rows: number, cols: number, opts: GridOptions = {}): Image {
  const scale = opts.scale ?? 2;
  const gap = opts.gap ?? 2;
  const n = Math.floor(pixels.length / (side * side));
  const left = opts.rowLabels ? Math.max(...opts.rowLabels.map(textWidth)) + 6 : 0;
  const top = opts.colLabels ? 11 : 0;
  const cell = side * scale + gap;
  const cv = new Canvas(left + gap + cols * cell, top + gap + rows * cell, PAPER);
  for (let r = 0; r < rows; r++) {
    const y0 = top + gap + r * cell;
    if (opts.rowLabels?.[r]) cv.text(2, y0 + Math.floor((side * scale - 7) / 2), opts.rowLabels[r]!, INK);
    for (let c = 0; c < cols; c++) {
      const x0 = left + gap + c * cell;
      if (r === 0 && opts.colLabels?.[c]) cv.text(x0 + Math.max(0, Math.floor((side * scale - textWidth(opts.colLabels[c]!)) / 2)), 2, opts.colLabels[c]!, INK);
      const k = r * cols + c;
      if (k >= n) continue;
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          const v = 255 - valueToPixel(pixels[k * side * side + y * side + x]!);
          for (let dy = 0; dy < scale; dy++) {
            const o = 4 * ((y0 + y * scale + dy) * cv.width + x0 + x * scale);
            for (let dx = 0; dx < scale; dx++) cv.rgba.set([v, v, v, 255], o + 4 * dx);
          }
        }
      }
    }
  }
  return cv.image();
}

/**
 * One row per class: `perClass[i]` holds that class's images (side² values each); row i shows the
 * first `cols` of them, labelled with the class number.
 */
export function classGrid(perClass: Float32Array[], classes: readonly number[], side: number, cols: number, opts: Omit<GridOptions, 'rowLabels'> = {}): Image {
  const px = new Float32Array(perClass.length * cols * side * side).fill(-1);
  perClass.forEach((imgs, r) => px.set(imgs.subarray(0, Math.min(imgs.length, cols * side * side)), r * cols * side * side));
  return imageGrid(px, side, perClass.length, cols, { ...opts, rowLabels: classes.map(String) });
}

/**
 * Translation strips: `steps[t]` holds m images (m × side²) at time t (the ODE's states from t = 0
 * to 1); row i follows image i through the times, the columns labelled with t.
 */
export function trajectoryStrips(steps: Float32Array[], side: number, rows: number, opts: Omit<GridOptions, 'colLabels'> = {}): Image {
  const T = steps.length;
  const m = Math.min(rows, Math.floor(steps[0]!.length / (side * side)));
  const px = new Float32Array(m * T * side * side);
  for (let i = 0; i < m; i++) for (let t = 0; t < T; t++) px.set(steps[t]!.subarray(i * side * side, (i + 1) * side * side), (i * T + t) * side * side);
  const labels = steps.map((_, t) => String(+(t / Math.max(1, T - 1)).toFixed(2)));
  return imageGrid(px, side, m, T, { ...opts, colLabels: labels });
}
