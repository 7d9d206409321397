/**
 * `wgflow serve`: serves page/serve.ts on 127.0.0.1. The page trains in the visitor's browser
 * (its WebGPU) and redraws the samples about twice a second while training runs.
 */
import { readFileSync } from 'node:fs';
import { UsageError, parseFlags, type FlagSpec } from './args';
import { MODEL_FLAGS, resolveModel } from './config';
import { SERVE_HELP } from './help';
import { loadJobs, pageBundle } from './runner';
import { escapeHtml } from './report';
import type { CliContext } from './util';

export const SERVE_FLAGS: FlagSpec[] = [...MODEL_FLAGS, { name: 'port', kind: { type: 'int', min: 0, max: 65535 } }, { name: 'json', kind: { type: 'bool' } }];

/** What the page reads from /args.json. */
export interface ServeArgs {
  config: {
    method: string;
    source: string | null;
    target: string | null;
    steps: number;
    batch: number;
    lr: number;
    seed: number;
    options: Record<string, unknown>;
    /** --data as plain arrays (JSON). */
    data?: { data: number[]; n: number; dim: number };
  };
  dataFile: string | null;
  /** Redraw at most this often (ms). */
  drawIntervalMs: number;
  /** Generated points per frame. */
  sampleN: number;
}

function indexHtml(title: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><link rel="icon" href="data:,">
<style>
:root { --bg:#f5f6f8; --card:#fff; --ink:#14161a; --muted:#5f6673; --line:#e3e6eb; --accent:#2563eb; }
* { box-sizing:border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; }
main { max-width:1100px; margin:0 auto; padding:28px 24px; }
h1 { font-size:24px; margin:0 0 4px; }
.sub { color:var(--muted); margin-bottom:18px; }
.grid { display:grid; grid-template-columns:minmax(300px,600px) minmax(260px,1fr); gap:16px; align-items:start; }
.card { background:var(--card); border:1px solid var(--line); border-radius:12px; padding:14px 16px; box-shadow:0 1px 2px rgba(16,24,40,.04); }
canvas { display:block; width:100%; height:auto; border-radius:6px; }
.stat { display:flex; justify-content:space-between; border-bottom:1px solid var(--line); padding:5px 0; font-variant-numeric:tabular-nums; }
.stat:last-child { border-bottom:0; }
.stat span:first-child { color:var(--muted); }
.bar { height:8px; background:#e8ecf3; border-radius:4px; overflow:hidden; margin:10px 0 4px; }
.bar div { height:100%; width:0; background:var(--accent); transition:width .2s; }
.legend { color:var(--muted); font-size:13px; margin-top:8px; }
.dot { display:inline-block; width:10px; height:10px; border-radius:50%; margin:0 5px 0 12px; vertical-align:-1px; }
form { display:grid; grid-template-columns:auto 1fr; gap:6px 10px; align-items:center; margin-top:4px; }
select, input { font:inherit; padding:3px 6px; border:1px solid var(--line); border-radius:6px; }
button { grid-column:1/-1; font:inherit; padding:6px 10px; border:0; border-radius:8px; background:var(--accent); color:#fff; cursor:pointer; }
#error { display:none; white-space:pre-wrap; background:#fef2f2; color:#991b1b; border:1px solid #fecaca; border-radius:8px; padding:10px 12px; margin-top:14px; font:13px ui-monospace,Menlo,monospace; }
h2 { font-size:15px; margin:0 0 8px; }
</style></head>
<body><main>
<h1 id="title">wgflow</h1><div class="sub" id="sub">training in your browser with WebGPU</div>
<div class="grid">
<div class="card"><canvas id="samples" width="600" height="600"></canvas>
<div class="legend"><span class="dot" style="background:#8c8c96;margin-left:0"></span>target<span class="dot" style="background:#2563eb"></span>generated (redrawn while training)</div></div>
<div>
<div class="card"><h2>Progress</h2><div class="bar"><div id="bar"></div></div>
<div class="stat"><span>step</span><span id="step">–</span></div>
<div class="stat"><span>loss</span><span id="loss">–</span></div>
<div class="stat"><span>steps/s</span><span id="rate">–</span></div>
<div class="stat"><span>W2 (at the end)</span><span id="w2">–</span></div>
<div class="stat"><span>adapter</span><span id="adapter">–</span></div>
<canvas id="losscurve" width="460" height="120" style="margin-top:10px"></canvas></div>
<div class="card" style="margin-top:16px"><h2>Run another</h2><form id="form">
<label for="f-method">method</label><select id="f-method" name="method"></select>
<label for="f-source">source</label><select id="f-source" name="source"></select>
<label for="f-target">target</label><select id="f-target" name="target"></select>
<label for="f-steps">steps</label><input id="f-steps" name="steps" type="number" min="1">
<label for="f-seed">seed</label><input id="f-seed" name="seed" type="number" min="0">
<button type="submit">Restart with these</button></form></div>
</div></div>
<div id="error"></div>
</main><script type="module" src="./serve.js"></script></body></html>
`;
}

export async function serveCommand(argv: string[], ctx: CliContext): Promise<number> {
  const p = parseFlags('serve', argv, SERVE_FLAGS);
  if (p.help) {
    ctx.stdout.write(SERVE_HELP);
    return 0;
  }
  const v = p.values;
  const { stored, config } = resolveModel(p, (v.steps as number | undefined) ?? 20000);
  const impl = (await loadJobs()).getMethod(config.method);
  if (typeof impl === 'string') {
    ctx.stderr.write(`wgflow serve: ${impl}\n`);
    return 1;
  }
  const args: ServeArgs = {
    config: {
      method: stored.method,
      source: stored.source,
      target: stored.target,
      steps: stored.steps,
      batch: stored.batch,
      lr: stored.lr,
      seed: stored.seed,
      options: stored.options,
      ...(config.data ? { data: { data: Array.from(config.data.data), n: config.data.n, dim: config.data.dim } } : {}),
    },
    dataFile: stored.data_file,
    drawIntervalMs: 500,
    sampleN: 1000,
  };
  const bundle = readFileSync(await pageBundle(ctx, 'page/serve.ts'));
  // The same static server as the browser runtime (browser/server.ts): loopback Host only, every
  // malformed request a 4xx, files from memory. This page has no report channel: it only reads.
  const { startStaticServer } = await import('../browser/server');
  const requested = (v.port as number | undefined) ?? 8787;
  let server;
  try {
    server = await startStaticServer(
      { '/index.html': indexHtml('wgflow serve'), '/serve.js': bundle, '/args.json': JSON.stringify(args) },
      { port: requested },
    );
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UsageError(`--port: ${requested} is in use on 127.0.0.1; pass another --port (0 picks a free one)`);
    throw e;
  }
  const url = server.url;
  if (v.json) ctx.stdout.write(`${JSON.stringify({ type: 'serve', url, method: stored.method, source: stored.source, target: stored.target ?? stored.data_file, steps: stored.steps })}\n`);
  else {
    ctx.stdout.write(`wgflow serve: ${stored.method} ${stored.source ? `${stored.source} → ` : ''}${stored.target ?? stored.data_file}, ${stored.steps} steps\n`);
    ctx.stdout.write(`open ${url} in a browser with WebGPU (Chrome, Edge); Ctrl-C stops the server\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void server.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  if (!v.json) ctx.stdout.write('\nserver stopped\n');
  return 0;
}
