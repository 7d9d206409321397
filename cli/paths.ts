/**
 * Output paths checked before any work starts, so that a bad --out is an exit-2 message naming it
 * rather than a stack trace after a browser started (a file where a folder is expected, a path
 * under a file), a run that trains for minutes and then cannot write, or a hang (/proc, /sys and
 * /dev are kernel interfaces: writes there can block or do things other than storing a file).
 * Node only.
 */
import { accessSync, constants, realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { quote } from '../io/quote';
import { UsageError } from './args';

/** Kernel file systems: nothing of a run belongs there. (/dev/shm is ordinary memory and allowed.) */
const SPECIAL = ['/proc', '/sys', '/dev'];

function isSpecial(p: string): boolean {
  if (p === '/dev/shm' || p.startsWith('/dev/shm/')) return false;
  return SPECIAL.some((s) => p === s || p.startsWith(`${s}/`));
}

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

/** The nearest path at or above `p` that exists, and what it is. */
function nearestExisting(p: string): { at: string; st: Stats } {
  let at = p;
  for (;;) {
    const st = statOrNull(at);
    if (st) return { at, st };
    const up = path.dirname(at);
    if (up === at) throw new UsageError(`${quote(p, 200)}: no part of the path exists`);
    at = up;
  }
}

function checkWritableDir(label: string, dir: string, shown: string): void {
  let real = dir;
  try {
    real = realpathSync(dir);
  } catch {
    // Unreadable on the way: access() below says so.
  }
  if (isSpecial(path.resolve(dir)) || isSpecial(real)) {
    throw new UsageError(`${label}: ${shown} is on a kernel file system (${SPECIAL.join(', ')}); accepted: a folder on an ordinary disk`);
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new UsageError(`${label}: ${shown} cannot be written here (no write permission on ${quote(dir, 200)} or a read-only file system)`);
  }
}

/**
 * --out DIR of train: a folder that exists, or can be created, in a writable place. Throws a
 * UsageError naming `label` and the path; creates nothing.
 */
export function checkOutDir(label: string, dir: string): void {
  const shown = quote(dir, 200);
  const abs = path.resolve(dir);
  const st = statOrNull(abs);
  if (st && !st.isDirectory()) throw new UsageError(`${label}: ${shown} exists and is not a folder (${st.isFile() ? 'a file' : 'a device, FIFO or socket'}); accepted: a folder, existing or new`);
  const { at, st: near } = st ? { at: abs, st } : nearestExisting(abs);
  if (!near.isDirectory()) throw new UsageError(`${label}: ${shown} lies under ${quote(at, 200)}, which is a file, not a folder`);
  checkWritableDir(label, at, shown);
}

/** --out FILE of sample: a new or regular file in an existing, writable folder. */
export function checkOutFile(label: string, file: string): void {
  const shown = quote(file, 200);
  const abs = path.resolve(file);
  const st = statOrNull(abs);
  if (st && !st.isFile()) throw new UsageError(`${label}: ${shown} exists and is not a regular file (${st.isDirectory() ? 'a folder' : 'a device, FIFO or socket'})`);
  const dir = path.dirname(abs);
  const dst = statOrNull(dir);
  if (!dst) {
    const { at, st: near } = nearestExisting(dir);
    if (!near.isDirectory()) throw new UsageError(`${label}: ${shown} lies under ${quote(at, 200)}, which is a file, not a folder`);
    throw new UsageError(`${label}: the folder ${quote(dir, 200)} does not exist`);
  }
  if (!dst.isDirectory()) throw new UsageError(`${label}: ${shown} lies under ${quote(dir, 200)}, which is a file, not a folder`);
  checkWritableDir(label, dir, shown);
}
