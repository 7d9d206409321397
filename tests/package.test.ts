/**
 * The installable package (issue 11 item 5): `npm pack` (prepack builds dist/), the tarball
 * installed into a fresh temporary project, then, as a user of it would:
 *  - a Node script trains OT-CFM through `import { train } from 'wgflow'` with a progress callback,
 *    samples from the model read back from its checkpoint bytes, and sees the same device through
 *    'wgflow/engine' (one engine shared by both entries);
 *  - tsc type-checks a TypeScript file that imports both entries, including a call the types must
 *    refuse (an unused @ts-expect-error is an error, so `any` types would fail the check);
 *  - examples/browser, copied into the project and bundled by esbuild from its node_modules/wgflow
 *    (the command in its index.html), trains OT-CFM in headless Chromium (puppeteer-core): progress
 *    through every step, finite losses, a finite W2 of its samples, dots on the canvas;
 *  - the installed bin trains in Node with esbuild removed from the project: the command line runs
 *    the built code, not a bundler.
 *
 * Offline and fast: the package's dependencies (esbuild, puppeteer-core, webgpu) are links to this
 * checkout's node_modules (npm keeps what is there), so nothing is downloaded, in CI too.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { launchChromium } from '../browser/chromium';
import { startStaticServer } from '../browser/server';
import { sampleDots } from './fixtures/page-canvas';

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
    expect(files.sort()).toEqual(['README.md', 'bin', 'dist', 'docs', 'package.json']);
    expect(readdirSync(path.join(project, 'node_modules', 'wgflow', 'docs'))).toEqual(['torch-flows.md']); // the flows' PyTorch layout
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

  test('a page bundled from the installed package trains OT-CFM in Chromium', async () => {
    // examples/browser as a user copies it, bundled by the command its index.html gives (checked), from this
    // project's node_modules/wgflow (the built package: its exports, dist/index.js), not the checkout.
    const web = path.join(project, 'web');
    mkdirSync(web);
    for (const f of ['index.html', 'main.ts']) copyFileSync(path.join(ROOT, 'examples', 'browser', f), path.join(web, f));
    expect(readFileSync(path.join(web, 'index.html'), 'utf8')).toContain('npx esbuild main.ts --bundle --format=esm --outfile=main.js');
    // The checkout's esbuild binary (a user's own `npm i -D esbuild`); it resolves 'wgflow' from web/ upwards.
    const esb = run(path.join(ROOT, 'node_modules', '.bin', 'esbuild'), ['main.ts', '--bundle', '--format=esm', '--outfile=main.js', '--log-level=error'], web);
    expect(esb.stderr).toBe('');
    expect(esb.code).toBe(0);
    const js = readFileSync(path.join(web, 'main.js'), 'utf8');
    expect(js).not.toContain(ROOT); // nothing of the checkout was bundled
    const server = await startStaticServer({ 'index.html': readFileSync(path.join(web, 'index.html')), 'main.js': js });
    const chromium = await launchChromium();
    try {
      const page = await chromium.browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      // Every text the progress line shows, in order (it is rewritten as training goes).
      await page.evaluateOnNewDocument(() => {
        const seen: string[] = ((globalThis as unknown as { __progress: string[] }).__progress = []);
        addEventListener('DOMContentLoaded', () => {
          const p = document.getElementById('progress')!;
          new MutationObserver(() => seen.push(p.textContent ?? '')).observe(p, { childList: true, characterData: true, subtree: true });
        });
      });
      await page.goto(`${server.url}index.html?steps=4`);
      await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state ?? ''), { timeout: 180_000, polling: 250 });
      const seen = await page.evaluate(() => (globalThis as unknown as { __progress: string[] }).__progress);
      expect(errors).toEqual([]);
      const last = seen.at(-1) ?? '';
      expect(last).toMatch(/^done: 4 steps, W2 \d+\.\d{3}, \d+\.\d ms\/step$/);
      // Progress moved through the steps with finite losses before the end.
      const steps = seen.map((t) => /^step (\d+) \/ 4, loss (\S+)$/.exec(t)).filter((m) => m).map((m) => [Number(m![1]), Number(m![2])] as const);
      expect(steps.length).toBeGreaterThan(0);
      expect(steps.at(-1)![0]).toBe(4);
      expect(steps.every(([, loss]) => Number.isFinite(loss))).toBe(true);
      // W2 of the final samples is a number only if every sample was finite; and they were drawn.
      expect(Number.isFinite(Number(/W2 (\S+),/.exec(last)![1]))).toBe(true);
      const drawn = await sampleDots(page);
      expect(drawn).toBeGreaterThan(500);
    } finally {
      await chromium.close();
      await server.close();
    }
  }, 300_000);

  // Both runtimes: the browser one serves the prebuilt page bundles, dist/page/entry.js and the page
  // runner dist/page/page-runner.js (browser/run-in-page.ts finds it next to dist/cli.js).
  test('the installed bin trains without esbuild, in Node and in Chromium', () => {
    rmSync(path.join(project, 'node_modules', 'esbuild'), { recursive: true, force: true });
    for (const runtime of ['node', 'browser']) {
      const out = path.join(project, `run-${runtime}`);
      const r = run(path.join(project, 'node_modules', '.bin', 'wgflow'), ['train', '--runtime', runtime, '--method', 'icfm', '--steps', '3', '--batch', '16', '--option', 'hidden=8', '--option', 'evalPoints=32', '--option', 'trajectoryPoints=4', '--option', 'solverSteps=2', '--option', 'nllPoints=0', '--out', out, '--json'], project);
      expect(r.stderr.split('\n').filter((l) => l && !/^(browser|page): /.test(l)), runtime).toEqual([]);
      expect(r.code, `${runtime}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toMatchObject({ type: 'result', method: 'icfm', steps: 3 });
    }
  }, 300_000);
});
