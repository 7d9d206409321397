/**
 * Quality benchmark for normalizing flows (issue 3, SPEC §2): held-out test NLL of RealNVP and MAF
 * on ffjord-moons, checkerboard and ffjord-8gaussians next to each density's entropy (the floor for
 * any model; target: within 0.15 nats), trained by flows/train.ts (the CLI's TrainJob), with density
 * pictures (and sample scatter plots) written to a folder.
 *
 *   node scripts/run-ts.mjs bench/flows-quality.ts OUT_DIR [--steps 4000] [--batch 256] [--lr 2e-3]
 *        [--models realnvp,maf] [--datasets ffjord-moons,checkerboard,ffjord-8gaussians]
 *        [--layers K] [--hidden 64,64] [--seed 0] [--test-size 20000]
 *        [--variant coupling|autoregressive] [--bins K] [--bound B]   (nsf)
 *        [--fusion ops|layer|mlp|step]   (the engine's fusion level; default the flows' mlp)
 *
 * Prints one progress line per report to stderr and a markdown table to stdout; writes
 * OUT_DIR/<model>-<dataset>-density.png, -samples.png, -density.json (the log-density grid, for
 * bench/flows-figure.ts), results.json and table.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adapterSummary, init } from '../engine';
import { getDataset } from '../datasets/toy2d';
import { densityImage, scatterPlot } from '../io/plot';
import { encodePng } from '../io/png';
import { flowJob } from '../train/registry';
import type { FlowMethod } from '../train/contract';

function usage(msg: string): never {
  console.error(`flows-quality: ${msg}\nusage: node scripts/run-ts.mjs bench/flows-quality.ts OUT_DIR [--steps N] [--batch B] [--lr X] [--models realnvp,maf] [--datasets a,b] [--layers K] [--hidden 64,64] [--seed S] [--test-size N] [--variant coupling|autoregressive] [--bins K] [--bound B] [--fusion ops|layer|mlp|step]`);
  process.exit(2);
}

const args = process.argv.slice(2);
const outDir = args[0];
if (!outDir || outDir.startsWith('--')) usage('missing OUT_DIR (the folder for the pictures)');
const flags = new Map<string, string>();
for (let i = 1; i < args.length; i += 2) {
  const k = args[i]!;
  if (!k.startsWith('--') || args[i + 1] === undefined) usage(`bad argument "${k}"`);
  flags.set(k.slice(2), args[i + 1]!);
}
const known = ['steps', 'batch', 'lr', 'models', 'datasets', 'layers', 'hidden', 'seed', 'test-size', 'variant', 'bins', 'bound', 'fusion'];
for (const k of flags.keys()) if (!known.includes(k)) usage(`unknown flag --${k}; accepted: ${known.map((f) => `--${f}`).join(', ')}`);
const num = (k: string, d: number) => {
  const v = flags.has(k) ? Number(flags.get(k)) : d;
  if (!Number.isFinite(v) || v <= 0) usage(`--${k} must be a positive number`);
  return v;
};
const steps = num('steps', 4000);
const batch = num('batch', 256);
const lr = num('lr', 2e-3);
const seed = flags.has('seed') ? Number(flags.get('seed')) : 0;
const testSize = num('test-size', 20000);
const models = (flags.get('models') ?? 'realnvp,maf').split(',') as FlowMethod[];
const datasets = (flags.get('datasets') ?? 'ffjord-moons,checkerboard,ffjord-8gaussians').split(',');
for (const d of datasets) getDataset(d);
const options: Record<string, unknown> = { testSize, grid: 200 };
if (flags.has('layers')) options.layers = Number(flags.get('layers'));
if (flags.has('hidden')) options.hidden = flags.get('hidden');
for (const k of ['variant', 'bins', 'bound']) if (flags.has(k)) options[k] = flags.get(k); // nsf's options
if (flags.has('fusion')) options.fusion = flags.get('fusion');

mkdirSync(outDir, { recursive: true });
const backend = await init({ runtime: 'node' });
console.error(`adapter: ${adapterSummary(backend.adapter)}; steps ${steps}, batch ${batch}, lr ${lr} (cosine), seed ${seed}, test set ${testSize}`);

interface Row {
  model: string;
  dataset: string;
  nll: number;
  entropy: number;
  gap: number;
  w2: number | null;
  ms_per_step: number;
  dispatches_per_step: number;
  minutes: number;
}
const rows: Row[] = [];
for (const model of models) {
  for (const dataset of datasets) {
    const t0 = performance.now();
    const out = await flowJob.run(
      { method: model, source: null, target: dataset, steps, batch, lr, seed, options },
      { progressIntervalMs: 30000, onProgress: (p) => console.error(`${model} ${dataset} step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} (${(p.elapsedMs / 1000).toFixed(0)} s)`) },
    );
    const entropy = getDataset(dataset).entropy!;
    const row: Row = {
      model, dataset, nll: out.metrics.nll!, entropy, gap: out.metrics.nll! - entropy, w2: out.metrics.w2,
      ms_per_step: out.metrics.ms_per_step, dispatches_per_step: out.metrics.dispatches_per_step, minutes: (performance.now() - t0) / 60000,
    };
    rows.push(row);
    console.error(`${model} ${dataset}: test NLL ${row.nll.toFixed(3)} (entropy ${entropy.toFixed(3)}, gap ${row.gap.toFixed(3)}), ${row.ms_per_step.toFixed(1)} ms/step`);
    const d = out.density!;
    const grid = { model, dataset, gap: row.gap, bounds: d.bounds, gw: d.gw, gh: d.gh, logDensity: Array.from(d.values, (v) => (Number.isFinite(v) ? Math.round(v * 1e4) / 1e4 : null)) };
    writeFileSync(join(outDir, `${model}-${dataset}-density.json`), JSON.stringify(grid));
    const img = densityImage({ width: 400, height: 400, values: d.values.map(Math.exp), gw: d.gw, gh: d.gh });
    writeFileSync(join(outDir, `${model}-${dataset}-density.png`), encodePng(img.width, img.height, img.rgba));
    const [x0, x1, y0, y1] = d.bounds;
    const sc = scatterPlot({
      width: 400, height: 400, bounds: { xmin: x0, xmax: x1, ymin: y0, ymax: y1 },
      series: [
        { points: out.target.data, color: [200, 200, 200, 255], radius: 1 },
        { points: out.samples.data, color: [30, 90, 200, 255], radius: 1 },
      ],
    });
    writeFileSync(join(outDir, `${model}-${dataset}-samples.png`), encodePng(sc.width, sc.height, sc.rgba));
    writeFileSync(join(outDir, 'results.json'), JSON.stringify({ steps, batch, lr, seed, testSize, options, adapter: adapterSummary(backend.adapter), rows }, null, 2));
  }
}

const table = [
  `| model | dataset | test NLL (nats) | entropy | gap | within 0.15 | W2 | ms/step | dispatches/step |`,
  `|---|---|---|---|---|---|---|---|---|`,
  ...rows.map((r) => `| ${r.model} | ${r.dataset} | ${r.nll.toFixed(3)} | ${r.entropy.toFixed(3)} | ${r.gap.toFixed(3)} | ${r.gap <= 0.15 ? 'yes' : 'no'} | ${r.w2 === null ? '–' : r.w2.toFixed(3)} | ${r.ms_per_step.toFixed(1)} | ${r.dispatches_per_step.toFixed(0)} |`),
].join('\n');
const header = `Flows quality: ${steps} steps, batch ${batch}, Adam lr ${lr} cosine, seed ${seed}, test set ${testSize} fresh samples; ${adapterSummary(backend.adapter)}`;
writeFileSync(join(outDir, 'table.md'), `${header}\n\n${table}\n`);
console.log(`${header}\n\n${table}`);
