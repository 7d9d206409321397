/**
 * One picture of the learned flow densities for the README: a grid with one column per dataset and
 * one row per model, above them a row with the true density (a 2-D histogram of 1 000 000 samples over
 * the same window), every panel exp(log p) scaled to its own 98th percentile and clipped there
 * (viridis; scaling to the maximum lets a thin spike of a learned density hide the rest). Reads the
 * `<model>-<dataset>-density.json` grids that bench/flows-quality.ts writes, from any number of its
 * output folders (runs with different settings can share one figure).
 *
 *   node scripts/run-ts.mjs bench/flows-figure.ts OUT.png DIR [DIR ...] [--panel 200]
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../engine/philox';
import { getDataset } from '../datasets/toy2d';
import { Canvas, densityImage, type Image } from '../io/plot';
import { encodePng } from '../io/png';

interface Grid {
  model: string;
  dataset: string;
  gap: number;
  bounds: [number, number, number, number];
  gw: number;
  gh: number;
  logDensity: (number | null)[];
}

const MODEL_ORDER = ['realnvp', 'maf', 'glow', 'nice', 'planar', 'radial'];
const DATASET_ORDER = ['ffjord-moons', 'checkerboard', 'ffjord-8gaussians'];

function usage(msg: string): never {
  console.error(`flows-figure: ${msg}\nusage: node scripts/run-ts.mjs bench/flows-figure.ts OUT.png DIR [DIR ...] [--panel PIXELS]`);
  process.exit(2);
}

const args = process.argv.slice(2);
let panel = 200;
const pi = args.indexOf('--panel');
if (pi >= 0) {
  panel = Number(args[pi + 1]);
  if (!Number.isInteger(panel) || panel < 16 || panel > 2000) usage(`--panel ${args[pi + 1]} is not accepted; accepted: an integer from 16 to 2000`);
  args.splice(pi, 2);
}
const [outPath, ...dirs] = args;
if (!outPath || !outPath.endsWith('.png')) usage('the first argument must be the output .png');
if (dirs.length === 0) usage('give at least one folder written by bench/flows-quality.ts');

const grids = new Map<string, Grid>();
for (const dir of dirs) {
  const files = readdirSync(dir).filter((f) => f.endsWith('-density.json'));
  if (files.length === 0) usage(`${dir} holds no *-density.json (run bench/flows-quality.ts into it first)`);
  for (const f of files) {
    const g = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Grid;
    grids.set(`${g.model}/${g.dataset}`, g); // later folders win
  }
}
const byOrder = (order: string[]) => (a: string, b: string) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b);
const models = [...new Set([...grids.values()].map((g) => g.model))].sort(byOrder(MODEL_ORDER));
const datasets = [...new Set([...grids.values()].map((g) => g.dataset))].sort(byOrder(DATASET_ORDER));

/** Colour range of a panel: values divided by their 98th percentile and clipped at 1 (NaN stays NaN). */
const CLIP_PERCENTILE = 0.98;
function clipToPercentile(values: Float32Array): Float32Array {
  const finite = values.filter(Number.isFinite).sort();
  const top = finite.length ? finite[Math.min(finite.length - 1, Math.floor(CLIP_PERCENTILE * finite.length))]! : 1;
  return values.map((v) => (Number.isFinite(v) ? Math.min(1, v / (top > 0 ? top : 1)) : v));
}

/** exp(log p − max) (no overflow), clipped to its percentile range; missing cells stay white. */
function fromLog(g: Grid): Float32Array {
  let hi = -Infinity;
  for (const v of g.logDensity) if (v !== null && v > hi) hi = v;
  return clipToPercentile(Float32Array.from(g.logDensity, (v) => (v === null ? NaN : Math.exp(v - hi))));
}

/** 2-D histogram of fresh samples on the model's grid: the true density at the same resolution. */
function truth(dataset: string, g: Grid): Float32Array {
  const [x0, x1, y0, y1] = g.bounds;
  const counts = new Float32Array(g.gw * g.gh);
  const rng = new Rng(20261122, 1);
  const pts = getDataset(dataset).sample(1_000_000, rng);
  for (let k = 0; k < pts.length; k += 2) {
    const i = Math.floor(((pts[k]! - x0) / (x1 - x0)) * g.gw), j = Math.floor(((pts[k + 1]! - y0) / (y1 - y0)) * g.gh);
    if (i >= 0 && i < g.gw && j >= 0 && j < g.gh) counts[j * g.gw + i]! += 1;
  }
  return counts;
}

const gapPx = 6;
const cv = new Canvas(datasets.length * (panel + gapPx) + gapPx, (models.length + 1) * (panel + gapPx) + gapPx);
const put = (img: Image, col: number, row: number) => {
  const ox = gapPx + col * (panel + gapPx), oy = gapPx + row * (panel + gapPx);
  for (let y = 0; y < img.height; y++) cv.rgba.set(img.rgba.subarray(y * img.width * 4, (y + 1) * img.width * 4), 4 * ((oy + y) * cv.width + ox));
};
datasets.forEach((dataset, c) => {
  const any = models.map((m) => grids.get(`${m}/${dataset}`)).find((g) => g !== undefined)!;
  put(densityImage({ width: panel, height: panel, values: clipToPercentile(truth(dataset, any)), gw: any.gw, gh: any.gh }), c, 0);
  models.forEach((m, r) => {
    const g = grids.get(`${m}/${dataset}`);
    if (g) put(densityImage({ width: panel, height: panel, values: fromLog(g), gw: g.gw, gh: g.gh }), c, r + 1);
  });
});
writeFileSync(outPath, encodePng(cv.width, cv.height, cv.rgba));
console.log(`${outPath}: columns ${datasets.join(', ')}; rows: true density, ${models.join(', ')}`);
for (const m of models) for (const d of datasets) {
  const g = grids.get(`${m}/${d}`);
  console.log(`  ${m} ${d}: ${g ? `gap ${g.gap.toFixed(3)} nats` : 'missing'}`);
}
