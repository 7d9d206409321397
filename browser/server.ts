/**
 * The one static HTTP server of wgflow: the pages that `runInBrowser` drives (the browser runtime of
 * `wgflow train` and friends) and the page of `wgflow serve`.
 *
 * Why a server at all: WebGPU (`navigator.gpu`) exists only in secure contexts, and `about:blank`
 * or `file://` pages do not get it; `http://127.0.0.1` counts as secure. Files are served from
 * memory (bundles are built in memory or read once), so no request can name a file on disk.
 *
 * What it trusts, and why (anything that reaches 127.0.0.1 can talk to it: any local process, and
 * any web page in the user's own browser through `fetch`):
 * - It binds 127.0.0.1 only and answers only requests whose Host header names the loopback address
 *   and its port (a DNS-rebinding page elsewhere cannot read our files or post reports).
 * - Only origin-form targets (`/path`) are accepted; absolute-form, authority-form, `*`, malformed
 *   escapes and `..`, backslash or NUL in the decoded path get 400. Every handler error is a 4xx or
 *   500 answer, never an exception that ends the process.
 * - The report channel (`POST /__report`, used by the page to send progress and the run's result)
 *   accepts a body only when all three hold: the per-run secret in the `x-wgflow-token` header
 *   (random, 256 bits, handed to the one page we launch through the DevTools pipe, never through a
 *   URL or a served file), `Origin` equal to the server's own origin, and `Content-Type:
 *   application/json`. A cross-site page cannot send that header or content type without a CORS
 *   preflight, which is never granted; a local process does not know the secret. Refused reports
 *   are dropped unread (403/415) and do not disturb the run.
 * - Paths in `privatePaths` (the page's arguments, which may hold the user's data) are served only
 *   to requests carrying the same secret.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { REPORT_PATH, TOKEN_HEADER } from './protocol';

/** The report channel of one page run. */
export interface ReportChannel {
  /** The per-run secret the page must send in TOKEN_HEADER (see newReportToken). */
  token: string;
  /**
   * Called with the parsed JSON body of each accepted report, in the order requests complete.
   * If it throws, the page gets a 500 with the message.
   */
  onReport: (body: unknown) => void;
  /** Called when an authenticated report body is not valid JSON or too large (the page gets a 400/413). */
  onReportError?: (error: Error) => void;
  /** Called with the reason when a report is refused (bad or missing secret, foreign Origin, wrong type). */
  onRefused?: (reason: string) => void;
  /** Largest accepted report body in bytes. Default 512 MiB (base64 images, sample dumps). */
  maxReportBytes?: number;
}

export interface StaticServerOptions {
  /** Port on 127.0.0.1; default 0 (a free one). In use: the listen error (code EADDRINUSE) is thrown. */
  port?: number;
  /** The report channel; without it `/__report` is an ordinary (missing) path. */
  report?: ReportChannel;
  /** Paths served only to requests that carry `report.token` in TOKEN_HEADER. */
  privatePaths?: string[];
  /** Extra headers on every file response. */
  headers?: Record<string, string>;
}

export interface StaticServer {
  /** Base URL with a trailing slash, e.g. `http://127.0.0.1:41234/`. */
  url: string;
  port: number;
  /** Stops listening and drops open (keep-alive) connections. Safe to call more than once. */
  close(): Promise<void>;
}

// The report endpoint's path and the header that carries the per-run secret (browser/protocol.ts, shared with the page runner).
export { REPORT_PATH, TOKEN_HEADER };

/** A fresh per-run secret: 32 random bytes, hex. */
export function newReportToken(): string {
  return randomBytes(32).toString('hex');
}

function sameSecret(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string' || given.length !== token.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(token));
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.wgsl': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
};

export function contentTypeFor(filePath: string): string {
  const dot = filePath.lastIndexOf('.');
  const ext = dot >= 0 ? filePath.slice(dot).toLowerCase() : '';
  return CONTENT_TYPES[ext] ?? 'application/octet-stream';
}

function normalizeKey(key: string): string {
  return key.startsWith('/') ? key : `/${key}`;
}

const TEXT = { 'content-type': 'text/plain; charset=utf-8' };

/** What the request target names, or the status and reason it is refused with. */
export function parseTarget(target: string | undefined): { path: string } | { status: 400; reason: string } {
  // Origin-form only: absolute-form (`GET http://host/x`) would let a request name another
  // authority than its Host header; authority-form and `*` are for proxies and OPTIONS.
  if (!target || !target.startsWith('/') || target.startsWith('//')) return { status: 400, reason: 'the request target must be a path starting with a single /' };
  // Decoded once, without URL normalisation (which would quietly turn `/a/../b` into `/b`):
  // anything that tries to climb, or still holds an escape after decoding, is refused outright.
  let decoded: string;
  try {
    decoded = decodeURIComponent(target.split(/[?#]/, 1)[0]!);
  } catch {
    return { status: 400, reason: 'malformed request target' };
  }
  if (/[\\\0%]/.test(decoded) || decoded.split('/').some((seg) => seg === '..' || seg === '.')) return { status: 400, reason: 'path traversal refused' };
  return { path: decoded };
}

/**
 * Serves `files` (keys are URL paths such as `/index.html` or `bundle.js`; `/` serves
 * `/index.html`) on 127.0.0.1, at `opts.port` or a free port.
 */
export async function startStaticServer(
  files: Record<string, string | Uint8Array>,
  opts: StaticServerOptions = {},
): Promise<StaticServer> {
  const table = new Map<string, Buffer>();
  for (const [key, content] of Object.entries(files)) {
    if (key === REPORT_PATH || key === REPORT_PATH.slice(1)) {
      throw new Error(`startStaticServer: file key ${JSON.stringify(key)} is reserved for reports; use any other path`);
    }
    table.set(normalizeKey(key), typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content));
  }
  const privatePaths = new Set((opts.privatePaths ?? []).map(normalizeKey));
  if (privatePaths.size > 0 && !opts.report) throw new Error('startStaticServer: privatePaths need a report channel (its token guards them)');
  const report = opts.report;
  let port = 0;

  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const refuse = (status: number, reason: string, extra: Record<string, string> = {}) => {
      // A refused request's body is never read: close the connection rather than drain it.
      res.writeHead(status, { ...TEXT, connection: 'close', ...extra }).end(`${reason}\n`);
      if (!req.complete) req.destroy();
    };
    // Loopback Host only: see the module comment (DNS rebinding).
    const host = req.headers.host;
    if (host === undefined) return refuse(400, 'missing Host header');
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) return refuse(403, `forbidden host ${JSON.stringify(host.slice(0, 100))}`);
    const target = parseTarget(req.url);
    if ('status' in target) return refuse(target.status, target.reason);
    const pathname = target.path;

    if (report && pathname === REPORT_PATH) {
      if (req.method !== 'POST') return refuse(405, 'method not allowed', { allow: 'POST' });
      const denied = reportRefusal(req, report.token, port);
      if (denied) {
        report.onRefused?.(denied.reason);
        return refuse(denied.status, denied.reason);
      }
      receiveReport(req, res, report);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(405, 'method not allowed', { allow: 'GET, HEAD' });
    const key = pathname === '/' ? '/index.html' : pathname;
    if (privatePaths.has(key) && !sameSecret(req.headers[TOKEN_HEADER], report!.token)) return refuse(403, 'forbidden');
    const body = table.get(key);
    if (!body) return refuse(404, `not found: ${JSON.stringify(pathname.slice(0, 200))}`);
    res.writeHead(200, {
      'content-type': contentTypeFor(key),
      'content-length': String(body.length),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // Cross-origin isolation: gives the page SharedArrayBuffer and fine-grained
      // performance.now() (5 µs instead of 100 µs), which timings need. All our files are
      // same-origin, so require-corp costs nothing. It also keeps other origins from reading us.
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'same-origin',
      ...opts.headers,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const server = http.createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      // Never let one request end the process (wgflow serve runs until Ctrl-C).
      if (!res.headersSent) res.writeHead(500, { ...TEXT, connection: 'close' });
      res.end(`internal error: ${(e as Error).message}\n`);
    }
  });
  // CONNECT (a proxy's method) goes to its own event, which Node would answer by dropping the socket.
  server.on('connect', (_req, socket) => {
    socket.end('HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  // Malformed request lines and headers never reach the handler: answer 400 and close.
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: opts.port ?? 0, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | null = null;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Chromium keeps connections alive; without this close() waits for them to time out.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Why a report request is refused (status and reason), or null when it may be read. */
function reportRefusal(req: http.IncomingMessage, token: string, port: number): { status: number; reason: string } | null {
  const origin = req.headers.origin;
  if (origin !== `http://127.0.0.1:${port}`) return { status: 403, reason: `report refused: Origin ${JSON.stringify(String(origin ?? '(none)').slice(0, 100))} is not this server's` };
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') return { status: 415, reason: 'report refused: Content-Type must be application/json' };
  if (!sameSecret(req.headers[TOKEN_HEADER], token)) return { status: 403, reason: 'report refused: missing or wrong run token' };
  return null;
}

function receiveReport(req: http.IncomingMessage, res: http.ServerResponse, report: ReportChannel): void {
  const maxBytes = report.maxReportBytes ?? 512 * 1024 * 1024;
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    if (tooLarge) return;
    size += chunk.length;
    if (size > maxBytes) {
      tooLarge = true;
      chunks.length = 0;
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (tooLarge) {
      const err = new Error(`report body of more than ${maxBytes} bytes rejected (maxReportBytes is ${maxBytes})`);
      report.onReportError?.(err);
      res.writeHead(413, TEXT).end(`${err.message}\n`);
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      const err = new Error(`report body is not valid JSON: ${(e as Error).message}`);
      report.onReportError?.(err);
      res.writeHead(400, TEXT).end(`${err.message}\n`);
      return;
    }
    try {
      report.onReport(body);
    } catch (e) {
      res.writeHead(500, TEXT).end(`${(e as Error).message}\n`);
      return;
    }
    res.writeHead(204).end();
  });
  req.on('error', (e) => report.onReportError?.(e));
}
