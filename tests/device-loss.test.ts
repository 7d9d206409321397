/**
 * Device loss during `wgflow train` (issue 12 item 2), through the real CLI and trainers: the run
 * that loses its device uses WGFLOW_JOBS=tests/fixtures/lose-device-jobs.ts, the real registry
 * whose jobs destroy the GPU device right after the checkpoint at step LOSE_AT is handed over (as a
 * driver reset or a GPU-process crash would, mid-run: the steps after it are already being
 * submitted); production code has no such seam. The run must keep that checkpoint, exit 1 without a stack and say how to
 * resume; metrics.json records the failure; and `--resume` must give the same final model, bit for
 * bit, as a run that was never interrupted (every random draw is a function of seed and step).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { CHROMIUM_CANDIDATES } from '../browser/chromium';
import { readCheckpoint } from '../train/checkpoint';
import { LOSE_AT } from './fixtures/lose-device-jobs';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'wgflow.js');
const haveChromium = CHROMIUM_CANDIDATES.some((p) => existsSync(p)) || !!process.env.WGFLOW_CHROMIUM;
const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-device-loss-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function wgflow(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    // WGFLOW_JOBS empty: the real trainers (cfm/train.ts, flows/train.ts).
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, WGFLOW_JOBS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wgflow ${args.join(' ')} timed out\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, 240_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const CASES = {
  otcfm: ['--method', 'otcfm', '--batch', '64', '--option', 'evalPoints=64', '--option', 'trajectoryPoints=8', '--option', 'solverSteps=4'],
  realnvp: ['--method', 'realnvp', '--target', 'moons', '--batch', '64', '--option', 'layers=2', '--option', 'hidden=16', '--option', 'testSize=256', '--option', 'grid=8', '--option', 'w2=false'],
};
const common = (runtime: string) => ['--steps', '30', '--checkpoint-every', '10', '--seed', '4', '--runtime', runtime];
const metricsOf = (out: string) => JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8'));

/** Loses the device after checkpoint LOSE_AT, checks what is left, then resumes; returns the resumed --out. */
async function loseAndResume(method: keyof typeof CASES, runtime: string): Promise<string> {
  const out = path.join(tmp, `${method}-${runtime}-lost`);
  const args = ['train', ...CASES[method], ...common(runtime), '--out', out];
  const lost = await wgflow(args, { WGFLOW_JOBS: path.join(ROOT, 'tests', 'fixtures', 'lose-device-jobs.ts') });
  expect(lost.code, lost.stderr).toBe(1);
  expect(lost.stderr).toMatch(new RegExp(`GPU device was lost during training, after step ${LOSE_AT}`));
  expect(lost.stderr).toMatch(new RegExp(`The last checkpoint \\(step ${LOSE_AT}\\) is kept in .*model\\.safetensors; continue with the same command and --resume`));
  expect(lost.stderr).not.toMatch(/\n\s+at /); // no stack trace
  const kept = readCheckpoint(path.join(out, 'model.safetensors'));
  expect(kept.state.step).toBe(LOSE_AT);
  const m = metricsOf(out);
  expect(m.failure).toMatchObject({ kind: 'device-lost', step: LOSE_AT });
  expect(m.checkpoint_step).toBe(LOSE_AT);
  expect(m.losses.map((l: [number, number]) => l[0])).toEqual(Array.from({ length: LOSE_AT }, (_, i) => i + 1));

  const resumed = await wgflow([...args, '--resume']);
  expect(resumed.code, resumed.stderr).toBe(0);
  return out;
}

async function straight(method: keyof typeof CASES, runtime: string): Promise<string> {
  const out = path.join(tmp, `${method}-${runtime}-straight`);
  const r = await wgflow(['train', ...CASES[method], ...common(runtime), '--out', out]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

/** The final models and the step-indexed metrics of two runs agree bit for bit. */
function expectSameRun(a: string, b: string): void {
  const ca = readCheckpoint(path.join(a, 'model.safetensors'));
  const cb = readCheckpoint(path.join(b, 'model.safetensors'));
  expect(ca.state.step).toBe(30);
  for (const k of Object.keys(cb.state.params)) expect([...ca.state.params[k]!.data], k).toEqual([...cb.state.params[k]!.data]);
  expect([...ca.state.adam.m]).toEqual([...cb.state.adam.m]);
  expect([...ca.state.adam.v]).toEqual([...cb.state.adam.v]);
  const [ma, mb] = [metricsOf(a), metricsOf(b)];
  for (const k of ['loss', 'w2', 'npe', 'nll', 'losses']) expect(ma[k], k).toEqual(mb[k]);
  expect(ma.losses.length).toBe(30);
}

describe('node runtime: a lost device keeps the last checkpoint and --resume gives the uninterrupted result', () => {
  for (const method of ['otcfm', 'realnvp'] as const) {
    test(method, async () => {
      const resumed = await loseAndResume(method, 'node');
      expectSameRun(resumed, await straight(method, 'node'));
    }, 600_000);
  }
});

describe.skipIf(!haveChromium)('browser runtime: the same from the page', () => {
  test('otcfm', async () => {
    const resumed = await loseAndResume('otcfm', 'browser');
    expectSameRun(resumed, await straight('otcfm', 'browser'));
  }, 600_000);
});
