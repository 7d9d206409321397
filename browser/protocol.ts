/**
 * What the host (browser/run-in-page.ts, browser/server.ts) and the page runner
 * (browser/page-runner.ts) agree on: paths, the token header and global, the envelope, and the tags
 * that carry typed arrays and non-finite numbers through JSON. Browser-safe (one type import), so the
 * page runner's bundle and the Node side share one definition.
 *
 * Why tags: plain JSON turns a NaN loss into null and PNG bytes into a huge object; a typed array
 * travels as `{__wgflowBytes: base64, type: constructor name}`, a non-finite number as
 * `{__wgflowNum: "NaN" | "Infinity" | "-Infinity"}`.
 */

import type { AdapterReport } from '../engine/backend';

/** What the page said about its adapter: the engine's report of it, or why there is none. */
export type PageAdapter = AdapterReport | { error: string } | null;

/** The report endpoint's path (the page side posts here). */
export const REPORT_PATH = '/__report';

/** The header that carries the per-run secret. */
export const TOKEN_HEADER = 'x-wgflow-token';

/** The global the host sets (through the DevTools pipe, before any page script) to the run's secret. */
export const TOKEN_GLOBAL = '__wgflowRunToken';

/** Where the served page finds the entry bundle and its arguments. */
export const ENTRY_FILE = 'entry.js';
export const ARGS_FILE = 'args.json';

export const NUM_TAG = '__wgflowNum';
export const BYTES_TAG = '__wgflowBytes';

export type EnvelopeKind = 'adapter' | 'msg' | 'result' | 'error';

/** One report from the page: in page order by `seq`. */
export interface Envelope {
  seq: number;
  kind: EnvelopeKind;
  data: unknown;
}

/** An `error` envelope's data. */
export interface PageErrorData {
  /** 'entry' (the entry threw), 'uncaught error', 'unhandled promise rejection'. */
  origin?: string;
  name?: string;
  message?: string;
  stack?: string;
}
