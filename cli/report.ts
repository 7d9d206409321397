/**
 * report.html: one self-contained page per run (no network, images inlined as data: URLs) with the
 * metrics, the pictures, the configuration and the adapter that ran it.
 */
import type { AdapterReport } from '../engine/backend';
import type { FusionReport, Method } from '../train/contract';

export interface RunResult {
  type: 'result';
  method: string;
  source: string | null;
  target: string | null;
  steps: number;
  batch: number;
  seed: number;
  runtime: string;
  adapter: string;
  w2: number | null;
  npe: number | null;
  nll: number | null;
  loss: number | null;
  ms_per_step: number | null;
  dispatches_per_step: number | null;
  out: string;
}

export interface ReportInput {
  result: RunResult;
  /** The trainer's resolved configuration. */
  config: Record<string, unknown>;
  adapter: AdapterReport;
  userAgent?: string;
  pictures: Record<string, Uint8Array>;
  wallSeconds: number;
  startedAt: Date;
  finishedAt: Date;
  command: string;
  resumedFrom: number | null;
  lr: number;
  dataFile?: string | null;
  version?: string;
  /** The fusion level the training step ran at (metrics.json `fusion`), when the trainer reports it. */
  fusion?: FusionReport | null;
  /** Image runs (cli/images.ts): the `images` block of metrics.json. */
  images?: Record<string, unknown> | null;
}

/** Display names; typed by the method list, so a new method without a name fails `tsc`. */
export const METHOD_NAMES: Record<Method, string> = {
  otcfm: 'OT-CFM',
  icfm: 'I-CFM',
  fm: 'FM (Lipman et al.)',
  sbcfm: 'SB-CFM',
  vpcfm: 'VP-CFM',
  sf2m: '[SF]2M',
  realnvp: 'Real NVP',
  nice: 'NICE',
  glow: 'Glow',
  planar: 'Planar flow',
  radial: 'Radial flow',
  maf: 'MAF',
  nsf: 'Neural spline flow',
};

/** SPEC §5.1: torchcfm on the CPU (PyTorch, 2 cores, batch 256). */
const REFERENCES: Record<string, { steps: number; w2: string; npe: string; note: string }[]> = {
  'gaussian>moons>icfm': [
    { steps: 2000, w2: '0.459 ± 0.045', npe: '0.38', note: 'seeds 0–2' },
    { steps: 20000, w2: '0.467', npe: '–', note: 'seed 0' },
  ],
  'gaussian>moons>otcfm': [
    { steps: 2000, w2: '0.349 ± 0.020', npe: '0.034', note: 'exact OT, seeds 0–2' },
    { steps: 20000, w2: '0.292', npe: '0.062', note: 'seed 0' },
  ],
  '8gaussians>moons>icfm': [
    { steps: 2000, w2: '0.794 ± 0.115', npe: '1.21', note: 'seeds 0–2' },
    { steps: 20000, w2: '0.425', npe: '1.51', note: 'seed 0' },
  ],
  '8gaussians>moons>otcfm': [
    { steps: 2000, w2: '0.512 ± 0.025', npe: '0.058', note: 'exact OT, seeds 0–2' },
    { steps: 20000, w2: '0.273', npe: '0.012', note: 'seed 0' },
  ],
};

export function referenceFor(r: Pick<RunResult, 'source' | 'target' | 'method' | 'steps'>): { steps: number; w2: string; npe: string; note: string } | null {
  const refs = REFERENCES[`${r.source}>${r.target}>${r.method}`];
  if (!refs) return null;
  return refs.reduce((best, x) => (Math.abs(Math.log(x.steps / r.steps)) < Math.abs(Math.log(best.steps / r.steps)) ? x : best));
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function fmtNum(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return '–';
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

function fmtInt(v: number): string {
  return v.toLocaleString('en-US').replace(/,/g, '\u2009');
}

function fmtBytes(v: number): string {
  if (v >= 2 ** 30 && v % 2 ** 20 === 0) return `${fmtNum(v / 2 ** 30, 4)} GiB`;
  if (v >= 2 ** 20) return `${fmtNum(v / 2 ** 20, 4)} MiB`;
  if (v >= 2 ** 10) return `${fmtNum(v / 2 ** 10, 4)} KiB`;
  return `${v} B`;
}

function fmtValue(v: unknown): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : fmtNum(v, 6);
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object' || x === null)) return v.map((x) => fmtValue(x)).join(', ');
  return JSON.stringify(v);
}

/** Nested objects as dotted keys (hidden.0 …), for the configuration table. */
export function flatten(obj: Record<string, unknown>, prefix = ''): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v)) out.push(...flatten(v as Record<string, unknown>, key));
    else out.push([key, v]);
  }
  return out;
}

const KEY_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
];

const CSS = `
:root { --bg:#f5f6f8; --card:#fff; --ink:#14161a; --muted:#5f6673; --line:#e3e6eb; --accent:#2563eb; --accent-soft:#e8efff; --good:#15803d; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1240px; margin:0 auto; padding:32px 28px 48px; }
header { display:flex; flex-wrap:wrap; align-items:flex-end; justify-content:space-between; gap:12px 24px; margin-bottom:22px; }
h1 { font-size:28px; line-height:1.2; margin:0; letter-spacing:-0.01em; }
h1 .arrow { color:var(--muted); font-weight:400; margin:0 0.25em; }
.sub { color:var(--muted); margin-top:6px; }
.badge { display:inline-block; padding:3px 10px; border-radius:999px; background:var(--accent-soft); color:var(--accent); font-weight:600; font-size:13px; white-space:nowrap; }
.badge.sw { background:#fff4e5; color:#b45309; }
.badge.hw { background:#e8f7ee; color:var(--good); }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:12px; margin-bottom:22px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px; padding:14px 16px; box-shadow:0 1px 2px rgba(16,24,40,.04); }
.metric .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.06em; }
.metric .value { font-size:26px; font-weight:650; font-variant-numeric:tabular-nums; margin-top:2px; }
.metric .note { color:var(--muted); font-size:12px; margin-top:2px; }
.metric.main { border-color:#c7d7fe; background:linear-gradient(180deg,#fff, #f5f8ff); }
.figs { display:grid; grid-template-columns:repeat(auto-fit,minmax(420px,1fr)); gap:16px; margin-bottom:16px; }
figure { margin:0; background:var(--card); border:1px solid var(--line); border-radius:12px; padding:14px 16px 12px; box-shadow:0 1px 2px rgba(16,24,40,.04); }
figure.wide { grid-column:1/-1; }
figure img { display:block; width:100%; height:auto; border-radius:6px; }
figure.wide img { max-width:980px; margin:0 auto; }
figcaption { display:flex; flex-wrap:wrap; justify-content:space-between; gap:6px 16px; margin-bottom:10px; }
figcaption b { font-size:15px; }
.legend { color:var(--muted); font-size:13px; display:flex; gap:14px; align-items:center; flex-wrap:wrap; }
.dot { display:inline-block; width:10px; height:10px; border-radius:50%; margin-right:5px; vertical-align:-1px; }
.line { display:inline-block; width:18px; height:3px; border-radius:2px; margin-right:5px; vertical-align:3px; }
section { margin-top:16px; }
h2 { font-size:17px; margin:0 0 10px; }
.two { display:grid; grid-template-columns:repeat(auto-fit,minmax(380px,1fr)); gap:16px; }
table { width:100%; border-collapse:collapse; font-size:14px; }
td, th { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:500; width:42%; }
td { font-variant-numeric:tabular-nums; word-break:break-word; }
tr:last-child td, tr:last-child th { border-bottom:0; }
code, pre { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
pre { background:#0f172a; color:#e2e8f0; padding:12px 14px; border-radius:8px; overflow-x:auto; margin:0; white-space:pre-wrap; word-break:break-all; }
.chips { display:flex; flex-wrap:wrap; gap:6px; }
.chip { background:#f1f3f6; border:1px solid var(--line); border-radius:6px; padding:1px 7px; font-size:12px; font-family:ui-monospace,Menlo,Consolas,monospace; }
details summary { cursor:pointer; color:var(--accent); font-size:13px; margin-top:8px; }
footer { color:var(--muted); font-size:12px; margin-top:28px; text-align:center; }
`;

const pct = (v: unknown) => (typeof v === 'number' ? `${fmtNum(100 * v, 3)} %` : '–');

/**
 * Image runs: the classifier-based metrics (evaluate/images.ts) as cards. The Fréchet score is in
 * the features of wgflow's own evaluator: comparable between wgflow runs, not to Inception FID.
 */
function imageCards(im: Record<string, unknown>): string {
  const g = im.generation as Record<string, number> | undefined;
  const t = im.translation as Record<string, number> | undefined;
  const e = im.evaluator as Record<string, number> | undefined;
  const f = im.fusion as { level?: string; fallback?: string | null } | undefined;
  const cards: string[] = [];
  if (g) {
    cards.push(metricCard('Fréchet (classifier)', fmtNum(g.frechet), `floor ${fmtNum(g.frechet_floor)} (test images through ${escapeHtml(String(im.model_space))}); not Inception FID`, true));
    if (g.conditional_accuracy !== undefined) cards.push(metricCard('Conditional accuracy', pct(g.conditional_accuracy), 'samples classified as the class asked for'));
  }
  if (t) {
    cards.push(metricCard('Translated → target class', pct(t.target_class_fraction), `${t.images} test images of class ${t.source_class} (before: ${pct(t.source_images_target_fraction)})`, true));
    cards.push(metricCard('Pixel distance', fmtNum(t.mean_distance, 3), `source ↔ translation; random pairing ${fmtNum(t.random_pairing_distance, 3)}`));
  }
  cards.push(metricCard('Model space', escapeHtml(String(im.model_space)), `${pct(im.explained_variance)} of the pixel variance`));
  if (e) cards.push(metricCard('Evaluator', pct(e.test_accuracy), `test accuracy; MLP trained by wgflow, ${e.steps} steps`));
  if (f) cards.push(metricCard('Fusion level', escapeHtml(String(f.level)), f.fallback ? escapeHtml(f.fallback) : 'as asked'));
  return `<div class="cards">${cards.join('')}</div>`;
}

function imageFigures(r: ReportInput): string {
  const translation = !!r.images?.translation;
  const conditional = (r.images?.generation as Record<string, unknown> | undefined)?.conditional_accuracy !== undefined;
  return [
    figure('samples.png', r.pictures, translation ? 'Source test images and their translations' : conditional ? 'Samples by class (a row per class)' : 'Generated images', translation ? '<span>pairs: source (PCA reconstruction), then translation</span>' : conditional ? '<span>row label: the class asked for</span>' : '<span>RK4, 20 steps, from N(0, I)</span>', true),
    figure('trajectories.png', r.pictures, 'Translation trajectories (t = 0 → 1)', '<span>a row per source image</span>', true),
    figure('loss.png', r.pictures, 'Training loss', `<span><span class="line" style="background:#93c5fd"></span>reported</span><span><span class="line" style="background:#1d4ed8"></span>smoothed</span>`, true),
  ].join('');
}

function metricCard(label: string, value: string, note = '', main = false): string {
  return `<div class="card metric${main ? ' main' : ''}"><div class="label">${escapeHtml(label)}</div><div class="value">${escapeHtml(value)}</div>${note ? `<div class="note">${note}</div>` : ''}</div>`;
}

function rows(pairs: [string, string][]): string {
  return `<table>${pairs.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${v}</td></tr>`).join('')}</table>`;
}

function figure(file: string, pictures: Record<string, Uint8Array>, title: string, legend: string, wide = false): string {
  const bytes = pictures[file];
  if (!bytes) return '';
  return `<figure${wide ? ' class="wide"' : ''}><figcaption><b>${escapeHtml(title)}</b><span class="legend">${legend}</span></figcaption><img src="data:image/png;base64,${base64(bytes)}" alt="${escapeHtml(title)}"></figure>`;
}

export function renderReport(r: ReportInput): string {
  const res = r.result;
  const methodName = (METHOD_NAMES as Record<string, string>)[res.method] ?? res.method;
  const task = res.source ? `${escapeHtml(res.source)}<span class="arrow">→</span>${escapeHtml(res.target ?? r.dataFile ?? 'data')}` : escapeHtml(res.target ?? r.dataFile ?? 'data');
  const kindBadge = `<span class="badge ${r.adapter.kind === 'software' ? 'sw' : 'hw'}">${escapeHtml(`${r.adapter.vendor} ${r.adapter.architecture}`)} · ${escapeHtml(r.adapter.kind)}</span>`;
  const ref = referenceFor(res);
  const w2Note = ref ? `torchcfm (CPU, ${fmtInt(ref.steps)} steps): ${escapeHtml(ref.w2)}` : 'exact OT, 2 048 vs 2 048 points';
  const npeNote = ref ? `torchcfm: ${escapeHtml(ref.npe)}` : 'normalized path energy';
  const cards = [
    metricCard('W2', fmtNum(res.w2), res.w2 === null ? 'not computed for this method' : w2Note, true),
    metricCard('NPE', fmtNum(res.npe), res.npe === null ? 'not computed for this method' : npeNote),
    metricCard('NLL (nats)', fmtNum(res.nll), res.nll === null ? 'not computed for this method' : 'test negative log-likelihood'),
    metricCard('Final loss', fmtNum(res.loss), 'training loss at the end of the run'),
    metricCard('ms / step', fmtNum(res.ms_per_step, 3), `${fmtInt(res.steps)} steps in ${fmtNum(r.wallSeconds, 3)} s wall`),
    metricCard('Dispatches / step', fmtNum(res.dispatches_per_step, 3), 'GPU kernels per training step'),
    ...(r.fusion ? [metricCard('Step fusion', escapeHtml(r.fusion.used), r.fusion.fallback ? `asked ${escapeHtml(r.fusion.asked)}: ${escapeHtml(r.fusion.fallback)}` : r.fusion.used === r.fusion.asked ? 'the level asked for' : `asked ${escapeHtml(r.fusion.asked)}`)] : []),
  ].join('');

  const family = r.pictures['trajectories.png'] || r.images ? 'cfm' : 'flow';
  const figs = r.images ? imageFigures(r) : [
    figure('samples.png', r.pictures, 'Samples vs target', `<span><span class="dot" style="background:#8c8c96"></span>target</span><span><span class="dot" style="background:#2563eb"></span>generated</span>`),
    figure('trajectories.png', r.pictures, 'Trajectories (ODE from source to target)', `<span><span class="dot" style="background:#141414"></span>t = 0</span><span><span class="line" style="background:#8c8c50"></span>path</span><span><span class="dot" style="background:#2563eb"></span>t = 1</span>`),
    figure('density.png', r.pictures, 'Learned density', `<span>exp log p(x), viridis</span>`),
    figure('loss.png', r.pictures, 'Training loss', `<span><span class="line" style="background:#93c5fd"></span>reported</span><span><span class="line" style="background:#1d4ed8"></span>smoothed</span><span>x: step${r.pictures['loss.png'] ? '' : ''}</span>`, true),
  ].join('');

  const shown = new Set(['method', 'source', 'target', 'steps', 'batch', 'lr', 'seed']);
  const cfgRows: [string, string][] = flatten(r.config)
    .filter(([k]) => !shown.has(k))
    .map(([k, v]) => [k, escapeHtml(fmtValue(v))]);
  const runRows: [string, string][] = [
    ['method', `${escapeHtml(res.method)} <span style="color:var(--muted)">(${escapeHtml(methodName)})</span>`],
    ['source', escapeHtml(res.source ?? '–')],
    ['target', escapeHtml(res.target ?? (r.dataFile ? `data file ${r.dataFile}` : '–'))],
    ['steps', fmtInt(res.steps) + (r.resumedFrom !== null ? ` (resumed from step ${fmtInt(r.resumedFrom)})` : '')],
    ['batch', String(res.batch)],
    ['learning rate', fmtNum(r.lr, 6)],
    ['seed', String(res.seed)],
    ['runtime', escapeHtml(res.runtime)],
    ['output', `<code>${escapeHtml(res.out)}</code>`],
    ['started', escapeHtml(r.startedAt.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))],
    ['wall time', `${fmtNum(r.wallSeconds, 4)} s`],
  ];
  const lim = r.adapter.limits ?? {};
  const adapterRows: [string, string][] = [
    ['vendor', escapeHtml(r.adapter.vendor)],
    ['architecture', escapeHtml(r.adapter.architecture)],
    ...(r.adapter.device ? [['device', escapeHtml(r.adapter.device)] as [string, string]] : []),
    ...(r.adapter.description ? [['description', escapeHtml(r.adapter.description)] as [string, string]] : []),
    ['kind', escapeHtml(r.adapter.kind)],
    ['runtime', escapeHtml(r.adapter.runtime === 'browser' ? `browser${r.userAgent ? ` — ${r.userAgent.replace(/^.*?(Chrom(e|ium)\/[\d.]+).*$/, '$1')}` : ''}` : 'Node.js + Dawn')],
    ...KEY_LIMITS.filter((k) => typeof lim[k] === 'number').map((k) => [k, /Size$/.test(k) && lim[k]! >= 1024 ? `${fmtInt(lim[k]!)} <span style="color:var(--muted)">(${fmtBytes(lim[k]!)})</span>` : fmtInt(lim[k]!)] as [string, string]),
  ];
  const features = r.adapter.features.length ? `<div class="chips">${r.adapter.features.map((f) => `<span class="chip">${escapeHtml(f)}</span>`).join('')}</div>` : '<span style="color:var(--muted)">none</span>';
  const allLimits = Object.keys(lim).sort().map((k) => [k, fmtInt(lim[k]!)] as [string, string]);

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(`${methodName} · ${res.source ? `${res.source} → ` : ''}${res.target ?? r.dataFile ?? 'data'} — wgflow report`)}</title>
<style>${CSS}</style></head>
<body><main>
<header><div><h1>${escapeHtml(methodName)} · ${task}</h1>
<div class="sub">${fmtInt(res.steps)} steps · batch ${res.batch} · lr ${fmtNum(r.lr, 6)} · seed ${res.seed} · ${escapeHtml(res.runtime)} runtime · ${escapeHtml(r.finishedAt.toISOString().slice(0, 16).replace('T', ' '))} UTC</div></div>
<div>${kindBadge}</div></header>
<div class="cards">${cards}</div>${r.images ? imageCards(r.images) : ''}
<div class="figs">${figs}</div>
<div class="two">
<section class="card"><h2>Run</h2>${rows(runRows)}</section>
<section class="card"><h2>Model configuration</h2>${cfgRows.length ? rows(cfgRows) : '<span style="color:var(--muted)">(none reported)</span>'}</section>
</div>
<div class="two" style="margin-top:16px">
<section class="card"><h2>Adapter</h2>${rows(adapterRows)}<div style="margin-top:10px"><div style="color:var(--muted);font-size:13px;margin-bottom:6px">features</div>${features}</div>
<details><summary>all ${allLimits.length} limits</summary>${rows(allLimits)}</details></section>
<section class="card"><h2>Reproduce</h2><pre>${escapeHtml(r.command)}</pre>
<p style="color:var(--muted);font-size:13px;margin:10px 0 0">Files in this folder: ${['metrics.json', 'model.safetensors', ...Object.keys(r.pictures), 'report.html'].map((f) => `<code>${escapeHtml(f)}</code>`).join(', ')}. ${family === 'cfm' ? 'Sample more with <code>wgflow sample --checkpoint model.safetensors</code>.' : ''}</p>
${ref ? `<p style="color:var(--muted);font-size:13px;margin:8px 0 0">Reference (SPEC §5.1): torchcfm on 2 CPU cores, ${fmtInt(ref.steps)} steps, ${escapeHtml(ref.note)}: W2 ${escapeHtml(ref.w2)}, NPE ${escapeHtml(ref.npe)}.${res.target === 'moons' ? ' Noise floor (two independent 2 048-point moons samples): W2 0.076.' : ''}</p>` : ''}
</section>
</div>
<footer>wgflow${r.version ? ` ${escapeHtml(r.version)}` : ''} · self-contained report, generated ${escapeHtml(r.finishedAt.toISOString())}</footer>
</main></body></html>
`;
}
