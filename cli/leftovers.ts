/**
 * Leftovers of killed runs, removed at the next start (issue 12 item 5b). A run killed with
 * SIGKILL (or a crash, or a power cut) cannot clean up after itself, and left behind:
 *  - `<file>.tmp-<pid>-<hex>` in --out: the temporary file of an atomic write (io/atomic.ts) that
 *    was never renamed over its target;
 *  - `wgflow-xdg-<pid>-XXXXXX` (engine/dawn-env.ts) and `wgflow-chromium-<pid>-XXXXXX`
 *    (browser/chromium.ts) folders in the temporary directory.
 * Each name carries its owner's pid, so the rule is: remove it when that process is gone; never
 * when it is alive (a run going on in parallel, in this --out or elsewhere), and never anything
 * whose name does not match exactly or, for folders, that belongs to another user. A reused pid
 * keeps a leftover a while longer: the safe mistake. Node only.
 */
import { lstatSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Temporary files of io/atomic.ts writeFileAtomic: `<name>.tmp-<pid>-<hex>`. */
const TMP_FILE = /^.+\.tmp-(\d+)-[0-9a-f]+$/;
/** Runtime and browser-profile folders: `wgflow-xdg-<pid>-XXXXXX`, `wgflow-chromium-<pid>-XXXXXX`. */
const TMP_DIR = /^wgflow-(?:xdg|chromium)-(\d+)-[A-Za-z0-9]{6}$/;

/** Whether process `pid` exists (signal 0 checks without sending; EPERM: it exists, not ours). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function deadOwner(name: string, pattern: RegExp, alive: (pid: number) => boolean): boolean {
  const m = pattern.exec(name);
  return !!m && Number(m[1]) !== process.pid && !alive(Number(m[1]));
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Removes the dead runs' temporary checkpoint files in `dir` (not recursive); returns their paths. */
export function removeDeadTempFiles(dir: string, alive: (pid: number) => boolean = pidAlive): string[] {
  const removed: string[] = [];
  for (const name of entries(dir)) {
    if (!deadOwner(name, TMP_FILE, alive)) continue;
    const p = path.join(dir, name);
    try {
      if (!lstatSync(p).isFile()) continue;
      unlinkSync(p);
      removed.push(p);
    } catch {
      /* gone meanwhile, or not ours to remove */
    }
  }
  return removed;
}

/** Removes dead runs' wgflow-xdg-* and wgflow-chromium-* folders of this user in `tmp`; returns their paths. */
export function removeDeadTempDirs(tmp: string = os.tmpdir(), alive: (pid: number) => boolean = pidAlive): string[] {
  const removed: string[] = [];
  const uid = process.getuid?.();
  for (const name of entries(tmp)) {
    if (!deadOwner(name, TMP_DIR, alive)) continue;
    const p = path.join(tmp, name);
    try {
      const st = lstatSync(p);
      if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) continue;
      rmSync(p, { recursive: true, force: true, maxRetries: 2 });
      removed.push(p);
    } catch {
      /* gone meanwhile, or not ours to remove */
    }
  }
  return removed;
}

/** Both, for the start of `wgflow train`: temporary files in `out`, folders in the temporary directory. */
export function removeLeftovers(out: string): string[] {
  return [...removeDeadTempFiles(out), ...removeDeadTempDirs()];
}
