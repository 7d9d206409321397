/**
 * Leftovers of killed runs go at the next start, a live run's never (issue 12 item 5b,
 * cli/leftovers.ts). A "dead" pid is that of a child that has exited; a "live" one a child
 * sleeping until the end of the file. The last test goes through `wgflow train` (fake trainer,
 * TMPDIR pointed at a private folder) to check the start of a run does the cleaning.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive, removeDeadTempDirs, removeDeadTempFiles } from '../cli/leftovers';
import { prepareDawnEnvironment } from '../engine/dawn-env';

const ROOT = path.resolve(__dirname, '..');
const root = mkdtempSync(path.join(tmpdir(), 'wgflow-leftovers-test-'));
let dead = 0;
let live: ChildProcess;

beforeAll(() => {
  dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
});
afterAll(() => {
  live.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

function fresh(name: string): string {
  const d = path.join(root, name);
  mkdirSync(d);
  return d;
}

describe('leftovers', () => {
  it('pidAlive tells an exited child from a running one', () => {
    expect(pidAlive(dead)).toBe(false);
    expect(pidAlive(live.pid!)).toBe(true);
    expect(pidAlive(process.pid)).toBe(true);
  });

  it("temporary checkpoint files of dead runs go; a live run's, other files and folders stay", () => {
    const out = fresh('out');
    const keep = ['model.safetensors', `model.safetensors.tmp-${live.pid}-0a1b2c3d4e5f`, `metrics.json.tmp-${process.pid}-00ff00ff00ff`, 'notes.tmp-1-xyz', `model.safetensors.tmp-${dead}`];
    const gone = [`model.safetensors.tmp-${dead}-0a1b2c3d4e5f`, `metrics.json.tmp-${dead}-ffffffffffff`];
    for (const n of [...keep, ...gone]) writeFileSync(path.join(out, n), 'x');
    mkdirSync(path.join(out, `samples.png.tmp-${dead}-abcdefabcdef`)); // a folder by that name is not ours
    keep.push(`samples.png.tmp-${dead}-abcdefabcdef`);
    const removed = removeDeadTempFiles(out);
    expect(removed.map((p) => path.basename(p)).sort()).toEqual([...gone].sort());
    expect(readdirSync(out).sort()).toEqual([...keep].sort());
  });

  it("runtime and profile folders of dead runs go, with their contents; a live run's and others stay", () => {
    const tmp = fresh('tmp');
    const gone = [`wgflow-xdg-${dead}-AbC123`, `wgflow-chromium-${dead}-xYz789`];
    const keep = [`wgflow-xdg-${live.pid}-AbC123`, `wgflow-chromium-${live.pid}-xYz789`, `wgflow-chromium-${process.pid}-Qwerty`, `wgflow-other-${dead}-AbC123`, `wgflow-xdg-${dead}-short`, 'wgflow-chromium-AbC123'];
    for (const n of [...gone, ...keep]) mkdirSync(path.join(tmp, n, 'profile'), { recursive: true });
    writeFileSync(path.join(tmp, gone[1]!, 'profile', 'Cookies'), 'x');
    writeFileSync(path.join(tmp, `wgflow-xdg-${dead}-File12`), 'a file, not a folder');
    keep.push(`wgflow-xdg-${dead}-File12`);
    const removed = removeDeadTempDirs(tmp);
    expect(removed.map((p) => path.basename(p)).sort()).toEqual([...gone].sort());
    expect(readdirSync(tmp).sort()).toEqual([...keep].sort());
  });

  it("the engine's XDG folder name is one the cleaner recognises (with a dead owner)", () => {
    const tmp = fresh('xdg');
    const env: Record<string, string | undefined> = {};
    prepareDawnEnvironment({ env, gpu: false, tmpdir: tmp });
    const made = path.basename(env.XDG_RUNTIME_DIR!);
    expect(removeDeadTempDirs(tmp)).toEqual([]); // ours: alive
    renameSync(path.join(tmp, made), path.join(tmp, made.replace(`-${process.pid}-`, `-${dead}-`)));
    expect(removeDeadTempDirs(tmp).length).toBe(1);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('`wgflow train` removes them at start', async () => {
    const tmp = fresh('cli-tmp');
    const out = fresh('cli-out');
    const stale = path.join(out, `model.safetensors.tmp-${dead}-0a1b2c3d4e5f`);
    const liveFile = path.join(out, `model.safetensors.tmp-${live.pid}-0a1b2c3d4e5f`);
    writeFileSync(stale, 'x');
    writeFileSync(liveFile, 'x');
    mkdirSync(path.join(tmp, `wgflow-xdg-${dead}-AbC123`));
    mkdirSync(path.join(tmp, `wgflow-xdg-${live.pid}-AbC123`));
    const env = { ...process.env, TMPDIR: tmp, WGFLOW_JOBS: path.join(ROOT, 'tests', 'fixtures', 'cli-fake-jobs.ts') };
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'wgflow.js'), 'train', '--runtime', 'node', '--steps', '2', '--out', out], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('error', reject);
      child.on('close', resolve);
    });
    expect(code).toBe(0);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(liveFile)).toBe(true);
    expect(readdirSync(tmp)).toEqual([`wgflow-xdg-${live.pid}-AbC123`]);
  });
});
