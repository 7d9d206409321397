/**
 * Crash-safe file replacement for Node: a reader sees either the old file or the complete new one,
 * never a torn write (checkpoints, metrics and reports are rewritten while a run goes on).
 *
 * Node built-ins are reached through `process.getBuiltinModule` (Node ≥ 20.16) rather than a
 * static import, so modules that merely import this one still load in a browser bundle; only
 * calling these functions there fails, with a message saying so.
 */

/** node:fs, or an Error that names the missing runtime. */
export function nodeFs(): typeof import('node:fs') {
  return builtin('node:fs') as typeof import('node:fs');
}

/** node:path, as nodeFs. */
export function nodePath(): typeof import('node:path') {
  return builtin('node:path') as typeof import('node:path');
}

function builtin(id: 'node:fs' | 'node:path' | 'node:crypto'): unknown {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.(id);
  if (!mod) {
    throw new Error(`${id} is unavailable: file access needs Node.js >= 20.16 (process.getBuiltinModule), not a browser`);
  }
  return mod;
}

/**
 * Writes `bytes` to `path` atomically: into `path.tmp-<pid>-<random>` in the same directory (so the
 * rename stays on one file system), fsync, rename over `path`, then fsync the directory so the
 * rename itself survives a crash (best effort: not every platform can open a directory).
 * On failure the temporary file is removed and the error rethrown.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const fs = nodeFs();
  const pathMod = nodePath();
  const crypto = builtin('node:crypto') as typeof import('node:crypto');
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const tmp = `${path}.tmp-${(globalThis as { process?: { pid?: number } }).process?.pid ?? 0}-${crypto.randomBytes(6).toString('hex')}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, path);
  } catch (err) {
    if (fd !== null) {
      try { fs.closeSync(fd); } catch { /* already failing */ }
    }
    try { fs.unlinkSync(tmp); } catch { /* may not exist */ }
    throw err;
  }
  try {
    const dfd = fs.openSync(pathMod.dirname(pathMod.resolve(path)), 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* directories cannot be fsynced on some platforms (Windows) */ }
}
