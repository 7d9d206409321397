/**
 * The installable package (issue 11 item 5): `npm pack` (prepack builds dist/), the tarball
 * installed into a fresh temporary project, then, as a user of it would:
 *  - a Node script trains OT-CFM through `import { train } from 'wgflow'` with a progress callback,
 *    samples from the model read back from its checkpoint bytes, and sees the same device through
 *    'wgflow/engine' (one engine shared by both entries);
 *  - tsc type-checks a TypeScript file that imports both entries, including a call the types must
 *    refuse (an unused @ts-expect-error is an error, so `any` types would fail the check);
 *  - the installed bin trains in Node with esbuild removed from the project: the command line runs
 *    the built code, not a bundler.
 *
 * Offline and fast: the package's dependencies (esbuild, puppeteer-core, webgpu) are links to this
 * checkout's node_modules (npm keeps what is there), so nothing is downloaded, in CI too.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const DEPS = ['esbuild', 'puppeteer-core', 'webgpu'];
const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-package-'));
const project = path.join(tmp, 'project');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, WGFLOW_JOBS: '' }, timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  // prepack runs scripts/build.mjs (esbuild + tsc declarations) into the checkout's dist/.
  execFileSync(npm, ['pack', '--silent', '--pack-destination', tmp], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack wrote no tarball');
  mkdirSync(path.join(project, 'node_modules'), { recursive: true });
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'wgflow-user', private: true, type: 'module' }));
  for (const d of DEPS) symlinkSync(path.join(ROOT, 'node_modules', d), path.join(project, 'node_modules', d), 'dir');
  const r = run(npm, ['install', '--offline', '--no-save', '--no-audit', '--no-fund', '--ignore-scripts', path.join(tmp, tarball)], project);
  if (r.code !== 0) throw new Error(`npm install of the tarball failed:\n${r.stderr}`);
}, 300_000);

describe('the packed tarball in a fresh project', () => {
  test('holds the built code and no sources', () => {
    const files = readdirSync(path.join(project, 'node_modules', 'wgflow'));
    expect(files.sort()).toEqual(['README.md', 'bin', 'dist', 'package.json']);
  });

  test('trains, samples and shares the engine through the public API in Node', () => {
    writeFileSync(
      path.join(project, 'train.mjs'),
      `import { train, sample, modelFromCheckpoint, checkpointBytes } from 'wgflow';
import { getBackend } from 'wgflow/engine';
const steps = [];
const r = await train({ method: 'otcfm', steps: 4, batch: 32, seed: 1, progressIntervalMs: 0, onProgress: (p) => steps.push(p.step),
  options: { hidden: '16,16', evalPoints: 64, trajectoryPoints: 8, trajectoryTimes: 3, solverSteps: 4 } });
const s = await sample(modelFromCheckpoint(checkpointBytes(r)), { n: 5, solverSteps: 4 });
console.log(JSON.stringify({ step: r.state.step, w2: r.metrics.w2, steps, n: s.n, dim: s.dim, runtime: getBackend().adapter.runtime }));
process.exit(0);
`,
    );
    const r = run(process.execPath, ['train.mjs'], project);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out).toMatchObject({ step: 4, steps: [1, 2, 3, 4], n: 5, dim: 2, runtime: 'node' });
    expect(Number.isFinite(out.w2)).toBe(true);
  }, 120_000);

  test('type-checks a TypeScript file that imports it', () => {
    writeFileSync(
      path.join(project, 'use.ts'),
      `import { train, sample, evaluate, type TrainResult, type Progress } from 'wgflow';
import { init, tensor, type Tensor } from 'wgflow/engine';
export async function go(signal: AbortSignal): Promise<number> {
  await init();
  const t: Tensor = tensor([1, 2], [2]);
  t.dispose();
  const r: TrainResult = await train({ method: 'realnvp', target: 'moons', steps: 10, signal, onProgress: (p: Progress) => void p.loss });
  const s = await sample(r.model, { n: 10 });
  const e = await evaluate(r.model, { n: 64 });
  // @ts-expect-error steps is a number (an unused directive fails the check, so the types are real)
  await train({ steps: 'ten' });
  return s.n + (e.nll ?? 0);
}
`,
    );
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'ESNext', moduleResolution: 'bundler', lib: ['ES2023', 'DOM'], types: [], strict: true, noEmit: true, skipLibCheck: true }, files: ['use.ts'] }),
    );
    const r = run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], project);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 120_000);

  test('the installed bin trains without esbuild', () => {
    rmSync(path.join(project, 'node_modules', 'esbuild'), { force: true });
    const out = path.join(project, 'run');
    const r = run(path.join(project, 'node_modules', '.bin', 'wgflow'), ['train', '--runtime', 'node', '--method', 'icfm', '--steps', '3', '--batch', '16', '--option', 'hidden=8', '--option', 'evalPoints=32', '--option', 'trajectoryPoints=4', '--option', 'solverSteps=2', '--option', 'nllPoints=0', '--out', out, '--json'], project);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toMatchObject({ type: 'result', method: 'icfm', steps: 3 });
  }, 180_000);
});
