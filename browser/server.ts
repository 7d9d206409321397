/**
 * A tiny static HTTP server for pages driven by `runInBrowser`.
 *
 * Why a server at all: WebGPU (`navigator.gpu`) exists only in secure contexts, and `about:blank`
 * or `file://` pages do not get it; `http://127.0.0.1` counts as secure. Files are served from
 * memory (the bundle is built in memory), and the page reports back over `POST /__report`.
 *
 * It binds 127.0.0.1 only, and answers only requests whose Host header names the loopback address
 * (so a DNS-rebinding page elsewhere cannot read our files or post reports).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StaticServerOptions {
  /**
   * Called with the parsed JSON body of each `POST /__report`, in the order requests complete.
   * If it throws, the page gets a 500 with the message.
   */
  onReport?: (body: unknown) => void;
  /** Called when a report body is not valid JSON or too large (the page gets a 400/413). */
  onReportError?: (error: Error) => void;
  /** Largest accepted report body in bytes. Default 512 MiB (base64 images, sample dumps). */
  maxReportBytes?: number;
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

/** The report endpoint's path (the page side posts here). */
export const REPORT_PATH = '/__report';

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

/**
 * Serves `files` (keys are URL paths such as `/index.html` or `bundle.js`; `/` serves
 * `/index.html`) on 127.0.0.1 at a free port.
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
  const maxReportBytes = opts.maxReportBytes ?? 512 * 1024 * 1024;
  let port = 0;

  const server = http.createServer((req, res) => {
    // Loopback Host only: see the module comment (DNS rebinding).
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end(`forbidden host ${JSON.stringify(host)}\n`);
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', `http://127.0.0.1:${port}`).pathname);
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end(`bad request path ${JSON.stringify(req.url)}\n`);
      return;
    }

    if (pathname === REPORT_PATH) {
      if (req.method !== 'POST') {
        res.writeHead(405, { allow: 'POST' }).end();
        return;
      }
      receiveReport(req, res, maxReportBytes, opts);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const key = pathname === '/' ? '/index.html' : pathname;
    const body = table.get(key);
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: ${pathname}\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': contentTypeFor(key),
      'content-length': String(body.length),
      'cache-control': 'no-store',
      // Cross-origin isolation: gives the page SharedArrayBuffer and fine-grained
      // performance.now() (5 µs instead of 100 µs), which timings need. All our files are
      // same-origin, so require-corp costs nothing.
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      ...opts.headers,
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
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

function receiveReport(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  maxBytes: number,
  opts: StaticServerOptions,
): void {
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
      opts.onReportError?.(err);
      res.writeHead(413, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`);
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (e) {
      const err = new Error(`report body is not valid JSON: ${(e as Error).message}`);
      opts.onReportError?.(err);
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`);
      return;
    }
    try {
      opts.onReport?.(body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${(e as Error).message}\n`);
      return;
    }
    res.writeHead(204).end();
  });
  req.on('error', (e) => opts.onReportError?.(e));
}
