/**
 * The command line refuses bad input before any work (issue 12 items 5, 5b and 1's data rule):
 * exit 2, a message naming the file, field or flag and what is accepted, no stack trace, and at
 * most a short escaped excerpt of any file content. Runs cli/main.ts main() in this process with
 * captured output; the runner is replaced so that input that passes every check ends at the task
 * (REACHED, exit 1) instead of starting a GPU or a browser. That keeps the fuzz sweeps fast.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test, vi } from 'vitest';
import { encodeCheckpoint } from '../train/checkpoint';
import { main } from '../cli/main';
import { encodeNpy } from '../datasets/files';
import { cfmCheckpoint, cfmParts, flowCheckpoint, flowParts } from './fixtures/checkpoints';
import { mulberry32 } from './fixtures/seeded';

const REACHED = 'REACHED THE TASK (test runner stand-in)';
vi.mock('../cli/runner', async (orig) => ({
  ...(await orig<typeof import('../cli/runner')>()),
  runTaskIn: async () => {
    throw new Error(REACHED);
  },
  resolveChromium: async () => '/usr/bin/chromium',
}));

const ROOT = path.resolve(__dirname, '..');
const dir = mkdtempSync(path.join(tmpdir(), 'wgflow-validation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function wgflow(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '', stderr = '';
  const code = await main(argv, { root: ROOT, cwd: dir, stdout: { write: (s: string) => ((stdout += s), true) }, stderr: { write: (s: string) => ((stderr += s), true) } });
  return { code, stdout, stderr };
}

const file = (name: string, content: string | Uint8Array) => {
  const p = path.join(dir, name);
  writeFileSync(p, content);
  return p;
};

/** exit 2 with one printable, bounded line and no stack. */
function expectRefused(r: { code: number; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(r.stderr), JSON.stringify(r.stderr.slice(0, 300))).toBe(false);
  expect(r.stderr.length).toBeLessThan(2000);
}

/** A checkpoint from the fixture with `edit` applied to its parts. */
function checkpoint(name: string, family: 'cfm' | 'flow', edit: (p: ReturnType<typeof cfmParts>) => void): string {
  const parts = family === 'cfm' ? cfmParts() : flowParts();
  edit(parts);
  return file(name, encodeCheckpoint(parts));
}

describe('checkpoint configurations are checked on read (item 5)', () => {
  test('the issue\'s reproductions: exit 2 naming the file and the field', async () => {
    const noArch = checkpoint('no-arch.safetensors', 'flow', (p) => delete p.config.arch);
    expectRefused(await wgflow(['sample', '--checkpoint', noArch]), /--checkpoint: .*no-arch\.safetensors: metadata "config" field "arch" is missing; accepted: a JSON object/);
    const noHidden = checkpoint('no-hidden.safetensors', 'cfm', (p) => delete p.config.hidden);
    expectRefused(await wgflow(['eval', '--checkpoint', noHidden]), /no-hidden\.safetensors: metadata "config" field "hidden" is missing; accepted: a list of 1 to 16 widths from 1 to 1024/);
    const wide = checkpoint('wide.safetensors', 'cfm', (p) => (p.config.hidden = [30000, 8]));
    expectRefused(await wgflow(['sample', '--checkpoint', wide]), /field "hidden" is \[30000,8\]; accepted: a list of 1 to 16 widths from 1 to 1024/);
    // The stored dimension was not an integer: said so (not "dimension 2 … dimension 2").
    const badDim = checkpoint('dim.safetensors', 'flow', (p) => (p.config.dim = '2'));
    expectRefused(await wgflow(['eval', '--checkpoint', badDim]), /field "dim" is "2"; accepted: an integer from 1/);
    // Was `TypeError: s.std.reduce is not a function`.
    const std = checkpoint('std.safetensors', 'flow', (p) => (p.config.standardize = { mean: [0, 0], std: 'x' }));
    expectRefused(await wgflow(['eval', '--checkpoint', std]), /field "standardize" is \{"mean":\[0,0\],"std":"x"\}; accepted: null or \{"mean": 2 finite numbers/);
    // Was `RangeError: Invalid typed array length: 6000000002` (a buffer sized from the stored config).
    const huge = checkpoint('huge.safetensors', 'cfm', (p) => (p.config.dim = 3e9));
    expectRefused(await wgflow(['sample', '--checkpoint', huge]), /the parameters do not match metadata "config": a otcfm vector field of dimension 3000000000 .* needs "l0\.W" of shape \[3000000001, 8\], the checkpoint has \[3, 8\]/);
  });

  test('every field by the flags\' rules, and the trainer\'s own resolution', async () => {
    const cases: [string, 'cfm' | 'flow', (p: ReturnType<typeof cfmParts>) => void, RegExp][] = [
      ['batch', 'cfm', (p) => (p.config.batch = 0), /field "batch": expected a positive integer, got 0/],
      ['lr', 'flow', (p) => (p.config.lr = -1), /field "lr": expected a positive number, got -1/],
      ['seed', 'cfm', (p) => (p.config.seed = 2 ** 40), /field "seed": expected a non-negative integer, got 1099511627776 \(accepted: 0 to 4294967295\)/],
      ['method', 'cfm', (p) => (p.config.method = 'toString'), /field "method" is "toString"; accepted: one of otcfm/],
      ['source', 'cfm', (p) => (p.config.source = '__proto__'), /field "source": unknown dataset "__proto__"/],
      ['nll', 'cfm', (p) => (p.config.nllSteps = 1e9), /field "nllSteps" is 1000000000; accepted: an integer from 0 to 100000/],
      ['resolves', 'cfm', (p) => (p.config.nllPoints = 7), /field "nllPoints" is 7; accepted: 0 \(what otcfm resolves the stored settings to\)/],
      ['arch', 'flow', (p) => ((p.config.arch as Record<string, unknown>).layers = 1e6), /field "arch" is not an architecture realnvp accepts: flow option layers: 1000000 is not accepted/],
      ['layers', 'flow', (p) => ((p.config.arch as Record<string, unknown>).layers = 1000), /1000 realnvp layers of dimension 2 .* need more than the 256 values the checkpoint holds/],
      ['train_config', 'cfm', (p) => (p.trainConfig.batch = 1048576), /metadata "train_config" field "batch": expected a positive integer, got 1048576 \(accepted: 1 to 65536\)/],
      ['toString', 'cfm', (p) => ((p.state.params as Record<string, unknown>)['toString'] = { data: new Float32Array(1), shape: [1] }), /has no parameter "toString"/],
    ];
    for (const [name, family, edit, pattern] of cases) {
      expectRefused(await wgflow(['sample', '--checkpoint', checkpoint(`${name}.safetensors`, family, edit)]), pattern);
    }
  });

  test('a param_order entry "toString" does not decode into a parameter without data', async () => {
    const parts = cfmParts();
    const bytes = encodeCheckpoint(parts);
    // Rewrite the stored order to list "toString" as well: its length changes, so re-encode by hand.
    const { decodeSafetensors, encodeSafetensors } = await import('../io/safetensors');
    const { tensors, metadata } = decodeSafetensors(bytes);
    metadata.param_order = JSON.stringify([...JSON.parse(metadata.param_order!), 'toString']);
    const p = file('order.safetensors', encodeSafetensors(tensors, metadata));
    expectRefused(await wgflow(['sample', '--checkpoint', p]), /metadata "param_order" does not match the tensors \(missing: "toString"\)/);
  });

  test('sample and eval refuse non-finite parameters (exit 2)', async () => {
    // Written past the checkpoint writer (which refuses non-finite parameters), as a diverged run's file from an older wgflow.
    const { decodeSafetensors, encodeSafetensors } = await import('../io/safetensors');
    const { tensors, metadata } = decodeSafetensors(cfmCheckpoint());
    tensors['l1.W']!.data.fill(NaN);
    const nan = file('nan.safetensors', encodeSafetensors(tensors, metadata));
    for (const cmd of ['sample', 'eval']) expectRefused(await wgflow([cmd, '--checkpoint', nan]), /parameter "l1\.W" holds NaN at index 0: the model is not finite/);
  });

  test('valid checkpoints pass every check and reach the task', async () => {
    const ok = file('ok.safetensors', cfmCheckpoint());
    const r = await wgflow(['sample', '--checkpoint', ok, '--n', '10']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(REACHED);
    const flow = file('flow.safetensors', flowCheckpoint());
    expect((await wgflow(['eval', '--checkpoint', flow])).stderr).toContain(REACHED);
  });

  test('--debug prints the stack of a usage error; without it there is none', async () => {
    const noArch = checkpoint('no-arch2.safetensors', 'flow', (p) => delete p.config.arch);
    const r = await wgflow(['sample', '--debug', '--checkpoint', noArch]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});

describe('flags and paths before work starts (item 5b)', () => {
  const train = (...a: string[]) => wgflow(['train', '--runtime', 'node', '--steps', '2', ...a]);

  test('--out: a file, under a file, a kernel file system: exit 2 naming it, no hang', async () => {
    const f = file('plain-file', 'x');
    expectRefused(await train('--out', f), /--out: ".*plain-file" exists and is not a folder \(a file\)/);
    expectRefused(await train('--out', path.join(f, 'sub', 'dir')), /--out: ".*plain-file\/sub\/dir" lies under ".*plain-file", which is a file/);
    for (const p of ['/proc/x', '/sys/x', '/dev/x']) expectRefused(await train('--out', p), /is on a kernel file system \(\/proc, \/sys, \/dev\)/);
    expectRefused(await wgflow(['sample', '--checkpoint', file('ok2.safetensors', cfmCheckpoint()), '--out', path.join(f, 'x.npy')]), /lies under ".*plain-file", which is a file/);
    const folder = path.join(dir, 'a-folder.npy');
    mkdirSync(folder, { recursive: true });
    expectRefused(await wgflow(['sample', '--checkpoint', file('ok3.safetensors', cfmCheckpoint()), '--out', folder]), /exists and is not a regular file \(a folder\)/);
  });

  test('resource bounds: batch, hidden layers, and the memory estimate', async () => {
    expectRefused(await train('--batch', '1048576', '--method', 'realnvp'), /--batch: expected a positive integer, got "1048576" \(accepted: 1 to 65536\)/);
    expectRefused(await train('--option', `hidden=${Array(17).fill(8).join(',')}`), /--option hidden: 17 hidden layers; accepted: 1 to 16/);
    // Exact OT at batch 65 536 is a 32 GiB cost matrix.
    expectRefused(await train('--batch', '65536', '--out', path.join(dir, 'big')), /otcfm, hidden \[64, 64, 64\], dimension 2, batch 65536 needs an estimated 32\.\d GiB .*; accepted: at most 4\.0 GiB/);
    expectRefused(await train('--method', 'realnvp', '--batch', '65536', '--option', 'hidden=4096,4096', '--out', path.join(dir, 'big2')), /needs an estimated .* GiB/);
    expectRefused(await wgflow(['sample', '--checkpoint', 'x', '--n', '1e9']), /--n: expected a positive integer, got "1e9" \(accepted: 1 to 16777216\)/);
    // Within the bounds: reaches the task.
    expect((await train('--batch', '4096', '--out', path.join(dir, 'fine'))).stderr).toContain(REACHED);
  });

  test('data files: values beyond |x| ≤ 1e6 or non-finite are refused naming file, row, column, value', async () => {
    const big = file('big.csv', 'x,y\n1,2\n3,1e30\n');
    expectRefused(await train('--data', big, '--out', path.join(dir, 'd1')), /--data: data file ".*big\.csv": row 2, column 2 holds 1\.0000000150474662e\+30; accepted: finite values with \|x\| ≤ 1e\+6/);
    const npy = file('big.npy', encodeNpy(Float32Array.from([0, 1, 2, -2e6]), [2, 2]));
    expectRefused(await wgflow(['eval', '--checkpoint', file('ok4.safetensors', cfmCheckpoint()), '--data', npy]), /big\.npy": row 2, column 2 holds -2000000/);
    expect((await train('--data', file('fine.csv', '1,2\n-1e6,1e6\n3,4\n'), '--out', path.join(dir, 'd2'))).stderr).toContain(REACHED);
  });

  test('messages quote a short escaped excerpt of file content (a 5 MB line, NUL and ESC bytes)', async () => {
    const long = file('long.csv', `1,2\n3,${'7'.repeat(5_000_000)}x\u0000\u001b[2J\n`);
    const r = await train('--data', long, '--out', path.join(dir, 'd3'));
    expectRefused(r, /--data: data file ".*long\.csv": CSV line 2, column 2: "7{80}…" \(\+4999926 more characters\) is not a number/);
    const esc = file('esc.csv', '1,2\n3,\u001b[31mred\u0000\n');
    expectRefused(await train('--data', esc, '--out', path.join(dir, 'd4')), /"\\u001b\[31mred\\u0000" is not a number/);
  });
});


describe('CLI fuzz: every outcome is exit 0 or 2 without a stack, or reaching the task', () => {
  function expectCleanExit(what: string, r: { code: number; stderr: string }): 'refused' | 'reached' | 'ok' {
    if (r.code === 1 && r.stderr.includes(REACHED)) return 'reached';
    expect([0, 2], `${what}: exit ${r.code}\n${r.stderr.slice(0, 2000)}`).toContain(r.code);
    expect(r.stderr, what).not.toMatch(/\n\s+at /);
    expect(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(r.stderr), `${what}: ${JSON.stringify(r.stderr.slice(0, 300))}`).toBe(false);
    expect(r.stderr.length, what).toBeLessThan(3000);
    return r.code === 2 ? 'refused' : 'ok';
  }

  test('300 mutated checkpoints through sample and eval, 200 mutated data files through train and eval', async () => {
    const r = mulberry32(5);
    const { decodeSafetensors, encodeSafetensors } = await import('../io/safetensors');
    const counts = { refused: 0, reached: 0, ok: 0 };
    const bases = [cfmCheckpoint(), flowCheckpoint()];
    const weird: unknown[] = [null, -1, 0, 1e308, 6e9, '2', 'toString', [], {}, [30000], 'x'.repeat(3000), '\u0000\u001b[2J'];
    for (let i = 0; i < 300; i++) {
      const { tensors, metadata } = decodeSafetensors(bases[i % 2]!);
      const key = ['config', 'train_config', 'losses', 'param_order', 'step'][Math.floor(r() * 5)]!;
      let bytes: Uint8Array;
      if (r() < 0.8) {
        const v = JSON.parse(metadata[key] ?? 'null');
        if (v && typeof v === 'object' && !Array.isArray(v)) {
          const keys = Object.keys(v);
          const k = keys[Math.floor(r() * keys.length)]!;
          if (r() < 0.25) delete v[k];
          else v[k] = weird[Math.floor(r() * weird.length)];
          metadata[key] = JSON.stringify(v);
        } else metadata[key] = String(weird[Math.floor(r() * weird.length)]);
        bytes = encodeSafetensors(tensors, metadata);
      } else {
        bytes = bases[i % 2]!.slice(0, Math.floor(r() * bases[i % 2]!.length));
      }
      const p = file(`m${i}.safetensors`, bytes);
      const cmd = i % 3 === 0 ? ['eval', '--checkpoint', p] : ['sample', '--checkpoint', p, '--out', path.join(dir, 's.npy')];
      counts[expectCleanExit(`${cmd.join(' ')} (mutation of ${key})`, await wgflow(cmd))]++;
    }
    const valid = file('valid.safetensors', cfmCheckpoint());
    const pieces = ['1e30', 'NaN', 'inf', ',', '\n', '\u0000', '\u001b[31m', 'abc', '1e39', '-1e7', 'x'.repeat(10000)];
    for (let i = 0; i < 200; i++) {
      let s = 'x,y\n0.5,1\n-2,3\n4,-0.25\n';
      for (let k = 0; k < 1 + Math.floor(r() * 3); k++) {
        const at = Math.floor(r() * s.length);
        s = r() < 0.6 ? s.slice(0, at) + pieces[Math.floor(r() * pieces.length)] + s.slice(at) : s.slice(0, at) + s.slice(at + 2);
      }
      const npy = r() < 0.3;
      const p = npy ? file(`d${i}.npy`, Uint8Array.from(Array.from(s, (c) => c.charCodeAt(0) & 0xff))) : file(`d${i}.csv`, s);
      const cmd = i % 2 ? ['train', '--runtime', 'node', '--data', p, '--steps', '2', '--out', path.join(dir, `t${i}`)] : ['eval', '--checkpoint', valid, '--data', p];
      counts[expectCleanExit(cmd.join(' '), await wgflow(cmd))]++;
    }
    console.log(`CLI fuzz, files: ${JSON.stringify(counts)}`);
    expect(counts.refused).toBeGreaterThan(200);
    expect(counts.reached).toBeGreaterThan(10);
  });

  test('400 flag sweeps over train, sample and eval', async () => {
    const r = mulberry32(9);
    const counts = { refused: 0, reached: 0, ok: 0 };
    const ck = file('sweep.safetensors', cfmCheckpoint());
    const values = ['', '-1', '0', '1', '2', '1e9', '1048576', '65537', 'NaN', 'Infinity', '0x10', '1.5', 'toString', '__proto__', 'moons', 'gaussian', '/proc/x', '/sys/kernel/x', '/dev/null', path.join(dir, 'plain-file'), dir, 'x'.repeat(4000), '\u0000\u001b[2J', 'hidden=30000', 'hidden=8,8', 'layers=100000', 'ot=exact', 'sigma=-1', 'a=b'];
    const flags: Record<string, string[]> = {
      train: ['method', 'source', 'target', 'data', 'sigma', 'ot', 'option', 'steps', 'batch', 'lr', 'seed', 'checkpoint-every', 'out', 'gpu', 'bogus'],
      sample: ['n', 'solver', 'solver-steps', 'seed', 'out', 'runtime', 'gpu', 'bogus'],
      eval: ['target', 'data', 'n', 'seed', 'solver', 'solver-steps', 'runtime', 'bogus'],
    };
    for (let i = 0; i < 400; i++) {
      const cmd = (['train', 'sample', 'eval'] as const)[i % 3];
      const argv: string[] = cmd === 'train' ? ['train', '--runtime', 'node', '--steps', '2', '--out', path.join(dir, `sw${i}`)] : [cmd, '--checkpoint', ck];
      for (let k = 0; k < 1 + Math.floor(r() * 2); k++) {
        const f = flags[cmd]![Math.floor(r() * flags[cmd]!.length)]!;
        argv.push(`--${f}`, values[Math.floor(r() * values.length)]!);
      }
      counts[expectCleanExit(argv.join(' ').slice(0, 300), await wgflow(argv))]++;
    }
    console.log(`CLI fuzz, flags: ${JSON.stringify(counts)}`);
    expect(counts.refused).toBeGreaterThan(200);
  });
});
