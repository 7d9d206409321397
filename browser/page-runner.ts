/**
 * The page side of `runInBrowser` (browser/run-in-page.ts), served as /runner.js: reports the
 * adapter, fetches the run's arguments with the run's secret, imports the entry bundle, calls its
 * default export `(args, ctx) => result` and reports messages, the result or the error back to the
 * host over HTTP (browser/protocol.ts: envelopes in order, typed arrays and non-finite numbers
 * tagged). Bundled for the browser like any page entry (browser/bundle.ts in a checkout; prebuilt as
 * dist/page/page-runner.js by scripts/build.mjs), so it is type-checked with the rest.
 *
 * Transport: one request in flight, messages batched behind it, so order holds even at high rates
 * (the host checks sequence numbers again), and a long run is not bounded by any DevTools timeout.
 */
import { describeAdapter } from '../engine/runtime';
import type { PageContext, PageEntry } from './page-context';
import { ARGS_FILE, BYTES_TAG, ENTRY_FILE, NUM_TAG, REPORT_PATH, TOKEN_GLOBAL, TOKEN_HEADER, type EnvelopeKind, type PageAdapter, type PageErrorData } from './protocol';

const ADAPTER_TIMEOUT_MS = 10_000;

type TypedCtor = new (buffer: ArrayBuffer) => ArrayBufferView;

function toB64(bytes: Uint8Array): string {
  const b = bytes as Uint8Array & { toBase64?: () => string };
  if (typeof b.toBase64 === 'function') return b.toBase64();
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromB64(s: string): Uint8Array {
  const U = Uint8Array as typeof Uint8Array & { fromBase64?: (s: string) => Uint8Array };
  if (typeof U.fromBase64 === 'function') return U.fromBase64(s);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** JSON.stringify replacer: typed arrays, ArrayBuffers and non-finite numbers as tagged objects. */
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  if (typeof raw === 'number' && !Number.isFinite(raw)) return { [NUM_TAG]: String(raw) };
  if (raw instanceof ArrayBuffer) return { [BYTES_TAG]: toB64(new Uint8Array(raw)), type: 'ArrayBuffer' };
  if (ArrayBuffer.isView(raw)) {
    return { [BYTES_TAG]: toB64(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)), type: raw instanceof DataView ? 'DataView' : raw.constructor.name };
  }
  return value;
}

/** JSON.parse reviver: the tags back to typed arrays and numbers. */
function reviver(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if (typeof v[NUM_TAG] === 'string') return Number(v[NUM_TAG]);
    if (typeof v[BYTES_TAG] === 'string') {
      const bytes = fromB64(v[BYTES_TAG]);
      if (v.type === 'ArrayBuffer') return bytes.buffer;
      const Ctor = (globalThis as unknown as Record<string, unknown>)[String(v.type)];
      return typeof Ctor === 'function' ? new (Ctor as TypedCtor)(bytes.buffer as ArrayBuffer) : bytes;
    }
  }
  return value;
}

// The run's secret, injected by the host before this script ran; taken out of the global scope so
// the entry's own code (and anything it loads) does not see it lying around.
const g = globalThis as unknown as Record<string, unknown>;
const TOKEN = g[TOKEN_GLOBAL];
delete g[TOKEN_GLOBAL];

let seq = 0;
const queue: string[] = [];
let flushing = false;
let finished = false;

// Encoded at call time: later mutation of a posted object does not change what the host gets,
// and an unencodable value (BigInt, cycle) throws at the caller of ctx.post.
function send(kind: EnvelopeKind, data: unknown): void {
  queue.push(JSON.stringify({ seq: seq++, kind, data }, replacer));
  void flush();
}

async function flush(): Promise<void> {
  if (flushing) return;
  flushing = true;
  try {
    while (queue.length > 0) {
      const batch = queue.splice(0, queue.length);
      let res: Response;
      try {
        res = await fetch(REPORT_PATH, { method: 'POST', headers: { 'content-type': 'application/json', [TOKEN_HEADER]: String(TOKEN) }, body: `[${batch.join(',')}]` });
      } catch (e) {
        console.error(`wgflow: could not report to the host: ${(e as Error)?.message}`);
        return;
      }
      if (!res.ok) {
        // The host has already failed the run (it rejects only bodies it cannot use); say why here too.
        const text = await res.text().catch(() => '');
        console.error(`wgflow: host rejected a report (HTTP ${res.status}): ${text.trim()}`);
        return;
      }
    }
  } finally {
    flushing = false;
  }
}

function errorData(origin: string, e: unknown): PageErrorData {
  if (e instanceof Error) return { origin, name: e.name, message: e.message, stack: e.stack };
  let message: string;
  try {
    message = typeof e === 'string' ? e : JSON.stringify(e);
  } catch {
    message = String(e);
  }
  return { origin, name: typeof e, message: `non-Error value thrown: ${message}` };
}

function sendError(origin: string, e: unknown): void {
  if (finished) return;
  finished = true;
  send('error', errorData(origin, e));
}

addEventListener('error', (ev) => sendError('uncaught error', ev.error ?? ev.message));
addEventListener('unhandledrejection', (ev) => sendError('unhandled promise rejection', ev.reason));

/** The engine's adapter report of the page's default adapter, or why there is none (never hangs). */
async function adapterReport(): Promise<PageAdapter> {
  if (!navigator.gpu) return { error: 'navigator.gpu is missing (not a secure context, or WebGPU disabled)' };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const adapter = await Promise.race([navigator.gpu.requestAdapter(), new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ADAPTER_TIMEOUT_MS)))]);
  clearTimeout(timer);
  if (adapter === 'timeout') return { error: `navigator.gpu.requestAdapter() did not settle within ${ADAPTER_TIMEOUT_MS / 1000} s` };
  if (!adapter) return { error: 'navigator.gpu.requestAdapter() returned null' };
  return describeAdapter(adapter, 'browser');
}

async function main(): Promise<void> {
  let adapter: PageAdapter;
  try {
    adapter = await adapterReport();
  } catch (e) {
    adapter = { error: String((e as Error)?.message ?? e) };
  }
  send('adapter', adapter);
  if (typeof TOKEN !== 'string') throw new Error('no run token: this page reports only when opened by runInBrowser');
  const argsRes = await fetch(`./${ARGS_FILE}`, { headers: { [TOKEN_HEADER]: TOKEN } });
  if (!argsRes.ok) throw new Error(`could not read the run arguments (HTTP ${argsRes.status})`);
  const args: unknown = JSON.parse(await argsRes.text(), reviver);
  // A URL built at run time: the entry is served next to this file, not bundled into it.
  const mod = (await import(/* @vite-ignore */ new URL(`./${ENTRY_FILE}`, location.href).href)) as { default?: PageEntry };
  if (typeof mod.default !== 'function') {
    throw new Error(`the entry module has no default export function (got ${typeof mod.default}); write: export default async (args, ctx) => result`);
  }
  const ctx: PageContext = Object.freeze({
    post(msg: unknown) {
      if (!finished) send('msg', msg);
    },
  });
  const result = await mod.default(args, ctx);
  if (finished) return;
  finished = true;
  try {
    send('result', result);
  } catch (e) {
    finished = false;
    sendError('entry', new Error(`the entry returned a value that cannot be sent to the host: ${(e as Error).message}`));
  }
}

main().catch((e) => sendError('entry', e));
