/**
 * End to end through the real `wgflow` binary (bin/wgflow.js) in a child process, with the trainer
 * registry replaced by tests/fixtures/cli-fake-jobs.ts (WGFLOW_JOBS): a tiny real model trained on
 * the engine, so each run takes seconds. Covers the files of SPEC §4, the result line, the browser
 * and Node runtimes agreeing for one seed, checkpoints and --resume, sample/eval from a checkpoint,
 * page errors with their stack, Ctrl-C, `serve`, and exit status 2 for bad input.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { CHROMIUM_CANDIDATES, launchChromium } from '../browser/chromium';
import { readCheckpoint } from '../train/checkpoint';
import { parseNpy } from '../datasets/files';
import { decodePngSize } from '../io/png';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'wgflow.js');
const FAKE = path.join(ROOT, 'tests', 'fixtures', 'cli-fake-jobs.ts');
const haveChromium = CHROMIUM_CANDIDATES.some((p) => existsSync(p)) || !!process.env.WGFLOW_CHROMIUM;
const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-cli-e2e-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function wgflow(args: string[], opts: { env?: Record<string, string>; onStdout?: (chunk: string, child: ReturnType<typeof spawn>) => void; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, WGFLOW_JOBS: FAKE, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      opts.onStdout?.(c, child);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`wgflow ${args.join(' ')} timed out\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, opts.timeoutMs ?? 110_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const jsonLines = (s: string) =>
  s
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const RESULT_KEYS = ['type', 'method', 'source', 'target', 'steps', 'batch', 'seed', 'runtime', 'adapter', 'w2', 'npe', 'nll', 'loss', 'ms_per_step', 'dispatches_per_step', 'out'];
const COMMON = ['--steps', '40', '--lr', '0.05', '--seed', '3', '--checkpoint-every', '10', '--json'];

describe('wgflow train', () => {
  let browserRun: Run;
  const browserOut = path.join(tmp, 'browser');
  const nodeOut = path.join(tmp, 'node');

  test.skipIf(!haveChromium)('browser runtime: writes every file of SPEC §4 and ends with the result line', async () => {
    browserRun = await wgflow(['train', ...COMMON, '--runtime', 'browser', '--out', browserOut]);
    expect(browserRun.code, browserRun.stderr).toBe(0);
    const lines = jsonLines(browserRun.stdout);
    const result = lines[lines.length - 1]!;
    expect(Object.keys(result)).toEqual(RESULT_KEYS);
    expect(result).toMatchObject({ type: 'result', method: 'otcfm', source: '8gaussians', target: 'moons', steps: 40, batch: 256, seed: 3, runtime: 'browser', nll: null, dispatches_per_step: 12, out: browserOut });
    expect(result.adapter).toMatch(/\(software|hardware, browser\)$/);
    expect(typeof result.w2).toBe('number');
    expect(lines.find((l) => l.type === 'adapter')).toMatchObject({ runtime: 'browser' });
    expect(lines.filter((l) => l.type === 'progress').length).toBeGreaterThan(0);
    expect(lines.filter((l) => l.type === 'checkpoint').map((l) => l.step)).toEqual([10, 20, 30, 40]);

    expect(readdirSync(browserOut).sort()).toEqual(['loss.png', 'metrics.json', 'model.safetensors', 'report.html', 'samples.png', 'trajectories.png']);
    for (const png of ['samples.png', 'trajectories.png', 'loss.png']) expect(decodePngSize(readFileSync(path.join(browserOut, png))).width).toBeGreaterThan(100);
    const metrics = JSON.parse(readFileSync(path.join(browserOut, 'metrics.json'), 'utf8'));
    for (const k of RESULT_KEYS.slice(1)) expect(metrics[k], k).toEqual(result[k]);
    expect(metrics.adapter_info.runtime).toBe('browser');
    const html = readFileSync(path.join(browserOut, 'report.html'), 'utf8');
    expect(html.match(/src="data:image\/png;base64,/g)?.length).toBe(3);
    expect(html).not.toMatch(/(src|href)="https?:/);
    const ck = readCheckpoint(path.join(browserOut, 'model.safetensors'));
    expect(ck.state.step).toBe(40);
    expect(ck.config).toMatchObject({ method: 'otcfm', model: 'translation' });
    expect(ck.trainConfig).toMatchObject({ method: 'otcfm', steps: 40, seed: 3, lr: 0.05 });
  });

  test('node runtime: the same seed gives the same model and metrics as the browser', async () => {
    const run = await wgflow(['train', ...COMMON, '--runtime', 'node', '--out', nodeOut]);
    expect(run.code, run.stderr).toBe(0);
    const lines = jsonLines(run.stdout);
    const result = lines[lines.length - 1]!;
    expect(result).toMatchObject({ runtime: 'node', steps: 40 });
    expect(readdirSync(nodeOut).sort()).toEqual(['loss.png', 'metrics.json', 'model.safetensors', 'report.html', 'samples.png', 'trajectories.png']);
    if (!browserRun) return;
    const b = readCheckpoint(path.join(browserOut, 'model.safetensors'));
    const n = readCheckpoint(path.join(nodeOut, 'model.safetensors'));
    const close = (x: Float32Array, y: Float32Array) => x.forEach((v, i) => expect(Math.abs(v - y[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(v))));
    close(n.state.params.shift!.data, b.state.params.shift!.data);
    close(n.state.adam.m, b.state.adam.m);
    close(n.state.adam.v, b.state.adam.v);
    const rb = jsonLines(browserRun.stdout).pop()!;
    expect(result.w2 as number).toBeCloseTo(rb.w2 as number, 5);
  });

  test('--resume continues the run in --out to --steps in total, as if never stopped', async () => {
    const out = path.join(tmp, 'resume');
    const first = await wgflow(['train', ...COMMON.map((a) => (a === '40' ? '20' : a)), '--runtime', 'node', '--out', out]);
    expect(first.code, first.stderr).toBe(0);
    expect(readCheckpoint(path.join(out, 'model.safetensors')).state.step).toBe(20);
    const conflict = await wgflow(['train', '--resume', '--steps', '40', '--batch', '64', '--runtime', 'node', '--out', out]);
    expect(conflict.code).toBe(2);
    expect(conflict.stderr).toMatch(/--batch: the run in .* was trained with 256, got 64/);
    // Continued in the other runtime: the checkpoint travels into the page and back.
    const second = await wgflow(['train', '--resume', '--steps', '40', '--runtime', haveChromium ? 'browser' : 'node', '--out', out, '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(jsonLines(second.stdout)[0]).toMatchObject({ type: 'start', resume_from: 20, seed: 3, lr: 0.05 });
    const resumed = readCheckpoint(path.join(out, 'model.safetensors'));
    const straight = readCheckpoint(path.join(nodeOut, 'model.safetensors'));
    expect(resumed.state.step).toBe(40);
    expect(resumed.state.adam.t).toBe(40);
    expect([...resumed.state.params.shift!.data]).toEqual([...straight.state.params.shift!.data]);
    expect([...resumed.state.adam.v]).toEqual([...straight.state.adam.v]);
    expect(resumed.state.losses.length).toBeGreaterThan(first.stdout.split('"type":"progress"').length - 2);
  });

  test('sample and eval read the checkpoint', async () => {
    const ckpt = path.join(nodeOut, 'model.safetensors');
    const npy = path.join(tmp, 's.npy');
    const s = await wgflow(['sample', '--checkpoint', ckpt, '--n', '300', '--out', npy, '--json']);
    expect(s.code, s.stderr).toBe(0);
    expect(jsonLines(s.stdout)[0]).toMatchObject({ type: 'sample', n: 300, dim: 2, solver: 'rk4', solver_steps: 100, step: 40, runtime: 'node' });
    const m = parseNpy(readFileSync(npy));
    expect([m.n, m.dim]).toEqual([300, 2]);
    const csv = path.join(tmp, 's.csv');
    expect((await wgflow(['sample', '--checkpoint', ckpt, '--n', '5', '--out', csv])).code).toBe(0);
    expect(readFileSync(csv, 'utf8').trim().split('\n')).toHaveLength(5);
    const e = await wgflow(['eval', '--checkpoint', ckpt, '--n', '256', '--json']);
    expect(e.code, e.stderr).toBe(0);
    const r = jsonLines(e.stdout)[0]!;
    expect(r).toMatchObject({ type: 'eval', method: 'otcfm', target: 'moons', n: 256, nll: null });
    expect(r.w2 as number).toBeGreaterThan(0);
  });

  test('a flow method draws density.png instead of trajectories.png', async () => {
    const out = path.join(tmp, 'flow');
    const run = await wgflow(['train', '--method', 'realnvp', '--steps', '5', '--runtime', 'node', '--out', out, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonLines(run.stdout).pop()).toMatchObject({ method: 'realnvp', source: null, target: 'ffjord-moons', npe: null });
    expect(readdirSync(out).sort()).toEqual(['density.png', 'loss.png', 'metrics.json', 'model.safetensors', 'report.html', 'samples.png']);
    const flowSample = await wgflow(['sample', '--checkpoint', path.join(out, 'model.safetensors'), '--solver', 'euler', '--out', path.join(tmp, 'f.npy')]);
    expect(flowSample.code).toBe(2);
    expect(flowSample.stderr).toContain('--solver: the normalizing flow realnvp samples without an ODE solver');
  });

  test('--data FILE as the target', async () => {
    const csv = path.join(tmp, 'points.csv');
    writeFileSync(csv, Array.from({ length: 200 }, (_, i) => `${(i % 10) / 3},${Math.sin(i)}`).join('\n') + '\n');
    const out = path.join(tmp, 'data-run');
    const run = await wgflow(['train', '--data', csv, '--steps', '10', '--runtime', 'node', '--out', out, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(jsonLines(run.stdout).pop()).toMatchObject({ method: 'otcfm', source: '8gaussians', target: csv, steps: 10 });
    expect(readCheckpoint(path.join(out, 'model.safetensors')).trainConfig).toMatchObject({ target: null, data_file: csv });
    const bad = path.join(tmp, 'bad.csv');
    writeFileSync(bad, '1,2\n3,oops\n');
    const r = await wgflow(['train', '--data', bad, '--runtime', 'node', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--data: data file ".*bad\.csv": CSV line 2, column 2: "oops" is not a number/);
  });

  test('plain progress lines when stdout is not a terminal', async () => {
    const run = await wgflow(['train', '--steps', '30', '--runtime', 'node', '--out', path.join(tmp, 'plain'), '--option', 'slow=10']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^wgflow train {2}OT-CFM: 8gaussians → moons, 30 steps, batch 256/m);
    expect(run.stdout).toMatch(/^adapter: .*\(software|hardware, node\)$/m);
    expect(run.stdout).toMatch(/^step 30\/30 {2}loss [\d.]+ {2}[\d.]+ steps\/s {2}ETA 0:00$/m);
    expect(run.stdout).toMatch(/^step 30\/30 .*\nevaluating the trained model \(test metrics, samples, pictures\)…\n(.*\n)*done: 30 steps in /m);
    expect(run.stdout).not.toContain('\r');
  });

  test.skipIf(!haveChromium)('a page error reaches the terminal with its (source-mapped) stack: exit 1', async () => {
    const run = await wgflow(['train', '--steps', '20', '--option', 'failAt=3', '--runtime', 'browser', '--out', path.join(tmp, 'fail')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('wgflow train: failed: the page (page/entry.ts, train) threw in the browser: fake trainer failed on purpose at step 3');
    expect(run.stderr).toMatch(/at failOnPurpose \(tests\/fixtures\/cli-fake-jobs\.ts:\d+:\d+\)/);
  });

  test.skipIf(!haveChromium)('Ctrl-C closes the browser, keeps the last checkpoint, exits 130', async () => {
    const out = path.join(tmp, 'interrupt');
    let chromiumPids: number[] = [];
    let sent = false;
    const run = await wgflow(['train', '--steps', '2000', '--checkpoint-every', '5', '--option', 'slow=20', '--runtime', 'browser', '--out', out, '--json'], {
      onStdout: (_chunk, child) => {
        const seen = (child as unknown as { seen?: string }).seen ?? '';
        if (!sent && /"type":"checkpoint"/.test(seen + _chunk)) {
          sent = true;
          chromiumPids = descendants(child.pid!).filter((p) => /chrom/i.test(commOf(p)));
          child.kill('SIGINT');
        }
        (child as unknown as { seen?: string }).seen = seen + _chunk;
      },
    });
    expect(sent).toBe(true);
    expect(run.code).toBe(130);
    expect(run.stderr).toMatch(/interrupted: stopping and closing the browser/);
    expect(run.stderr).toMatch(/stopped\. The last checkpoint \(step \d+\) is in .*model\.safetensors; continue with the same command and --resume/);
    expect(chromiumPids.length).toBeGreaterThan(0);
    for (const pid of chromiumPids) expect(existsSync(`/proc/${pid}`) && !commOf(pid).includes('defunct') && stateOf(pid) !== 'Z', `chromium ${pid} still running`).toBe(false);
    expect(readCheckpoint(path.join(out, 'model.safetensors')).state.step % 5).toBe(0);
  });
});

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}
function stateOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[0]!;
  } catch {
    return '';
  }
}
/** All processes below `root` (from /proc). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.replace(/^.*\) /, '').split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) if (pp === p) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

const haveCfm = existsSync(path.join(ROOT, 'cfm', 'train.ts'));

describe.skipIf(!haveCfm)('the real OT-CFM trainer (cfm/train.ts), a short run', () => {
  // Small evaluation so that the run is dominated by pipeline compilation (~30 s on SwiftShader).
  const args = ['train', '--steps', '12', '--checkpoint-every', '6', '--option', 'evalPoints=128', '--option', 'trajectoryPoints=32', '--option', 'solverSteps=8', '--json'];
  const real = { WGFLOW_JOBS: '' };
  test('browser and node give the same model for the same seed; sample and eval read its checkpoint', async () => {
    const outs = { node: path.join(tmp, 'cfm-node'), browser: path.join(tmp, 'cfm-browser') };
    const runtimes = haveChromium ? (['node', 'browser'] as const) : (['node'] as const);
    const results: Record<string, Record<string, unknown>> = {};
    for (const rt of runtimes) {
      const r = await wgflow([...args, '--runtime', rt, '--out', outs[rt]], { env: real, timeoutMs: 240_000 });
      expect(r.code, r.stderr).toBe(0);
      results[rt] = jsonLines(r.stdout).pop()!;
      expect(Object.keys(results[rt]!)).toEqual(RESULT_KEYS);
      expect(readdirSync(outs[rt]).sort()).toEqual(['loss.png', 'metrics.json', 'model.safetensors', 'report.html', 'samples.png', 'trajectories.png']);
    }
    const n = readCheckpoint(path.join(outs.node, 'model.safetensors'));
    expect(n.config).toMatchObject({ method: 'otcfm', hidden: [64, 64, 64], dim: 2, sigma: 0.1 });
    expect(Object.keys(n.state.params).length).toBe(8);
    if (haveChromium) {
      const b = readCheckpoint(path.join(outs.browser, 'model.safetensors'));
      for (const k of Object.keys(n.state.params)) {
        n.state.params[k]!.data.forEach((v, i) => expect(Math.abs(v - b.state.params[k]!.data[i]!)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(v))));
      }
      expect(results.browser!.w2 as number).toBeCloseTo(results.node!.w2 as number, 4);
      expect(results.browser!.npe as number).toBeCloseTo(results.node!.npe as number, 3);
    }
    const npy = path.join(tmp, 'cfm.npy');
    const s = await wgflow(['sample', '--checkpoint', path.join(outs.node, 'model.safetensors'), '--n', '64', '--solver', 'euler', '--solver-steps', '4', '--out', npy, '--json'], { env: real, timeoutMs: 240_000 });
    expect(s.code, s.stderr).toBe(0);
    expect(jsonLines(s.stdout)[0]).toMatchObject({ type: 'sample', n: 64, dim: 2, solver: 'euler', solver_steps: 4 });
    const m = parseNpy(readFileSync(npy));
    expect([m.n, m.dim]).toEqual([64, 2]);
    expect([...m.data].every(Number.isFinite)).toBe(true);
    const e = await wgflow(['eval', '--checkpoint', path.join(outs.node, 'model.safetensors'), '--n', '64', '--solver-steps', '8', '--json'], { env: real, timeoutMs: 240_000 });
    expect(e.code, e.stderr).toBe(0);
    const ev = jsonLines(e.stdout)[0]!;
    expect(ev).toMatchObject({ type: 'eval', method: 'otcfm', source: '8gaussians', target: 'moons', n: 64, nll: null });
    expect(ev.w2 as number).toBeGreaterThan(0);
    expect(ev.npe as number).toBeGreaterThanOrEqual(0);
  }, 600_000);
});

describe('usage and input errors exit 2, naming the flag or value', () => {
  const cases: [string[], RegExp][] = [
    [['train', '--steps', 'abc'], /^wgflow train: --steps: expected a positive integer, got "abc"$/m],
    [['train', '--steps', '-5'], /--steps: expected a positive integer, got "-5"/],
    [['train', '--batch', '0'], /--batch: expected a positive integer, got "0"/],
    [['train', '--lr', 'fast'], /--lr: expected a positive number, got "fast"/],
    [['train', '--seed', '1.5'], /--seed: expected a non-negative integer, got "1.5"/],
    [['train', '--runtime', 'gpu'], /--runtime: expected one of browser, node; got "gpu"/],
    [['train', '--method', 'ddpm'], /--method: expected one of otcfm, icfm, fm, sbcfm, vpcfm, sf2m, realnvp, nice, glow, planar, radial, maf, nsf; got "ddpm"/],
    [['train', '--target', 'moonz'], /--target: unknown dataset "moonz" \(did you mean "moons"\?\); accepted: gaussian, 8gaussians, moons,/],
    [['train', '--source', 'nope'], /--source: unknown dataset "nope"/],
    [['train', '--frobnicate'], /unknown flag --frobnicate for wgflow train; accepted: --method,/],
    [['train', '--data', '/nonexistent/x.npy'], /--data: cannot read data file "\/nonexistent\/x.npy"/],
    [['train', '--resume', '--out', '/nonexistent/run'], /--resume: no checkpoint at \/nonexistent\/run\/model.safetensors/],
    [['train', '--steps'], /--steps: missing value \(expected a positive integer\)/],
    [['train', '--chromium', '/nonexistent/chromium'], /--chromium: Chromium path "\/nonexistent\/chromium" does not exist/],
    [['sample'], /--checkpoint: required/],
    [['sample', '--checkpoint', '/nonexistent.safetensors'], /--checkpoint: \/nonexistent.safetensors: no such file/],
    [['sample', '--checkpoint', BIN], /--checkpoint: .*wgflow.js: invalid safetensors/],
    [['sample', '--n', 'many'], /--n: expected a positive integer, got "many"/],
    [['eval', '--solver', 'leapfrog'], /--solver: expected one of rk4, euler, midpoint, dopri5, sde; got "leapfrog"/],
    [['info', '--runtime', 'gpu'], /--runtime: expected one of all, node, browser; got "gpu"/],
    [['serve', '--port', '70000'], /--port: expected a non-negative integer, got "70000" \(accepted: 0 to 65535\)/],
    [['trian'], /unknown command "trian" \(did you mean "train"\?\); accepted: train, sample, eval, bench, info, serve, export, import/],
    [[], /usage: wgflow <command>/],
  ];
  test('each bad command line', async () => {
    const runs = await Promise.all(cases.map(([argv]) => wgflow(argv, { env: { WGFLOW_CHROMIUM: '' } })));
    runs.forEach((r, i) => {
      const [argv, re] = cases[i]!;
      expect(r.code, `wgflow ${argv.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, `wgflow ${argv.join(' ')}`).toMatch(re);
      expect(r.stdout).toBe('');
    });
  });

  test('--help on each command exits 0; a missing trainer exits 1', async () => {
    const cmds = ['train', 'sample', 'eval', 'bench', 'info', 'serve', 'export', 'import'];
    const runs = await Promise.all([...cmds.map((c) => wgflow([c, '--help'])), wgflow(['--help']), wgflow(['train', '--method', 'maf', '--runtime', 'node', '--out', path.join(tmp, 'maf')])]);
    cmds.forEach((c, i) => {
      expect(runs[i]!.code).toBe(0);
      expect(runs[i]!.stdout).toContain(`usage: wgflow ${c}`);
    });
    expect(runs[0]!.stdout).toMatch(/--steps N +total steps\. Default 2000 when WebGPU runs on the CPU/);
    expect(runs[cmds.length]!.stdout).toContain('commands:');
    const maf = runs[cmds.length + 1]!;
    expect(maf.code).toBe(1);
    expect(maf.stderr).toContain('method maf: not available');
  });
});

describe.skipIf(!haveChromium)('wgflow serve', () => {
  test('serves a page on 127.0.0.1 that trains and redraws the samples; Ctrl-C stops it', async () => {
    let url = '';
    let server: ReturnType<typeof spawn> | null = null;
    const gotUrl = new Promise<void>((resolve) => {
      void wgflow(['serve', '--port', '0', '--steps', '150', '--lr', '0.05', '--json'], {
        onStdout: (chunk, child) => {
          server = child;
          const m = /"url":"([^"]+)"/.exec(chunk);
          if (m) {
            url = m[1]!;
            resolve();
          }
        },
      }).then((r) => ((server as unknown as { result?: Run }).result = r));
    });
    await gotUrl;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const chromium = await launchChromium({ gpu: false });
    try {
      const page = await chromium.browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(url, { waitUntil: 'load' });
      await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', { timeout: 90_000 });
      const state = await page.evaluate(() => ({ state: document.body.dataset.state, frames: Number(document.body.dataset.frames), error: document.getElementById('error')!.textContent, step: document.getElementById('step')!.textContent, adapter: document.getElementById('adapter')!.textContent }));
      expect(state.error).toBe('');
      expect(errors).toEqual([]);
      expect(state.state).toBe('done');
      expect(state.frames).toBeGreaterThanOrEqual(2);
      expect(state.step).toBe('150 / 150 (done)');
      expect(state.adapter).toMatch(/browser\)$/);
    } finally {
      await chromium.close();
    }
    const s = server as unknown as ReturnType<typeof spawn>;
    const exited = new Promise<number | null>((r) => s.on('exit', (code) => r(code)));
    s.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
