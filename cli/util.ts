/** Small things the commands share. Node only. */
import path from 'node:path';
import type { Writer } from './progress';

export interface CliStream extends Writer {
  isTTY?: boolean;
}

export interface CliContext {
  /** Repository root (where page/, cli/ and node_modules/ are). */
  root: string;
  /** WGFLOW_JOBS test seam (see bin/wgflow.js). */
  jobsOverride?: string;
  cwd: string;
  stdout: CliStream;
  stderr: CliStream;
  version: string;
}

/** --gpu auto|on|off → launchChromium's `gpu` (undefined: detect). */
export function gpuOption(v: unknown): boolean | undefined {
  return v === 'on' ? true : v === 'off' ? false : undefined;
}

/**
 * Calls `fn` on the first SIGINT/SIGTERM (the command then winds down: aborts the trainer; the
 * browser runtime closes Chromium and its server by itself). A second signal exits at once with
 * status 130. Returns a function that removes the handlers.
 */
export function onInterrupt(fn: () => void): () => void {
  let count = 0;
  const handler = () => {
    count++;
    if (count === 1) fn();
    else process.exit(130);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** Quotes a word for a POSIX shell when it needs it. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `p` relative to `cwd` when it lies below it, else absolute (no `../../tmp/x`). */
export function displayPath(cwd: string, p: string): string {
  const rel = path.relative(cwd, p);
  return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? path.resolve(p) : rel;
}
