/**
 * Quiet stderr (issue 12 item 6): a clean run prints only wgflow's own lines on stderr. Without
 * engine/dawn-env.ts, Dawn's start printed `Warning: vkCreateInstance: Found no drivers!` (no
 * system Vulkan driver) or lavapipe's `error: XDG_RUNTIME_DIR is invalid…` and Dawn's `Warning:
 * Vulkan shaderUniform*ArrayDynamicIndexing required…` (Debian's mesa-vulkan-drivers installed),
 * which read like failures. The children get an environment without XDG_RUNTIME_DIR,
 * VK_ICD_FILENAMES and VK_DRIVER_FILES, as a login-less server or CI job has.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHROMIUM_CANDIDATES } from '../browser/chromium';
import { prepareDawnEnvironment, SWIFTSHADER_ICD_PATHS, XDG_PREFIX } from '../engine/dawn-env';

const ROOT = path.resolve(__dirname, '..');
const haveChromium = CHROMIUM_CANDIDATES.some((p) => existsSync(p)) || !!process.env.WGFLOW_CHROMIUM;
const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-quiet-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Prefixes of the lines wgflow itself writes to stderr (cli/*.ts). */
const OWN = /^(wgflow\b|note: |page: |browser: |adapter: |interrupted|stopped at step|\s*Details: |$)/;

function bareEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  for (const k of ['XDG_RUNTIME_DIR', 'VK_ICD_FILENAMES', 'VK_DRIVER_FILES', 'WGFLOW_JOBS']) delete env[k];
  return env;
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: bareEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function foreignLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => !OWN.test(l));
}

describe('a clean run prints only wgflow lines on stderr', () => {
  it('engine start as tests and benchmarks do it (no CLI): nothing on stderr', async () => {
    const r = await run(['scripts/run-ts.mjs', 'tests/fixtures/dawn-start.ts']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^(software|hardware)$/);
    expect(r.stderr).toBe('');
  });

  it('wgflow train --runtime node --steps 20', async () => {
    const r = await run(['bin/wgflow.js', 'train', '--runtime', 'node', '--steps', '20', '--out', path.join(tmp, 'node')]);
    expect(r.code, r.stderr).toBe(0);
    expect(foreignLines(r.stderr), r.stderr).toEqual([]);
  });

  it.skipIf(!haveChromium)('wgflow train --runtime browser --steps 20', async () => {
    const r = await run(['bin/wgflow.js', 'train', '--runtime', 'browser', '--steps', '20', '--out', path.join(tmp, 'browser')]);
    expect(r.code, r.stderr).toBe(0);
    expect(foreignLines(r.stderr), r.stderr).toEqual([]);
  });
});

describe('prepareDawnEnvironment', () => {
  const swiftshader = SWIFTSHADER_ICD_PATHS.find((p) => existsSync(p));

  it('no GPU, nothing set: SwiftShader and a private 0700 XDG_RUNTIME_DIR named with our pid', () => {
    const env: Record<string, string | undefined> = {};
    const set = prepareDawnEnvironment({ env, gpu: false, tmpdir: tmp });
    expect(env.VK_ICD_FILENAMES).toBe(swiftshader);
    const dir = env.XDG_RUNTIME_DIR!;
    expect(set.XDG_RUNTIME_DIR).toBe(dir);
    expect(path.dirname(dir)).toBe(tmp);
    expect(path.basename(dir).startsWith(`${XDG_PREFIX}${process.pid}-`)).toBe(true);
    expect(statSync(dir).isDirectory()).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(prepareDawnEnvironment({ env, gpu: false, tmpdir: tmp })).toEqual({}); // once per environment
  });

  it('an XDG_RUNTIME_DIR that is relative or missing is replaced; a real one is kept', () => {
    for (const bad of ['', 'run/user/1000', path.join(tmp, 'missing')]) {
      const env: Record<string, string | undefined> = { XDG_RUNTIME_DIR: bad };
      prepareDawnEnvironment({ env, gpu: false, tmpdir: tmp });
      expect(env.XDG_RUNTIME_DIR, bad).not.toBe(bad);
      expect(statSync(env.XDG_RUNTIME_DIR!).isDirectory()).toBe(true);
    }
    const env: Record<string, string | undefined> = { XDG_RUNTIME_DIR: tmp };
    expect(prepareDawnEnvironment({ env, gpu: false, tmpdir: tmp }).XDG_RUNTIME_DIR).toBeUndefined();
    expect(env.XDG_RUNTIME_DIR).toBe(tmp);
  });

  it("a driver the user chose, or a GPU, leaves Vulkan's driver search alone", () => {
    const chosen: Record<string, string | undefined> = { VK_ICD_FILENAMES: '/x/icd.json', XDG_RUNTIME_DIR: tmp };
    prepareDawnEnvironment({ env: chosen, gpu: false, tmpdir: tmp });
    expect(chosen).toEqual({ VK_ICD_FILENAMES: '/x/icd.json', XDG_RUNTIME_DIR: tmp });
    const gpu: Record<string, string | undefined> = { XDG_RUNTIME_DIR: tmp };
    prepareDawnEnvironment({ env: gpu, gpu: true, tmpdir: tmp });
    expect(gpu.VK_ICD_FILENAMES).toBeUndefined();
  });
});
