/**
 * The page of `wgflow serve`: trains in this browser tab (WebGPU) and redraws generated samples over
 * the target about twice a second. The CLI serves it with /args.json (the configuration); query
 * parameters (?method=icfm&target=moons&steps=5000&seed=1) override it, and the form sets them.
 */
import { getMethod } from '../cli/jobs';
import { CFM_METHODS, FLOW_METHODS, modelWeights, type DataMatrix, type Method, type TrainConfig } from '../train/contract';
import { familyOf } from '../train/methods';
import { robustBounds } from '../cli/pictures';
import type { ServeArgs } from '../cli/serve';
import { DATASETS, getDataset } from '../datasets/toy2d';
import { adapterSummary, init } from '../engine';
import { Rng } from '../engine/philox';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function showError(e: unknown): void {
  const el = $('error');
  el.style.display = 'block';
  el.textContent = e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e);
  document.body.dataset.state = 'error';
}
addEventListener('error', (ev) => showError(ev.error ?? ev.message));
addEventListener('unhandledrejection', (ev) => showError(ev.reason));

function configFrom(args: ServeArgs): TrainConfig {
  const q = new URLSearchParams(location.search);
  const c = args.config;
  const method = (q.get('method') ?? c.method) as Method;
  if (![...CFM_METHODS, ...FLOW_METHODS].includes(method)) throw new Error(`unknown method ${JSON.stringify(method)}`);
  const num = (k: string, d: number) => {
    const v = q.get(k);
    return v === null || v === '' ? d : Number(v);
  };
  const cfm = familyOf(method) === 'cfm';
  const source = cfm && method !== 'fm' ? (q.get('source') ?? c.source ?? '8gaussians') : null;
  const target = c.data && !q.get('target') ? null : (q.get('target') ?? c.target ?? (cfm ? 'moons' : 'ffjord-moons'));
  if (source) getDataset(source);
  if (target) getDataset(target);
  const config: TrainConfig = { method, source, target, steps: num('steps', c.steps), batch: num('batch', c.batch), lr: num('lr', c.lr), seed: num('seed', c.seed), options: { ...c.options } };
  if (!target && c.data) config.data = { data: Float32Array.from(c.data.data), n: c.data.n, dim: c.data.dim };
  return config;
}

function fillForm(config: TrainConfig): void {
  const opts = (sel: HTMLSelectElement, values: string[], current: string | null) => {
    sel.innerHTML = values.map((v) => `<option${v === current ? ' selected' : ''}>${v}</option>`).join('');
  };
  opts($('f-method'), [...CFM_METHODS, ...FLOW_METHODS], config.method);
  opts($('f-source'), Object.keys(DATASETS), config.source ?? '8gaussians');
  opts($('f-target'), Object.keys(DATASETS), config.target ?? 'moons');
  $<HTMLInputElement>('f-steps').value = String(config.steps);
  $<HTMLInputElement>('f-seed').value = String(config.seed);
}

class Plot {
  private readonly ctx: CanvasRenderingContext2D;
  private bounds = { xmin: -1, xmax: 1, ymin: -1, ymax: 1 };
  constructor(private readonly canvas: HTMLCanvasElement) {
    this.ctx = canvas.getContext('2d')!;
  }
  fit(sets: Float32Array[]): void {
    this.bounds = robustBounds(sets, this.canvas.width, this.canvas.height);
  }
  draw(target: Float32Array, samples: Float32Array | null): void {
    const { ctx, canvas, bounds: b } = this;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const sx = canvas.width / (b.xmax - b.xmin), sy = canvas.height / (b.ymax - b.ymin);
    const dots = (p: Float32Array, color: string) => {
      ctx.fillStyle = color;
      for (let i = 0; i + 1 < p.length; i += 2) {
        const x = (p[i]! - b.xmin) * sx, y = (b.ymax - p[i + 1]!) * sy;
        if (Number.isFinite(x) && Number.isFinite(y)) ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
      }
    };
    dots(target, 'rgba(140,140,150,0.35)');
    if (samples) dots(samples, 'rgba(37,99,235,0.6)');
  }
}

function drawLoss(canvas: HTMLCanvasElement, losses: { step: number; loss: number }[], steps: number): void {
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const pts = losses.filter((l) => Number.isFinite(l.loss));
  if (pts.length < 2) return;
  const pos = pts.every((l) => l.loss > 0);
  const f = (v: number) => (pos ? Math.log(v) : v);
  let lo = Infinity, hi = -Infinity;
  for (const l of pts) {
    lo = Math.min(lo, f(l.loss));
    hi = Math.max(hi, f(l.loss));
  }
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  ctx.strokeStyle = '#2563eb';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  pts.forEach((l, i) => {
    const x = (l.step / steps) * (canvas.width - 4) + 2, y = canvas.height - 4 - ((f(l.loss) - lo) / (hi - lo)) * (canvas.height - 8);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

async function main(): Promise<void> {
  const args = (await (await fetch('./args.json')).json()) as ServeArgs;
  const config = configFrom(args);
  fillForm(config);
  $('form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams(new FormData(ev.target as HTMLFormElement) as unknown as Record<string, string>);
    if (familyOf(q.get('method') as Method) !== 'cfm' || q.get('method') === 'fm') q.delete('source');
    location.search = q.toString();
  });
  const what = `${config.method}: ${config.source ? `${config.source} → ` : ''}${config.target ?? args.dataFile ?? 'data'}`;
  $('title').textContent = `wgflow · ${what}`;
  document.title = `wgflow serve · ${what}`;
  $('sub').textContent = `${config.steps} steps · batch ${config.batch} · lr ${config.lr} · seed ${config.seed} — training in this tab with WebGPU`;
  document.body.dataset.state = 'starting';

  const backend = await init({ runtime: 'browser' });
  $('adapter').textContent = adapterSummary(backend.adapter);
  const impl = getMethod(config.method);
  if (typeof impl === 'string') throw new Error(impl);

  let resolved: Record<string, unknown> | undefined;
  try {
    resolved = impl.resolveConfig?.(config);
  } catch {
    /* the trainer reports the problem when it starts */
  }

  const n = 2000;
  const target: DataMatrix = config.data ?? { data: getDataset(config.target!).sample(n, new Rng(config.seed).fork(0x5e7e)), n, dim: 2 };
  const target2 = target.dim === 2 ? target.data : Float32Array.from({ length: target.n * 2 }, (_, k) => target.data[Math.floor(k / 2) * target.dim + (k % 2)]!);
  const plot = new Plot($<HTMLCanvasElement>('samples'));
  // Fixed bounds for the whole run: the target and, for flow matching, where samples start.
  plot.fit(config.source ? [target2, getDataset(config.source).sample(n, new Rng(config.seed).fork(0x5e7f))] : [target2]);
  plot.draw(target2, null);

  const losses: { step: number; loss: number }[] = [];
  let frames = 0;
  let liveUnavailable = false;
  let lastDraw = -Infinity;
  const rateWindow: { t: number; step: number }[] = [];
  const checkpointEvery = Math.max(1, Math.min(25, Math.ceil(config.steps / 400)));
  document.body.dataset.state = 'training';
  const outcome = await impl.job.run(config, {
    progressIntervalMs: 250,
    onProgress: (p) => {
      losses.push({ step: p.step, loss: p.loss });
      $('step').textContent = `${p.step} / ${p.steps}`;
      $('loss').textContent = p.loss.toPrecision(4);
      // Steps/s over the last ~10 s (the first steps include shader compilation).
      const now = performance.now();
      rateWindow.push({ t: now, step: p.step });
      while (rateWindow.length > 2 && now - rateWindow[1]!.t >= 10_000) rateWindow.shift();
      const first = rateWindow[0]!;
      $('rate').textContent = rateWindow.length > 1 && now > first.t ? (((p.step - first.step) * 1000) / (now - first.t)).toFixed(1) : '–';
      $('bar').style.width = `${(100 * p.step) / p.steps}%`;
      drawLoss($<HTMLCanvasElement>('losscurve'), losses, p.steps);
    },
    checkpointEvery,
    onCheckpoint: async (state) => {
      if (liveUnavailable || performance.now() - lastDraw < args.drawIntervalMs) return;
      const { data: _data, ...plain } = config;
      const extraConfig = state.extra?.config;
      const ckConfig = (typeof extraConfig === 'object' && extraConfig !== null ? extraConfig : (resolved ?? plain)) as Record<string, unknown>;
      let r;
      try {
        r = await impl.sample({ config: ckConfig, params: modelWeights(state), step: state.step }, { n: args.sampleN, seed: config.seed + 1, solver: 'euler', solverSteps: 20 });
      } catch (e) {
        // The trainer cannot sample from a mid-run state (e.g. it resolves its configuration only
        // at the end): train on, draw at the end.
        liveUnavailable = true;
        $('sub').textContent += ` — live samples unavailable for ${config.method} (${(e as Error).message}); they appear at the end`;
        return;
      }
      const s = r.samples;
      plot.draw(target2, s.dim === 2 ? s.data : Float32Array.from({ length: s.n * 2 }, (_, k) => s.data[Math.floor(k / 2) * s.dim + (k % 2)]!));
      frames++;
      document.body.dataset.frames = String(frames);
      lastDraw = performance.now();
    },
  });
  const s = outcome.samples;
  plot.draw(target2, s.dim === 2 ? s.data : Float32Array.from({ length: s.n * 2 }, (_, k) => s.data[Math.floor(k / 2) * s.dim + (k % 2)]!));
  frames++;
  document.body.dataset.frames = String(frames);
  $('w2').textContent = outcome.metrics.w2 === null ? '–' : outcome.metrics.w2.toPrecision(4);
  $('step').textContent = `${outcome.state.step} / ${config.steps} (done)`;
  $('bar').style.width = '100%';
  document.body.dataset.state = 'done';
}

main().catch(showError);
