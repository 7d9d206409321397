/**
 * Run a TypeScript entry inside headless Chromium and get its result back in Node.
 *
 * The entry is a module whose default export is `async (args, ctx) => result` (see
 * browser/page-context.ts). We bundle it, serve it from 127.0.0.1 (WebGPU needs a secure origin;
 * about:blank has no navigator.gpu), open it in Chromium, and collect what the page reports. The
 * page's own script is browser/page-runner.ts (bundled like any page entry); what both sides agree
 * on is browser/protocol.ts.
 *
 * Transport: the page POSTs to `/__report` on our static server, not through puppeteer's
 * exposeFunction/evaluate. Reasons: a long training run must not be bounded by the DevTools
 * protocol timeout; the page side batches messages and keeps one request in flight, so order is
 * guaranteed (and checked again with sequence numbers) even at high message rates; and large
 * binary payloads travel as one HTTP body instead of through the CDP pipe.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'puppeteer-core';
import { bundleForBrowser } from './bundle';
import { launchChromium, type ChromiumHandle } from './chromium';
import { ARGS_FILE, BYTES_TAG, ENTRY_FILE, NUM_TAG, TOKEN_GLOBAL, type Envelope, type PageAdapter, type PageErrorData } from './protocol';
import { newReportToken, startStaticServer } from './server';

export type { AdapterReport, PageContext, PageEntry } from './page-context';
export type { PageAdapter } from './protocol';

export interface BrowserSessionOptions {
  /** Chromium executable (default: findChromium(): WGFLOW_CHROMIUM, then the usual paths). */
  chromium?: string;
  /** Hardware WebGPU (default: auto, true when a GPU device node exists). */
  gpu?: boolean;
  /** Default true. */
  headless?: boolean;
  /** Extra Chromium switches. */
  extraArgs?: string[];
}

export interface RunOptions {
  /**
   * `entry` is already a browser bundle (a .js file, e.g. the CLI's prebuilt dist/page/entry.js):
   * served as it is, without esbuild (an installed wgflow has no bundler at run time).
   */
  bundled?: boolean;
  /** Passed to the entry's default export. JSON-like; typed arrays and NaN/±Infinity survive. */
  args?: unknown;
  /** Each `ctx.post(msg)` from the page, in order. */
  onMessage?: (msg: unknown) => void;
  /** Page console output, one line per console call (`[warn] …` prefixes for non-log levels). */
  onLog?: (line: string) => void;
  /** Reject if the entry has not finished after this many ms. Default 300 000; 0 or Infinity: no limit. */
  timeoutMs?: number;
  /**
   * Called when the server refuses a report that did not come from our page (no or wrong run token,
   * foreign Origin): someone else on this machine or a web page tried to talk to the run. The run
   * goes on; the report is dropped unread.
   */
  onRefusedReport?: (reason: string) => void;
  /**
   * The page runner's bundle (browser/page-runner.ts built for the browser, e.g. an installed
   * package's dist/page/page-runner.js). Default: browser/page-runner.ts of the checkout this module
   * runs from, bundled once per process.
   */
  runner?: string;
}

export interface RunInBrowserOptions extends RunOptions, BrowserSessionOptions {}

export interface RunResult<T> {
  result: T;
  /** Adapter info as the page saw it (`navigator.gpu.requestAdapter()` with default options). */
  adapter: PageAdapter;
}

export interface BrowserSession {
  chromium: ChromiumHandle;
  /** Whether Chromium was started with the GPU (Vulkan) flags. */
  gpu: boolean;
  /** Runs `entry` in a fresh page (and a fresh server/origin) of this browser. */
  run<T = unknown>(entry: string, opts?: RunOptions): Promise<RunResult<T>>;
  /** Closes pages, servers and the browser; rejects runs still going. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 300_000;
const HANDLED_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Starts one Chromium that several runs can share (tests use this to pay the start-up once).
 * SIGINT/SIGTERM while the session is open close it, then the signal is re-raised (so the process
 * still dies of it, exit status 130 for SIGINT) unless another handler of the process owns it.
 */
export async function openBrowserSession(opts: BrowserSessionOptions = {}): Promise<BrowserSession> {
  const chromium = await launchChromium({
    executablePath: opts.chromium,
    gpu: opts.gpu,
    headless: opts.headless,
    extraArgs: opts.extraArgs,
  });

  const active = new Set<(err: Error) => void>();
  let closing: Promise<void> | null = null;

  const onDisconnected = () => {
    for (const fail of active) fail(new Error(`Chromium (${chromium.executablePath}) exited or disconnected while the page was running`));
  };
  chromium.browser.on('disconnected', onDisconnected);

  const onSignal = (signal: NodeJS.Signals) => {
    for (const fail of active) fail(new Error(`runInBrowser: interrupted by ${signal}; browser and server closed`));
    void close().finally(() => {
      // Other listeners (e.g. a CLI's) already received this signal: they own the exit. With none
      // left, re-raise so the process ends the way it would have without us.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  };
  for (const s of HANDLED_SIGNALS) process.on(s, onSignal);
  const removeSignalHandlers = () => {
    for (const s of HANDLED_SIGNALS) process.off(s, onSignal);
  };

  function close(): Promise<void> {
    closing ??= (async () => {
      removeSignalHandlers();
      chromium.browser.off('disconnected', onDisconnected);
      for (const fail of active) fail(new Error('browser session closed while the page was running'));
      await chromium.close();
    })();
    return closing;
  }

  const runWith = <T>(entry: string, runOpts: RunOptions = {}, code?: string): Promise<RunResult<T>> => {
    if (closing) return Promise.reject(new Error('runInBrowser: this browser session is closed'));
    return runInSession<T>(chromium, active, entry, runOpts, code);
  };
  const session: BrowserSession = {
    chromium,
    gpu: chromium.gpu,
    close,
    run: (entry, runOpts) => runWith(entry, runOpts),
  };
  runWithCode.set(session, runWith);
  return session;
}

/** Internal: run with an already-built bundle (runInBrowser bundles before starting Chromium). */
const runWithCode = new WeakMap<BrowserSession, <T>(entry: string, opts: RunOptions, code: string) => Promise<RunResult<T>>>();

/**
 * Bundles `entry`, runs its default export in headless Chromium with `args`, and returns its
 * result. The browser and server are always closed (also on SIGINT/SIGTERM).
 */
export async function runInBrowser<T = unknown>(entry: string, opts: RunInBrowserOptions = {}): Promise<RunResult<T>> {
  // Bundle first: a bundling error should not cost a browser start.
  const code = await codeOf(entry, opts);
  const session = await openBrowserSession(opts);
  try {
    return await runWithCode.get(session)!<T>(entry, opts, code);
  } finally {
    await session.close();
  }
}

/** The page's code: `entry` bundled by esbuild, or read as it is when it is a bundle already. */
async function codeOf(entry: string, opts: RunOptions): Promise<string> {
  return opts.bundled ? readFileSync(entry, 'utf8') : bundleForBrowser(entry);
}

const RUNNER_SOURCE = path.join('browser', 'page-runner.ts');
const RUNNER_PREBUILT = path.join('page', 'page-runner.js');
let runnerBuild: Promise<string> | null = null;

/**
 * The page runner's code: `opts.runner` as it is, else the first found from this module's folder
 * upwards of browser/page-runner.ts (bundled with esbuild, once per process: the source tree, or a
 * checkout's CLI and bench bundles in node_modules/.cache/wgflow) and page/page-runner.js (an
 * installed package's dist/cli.js finds dist/page/page-runner.js, which scripts/build.mjs prebuilt).
 */
function runnerCode(opts: RunOptions): Promise<string> {
  if (opts.runner) return Promise.resolve(readFileSync(opts.runner, 'utf8'));
  runnerBuild ??= (async () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    for (let dir = here, k = 0; k < 5; k++, dir = path.dirname(dir)) {
      if (existsSync(path.join(dir, RUNNER_SOURCE))) return bundleForBrowser(path.join(dir, RUNNER_SOURCE), { cwd: dir });
      if (existsSync(path.join(dir, RUNNER_PREBUILT))) return readFileSync(path.join(dir, RUNNER_PREBUILT), 'utf8');
    }
    throw new Error(`runInBrowser: neither ${RUNNER_SOURCE} nor ${RUNNER_PREBUILT} above ${here}; pass RunOptions.runner (a prebuilt dist/page/page-runner.js)`);
  })();
  runnerBuild.catch(() => (runnerBuild = null));
  return runnerBuild;
}

const ENVELOPE_KINDS: ReadonlySet<unknown> = new Set(['adapter', 'msg', 'result', 'error']);

async function runInSession<T>(
  chromium: ChromiumHandle,
  active: Set<(err: Error) => void>,
  entry: string,
  opts: RunOptions,
  prebuilt?: string,
): Promise<RunResult<T>> {
  const code = prebuilt ?? (await codeOf(entry, opts));
  const runner = await runnerCode(opts);
  // Source paths in the map are relative to the bundle: the file itself when prebuilt, else cwd (bundle.ts).
  const mapStack = stackMapper(code, opts.bundled ? path.dirname(path.resolve(entry)) : process.cwd());
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const recentLogs: string[] = [];

  let settle!: { resolve: (v: RunResult<T>) => void; reject: (e: Error) => void };
  const done = new Promise<RunResult<T>>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Failures before anyone awaits `done` (e.g. newPage() throwing) must not be "unhandled".
  done.catch(() => {});
  let settled = false;
  const fail = (err: Error) => {
    if (settled) return;
    settled = true;
    settle.reject(err);
  };
  active.add(fail);

  let adapter: PageAdapter = null;
  let nextSeq = 0;
  const pending = new Map<number, Envelope>();
  const deliver = (env: Envelope) => {
    if (settled) return;
    switch (env.kind) {
      case 'adapter':
        adapter = env.data as PageAdapter;
        break;
      case 'msg':
        try {
          opts.onMessage?.(env.data);
        } catch (e) {
          fail(new Error(`runInBrowser: onMessage threw: ${(e as Error).message}`));
        }
        break;
      case 'result':
        settled = true;
        settle.resolve({ result: env.data as T, adapter });
        break;
      case 'error':
        fail(pageError(entry, env.data as PageErrorData, mapStack));
        break;
    }
  };
  const onReport = (body: unknown) => {
    if (!Array.isArray(body)) throw new Error('report body must be a JSON array of envelopes');
    // Checked whole before any is taken, so a bad batch changes nothing.
    for (const raw of body as Envelope[]) {
      if (typeof raw !== 'object' || raw === null || !Number.isSafeInteger(raw.seq) || raw.seq < nextSeq || !ENVELOPE_KINDS.has(raw.kind)) {
        throw new Error('report envelope must be {seq, kind, data} with a new integer seq and kind adapter|msg|result|error');
      }
    }
    for (const raw of body as Envelope[]) {
      pending.set(raw.seq, raw);
      // Envelopes carry sequence numbers: deliver strictly in page order even if HTTP reorders.
      while (pending.has(nextSeq)) {
        const env = pending.get(nextSeq)!;
        pending.delete(nextSeq);
        nextSeq++;
        deliver({ ...env, data: reviveFromPage(env.data) });
      }
    }
  };

  const log = (line: string) => {
    recentLogs.push(line);
    if (recentLogs.length > 20) recentLogs.shift();
    opts.onLog?.(line);
  };

  let page: Page | undefined;
  let timer: NodeJS.Timeout | undefined;
  // The report channel is this page's alone: a fresh secret per run, handed to the page through the
  // DevTools pipe before any of its scripts run (never in a URL or a served file), required on
  // every report and on the page's arguments (browser/server.ts says what else is checked).
  const token = newReportToken();
  const server = await startStaticServer(
    {
      '/index.html': INDEX_HTML,
      '/runner.js': runner,
      [`/${ENTRY_FILE}`]: code,
      [`/${ARGS_FILE}`]: JSON.stringify(opts.args ?? null, hostReplacer),
    },
    {
      privatePaths: [`/${ARGS_FILE}`],
      report: {
        token,
        onReport,
        onReportError: (e) => fail(new Error(`runInBrowser: bad report from the page: ${e.message}`)),
        onRefused: (reason) => opts.onRefusedReport?.(reason),
      },
    },
  );
  try {
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        const tail = recentLogs.length ? `; last page output:\n  ${recentLogs.slice(-5).join('\n  ')}` : '';
        fail(new Error(`runInBrowser: ${entry} did not finish within ${timeoutMs} ms (timeoutMs)${tail}`));
      }, timeoutMs);
    }
    page = await chromium.browser.newPage();
    await page.evaluateOnNewDocument((name: string, t: string) => {
      Object.defineProperty(globalThis, name, { value: t, configurable: true, enumerable: false, writable: false });
    }, TOKEN_GLOBAL, token);
    page.on('console', (msg) => {
      const type = msg.type();
      log(type === 'log' || type === 'info' ? msg.text() : `[${type}] ${msg.text()}`);
    });
    // Backstop for errors the page-side handlers cannot report (the runner itself failing, a
    // broken report channel). It waits a moment because the runner's own report of the same error
    // says more (uncaught error vs. unhandled rejection) and arrives just after this CDP event.
    page.on('pageerror', (err) => {
      const e = err as Error;
      setTimeout(() => {
        fail(pageError(entry, { origin: 'uncaught error or rejection', name: e.name, message: e.message, stack: e.stack }, mapStack));
      }, 1_000).unref();
    });
    page.on('error', (err) => fail(new Error(`runInBrowser: the page crashed while running ${entry}: ${err.message}`)));
    await Promise.race([page.goto(server.url, { waitUntil: 'load', timeout: 60_000 }), done]);
    return await done;
  } catch (err) {
    fail(err as Error);
    throw err;
  } finally {
    clearTimeout(timer);
    active.delete(fail);
    if (page) {
      const p = page;
      await Promise.race([p.close().catch(() => {}), new Promise((r) => setTimeout(r, 5_000))]);
    }
    await server.close();
  }
}

function pageError(entry: string, data: PageErrorData, mapStack: (s: string) => string): Error {
  const message = data.message ?? 'unknown error';
  const what = data.origin === 'entry' ? 'threw' : `raised an ${data.origin ?? 'uncaught error'}`;
  const stack = data.stack ? mapStack(data.stack) : '(no stack)';
  const err = new Error(`${entry} ${what} in the browser: ${data.name && data.name !== 'Error' ? `${data.name}: ` : ''}${message}\npage stack:\n${stack}`);
  return err;
}

/**
 * Rewrites `http://127.0.0.1:PORT/entry.js:L:C` frames to `.ts` positions using the bundle's
 * inline source map (V8 does not apply source maps to error.stack).
 */
function stackMapper(code: string, base: string): (stack: string) => string {
  const m = /\/\/# sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)\s*$/.exec(code);
  if (!m) return (s) => s;
  let map: SourceMap;
  try {
    map = new SourceMap(JSON.parse(Buffer.from(m[1], 'base64').toString('utf8')));
  } catch {
    return (s) => s;
  }
  const frame = new RegExp(`https?://(?:127\\.0\\.0\\.1|localhost):\\d+/${ENTRY_FILE.replace('.', '\\.')}:(\\d+):(\\d+)`, 'g');
  return (stack) =>
    stack.replace(frame, (whole, line: string, col: string) => {
      const hit = map.findEntry(Number(line) - 1, Number(col) - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
      if (hit.originalSource === undefined || hit.originalLine === undefined || hit.originalColumn === undefined) return whole;
      const src = hit.originalSource.startsWith('file://') ? new URL(hit.originalSource).pathname : hit.originalSource;
      const shown = path.relative(process.cwd(), path.resolve(base, src));
      return `${shown}:${hit.originalLine + 1}:${hit.originalColumn + 1}`;
    });
}

// ---------------------------------------------------------------------------------------------
// The host's half of the value encoding (browser/protocol.ts; the page's half is in
// browser/page-runner.ts): JSON, plus typed arrays as base64 and non-finite numbers by name.

const TYPED_CTORS: Record<string, new (buf: ArrayBuffer) => ArrayBufferView> = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
};

function hostReplacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // `this[key]` is the value before toJSON (Buffer.toJSON would make {type, data: [...]}).
  const raw = this[key];
  if (typeof raw === 'number' && !Number.isFinite(raw)) return { [NUM_TAG]: String(raw) };
  if (raw instanceof ArrayBuffer) return { [BYTES_TAG]: Buffer.from(raw).toString('base64'), type: 'ArrayBuffer' };
  if (ArrayBuffer.isView(raw)) {
    const type = raw instanceof DataView ? 'DataView' : raw instanceof Buffer ? 'Uint8Array' : raw.constructor.name;
    return { [BYTES_TAG]: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64'), type };
  }
  return value;
}

/** Decodes the page's tagged values (typed arrays, non-finite numbers) in place. */
export function reviveFromPage(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reviveFromPage);
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  if (typeof obj[NUM_TAG] === 'string') return Number(obj[NUM_TAG]);
  if (typeof obj[BYTES_TAG] === 'string') {
    const bytes = Buffer.from(obj[BYTES_TAG], 'base64');
    const copy = new ArrayBuffer(bytes.length);
    new Uint8Array(copy).set(bytes);
    if (obj.type === 'ArrayBuffer') return copy;
    const Ctor = TYPED_CTORS[String(obj.type)] ?? Uint8Array;
    return new Ctor(copy);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = reviveFromPage(v);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The page: a module script, browser/page-runner.ts, which imports the entry.

const INDEX_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>wgflow</title><link rel="icon" href="data:,"></head>
<body><script type="module" src="./runner.js"></script></body></html>
`;
