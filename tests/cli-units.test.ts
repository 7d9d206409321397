/** Pieces of the command line without a GPU: flag parsing, configuration, progress, pictures, report. */
import { describe, expect, test } from 'vitest';
import { UsageError, convert, editDistance, parseFlags, suggest, type FlagSpec } from '../cli/args';
import { MODEL_FLAGS, defaultOutDir, mergeResume, resolveModel } from '../cli/config';
import { ProgressView, formatDuration } from '../cli/progress';
import { lossImage, pngOf, renderPictures, robustBounds, samplesImage } from '../cli/pictures';
import { escapeHtml, referenceFor, renderReport, type RunResult } from '../cli/report';
import { decodePngSize, readPngChunks } from '../io/png';
import { TRAIN_FLAGS } from '../cli/train';

const specs: FlagSpec[] = [
  { name: 'steps', kind: { type: 'int', min: 1 } },
  { name: 'lr', kind: { type: 'number', positive: true } },
  { name: 'runtime', kind: { type: 'enum', values: ['browser', 'node'] } },
  { name: 'json', kind: { type: 'bool' } },
  { name: 'out', kind: { type: 'string' } },
  { name: 'option', kind: { type: 'keyvalue' }, repeatable: true },
];

describe('parseFlags', () => {
  test('--name value, --name=value, switches, repeatable key=value', () => {
    const p = parseFlags('train', ['--steps', '20', '--lr=5e-4', '--json', '--option', 'a=1', '--option', 'b=x', '--option', 'c=[1,2]'], specs);
    expect(p.values).toEqual({ steps: 20, lr: 5e-4, json: true, option: [['a', 1], ['b', 'x'], ['c', [1, 2]]] });
    expect([...p.given].sort()).toEqual(['json', 'lr', 'option', 'steps']);
    expect(parseFlags('train', ['--steps', '2e3'], specs).values.steps).toBe(2000);
    expect(parseFlags('train', ['-h'], specs).help).toBe(true);
  });

  test('bad values name the flag, the value and what is accepted', () => {
    const err = (argv: string[]) => {
      try {
        parseFlags('train', argv, specs);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(err(['--steps', 'abc'])).toBe('--steps: expected a positive integer, got "abc"');
    expect(err(['--steps', '0'])).toBe('--steps: expected a positive integer, got "0"');
    expect(err(['--steps', '1.5'])).toBe('--steps: expected a positive integer, got "1.5"');
    expect(err(['--lr', '-1'])).toBe('--lr: expected a positive number, got "-1"');
    expect(err(['--lr', 'fast'])).toBe('--lr: expected a positive number, got "fast"');
    expect(err(['--runtime', 'gpu'])).toBe('--runtime: expected one of browser, node; got "gpu"');
    expect(err(['--runtime', 'nod'])).toMatch(/did you mean "node"\?/);
    expect(err(['--steps'])).toBe('--steps: missing value (expected a positive integer)');
    expect(err(['--out', '--json'])).toBe('--out: missing value (expected a value)');
    expect(err(['--stpes', '3'])).toMatch(/^unknown flag --stpes for wgflow train \(did you mean "--steps"\?\); accepted: --steps, --lr/);
    expect(err(['-s', '3'])).toMatch(/^unknown flag "-s"/);
    expect(err(['extra'])).toMatch(/unexpected argument "extra"/);
    expect(err(['--json=yes'])).toBe('--json: takes no value, got "yes"');
    expect(err(['--option', 'novalue'])).toBe('--option: expected KEY=VALUE, got "novalue"');
  });

  test('helpers', () => {
    expect(editDistance('stpes', 'steps')).toBe(1);
    expect(suggest('mons', ['moons', 'gaussian'])).toBe(' (did you mean "moons"?)');
    expect(suggest('zzzzzz', ['moons'])).toBe('');
    expect(convert('seed', { type: 'int', min: 0, max: 10 }, '0')).toBe(0);
    expect(() => convert('seed', { type: 'int', min: 0, max: 10 }, '11')).toThrow('--seed: expected a non-negative integer, got "11" (accepted: 0 to 10)');
  });
});

describe('train configuration', () => {
  const parse = (argv: string[]) => parseFlags('train', argv, TRAIN_FLAGS);
  test('defaults of SPEC §4', () => {
    const { config, stored } = resolveModel(parse([]), 2000);
    expect(config).toEqual({ method: 'otcfm', source: '8gaussians', target: 'moons', steps: 2000, batch: 256, lr: 1e-3, seed: 0, options: {} });
    expect(defaultOutDir(stored)).toBe('runs/otcfm-8gaussians-moons-0');
  });
  test('flows and fm have no source; flows default to ffjord-moons', () => {
    const flow = resolveModel(parse(['--method', 'realnvp']), 10).stored;
    expect(flow.source).toBeNull();
    expect(flow.target).toBe('ffjord-moons');
    expect(defaultOutDir(flow)).toBe('runs/realnvp-ffjord-moons-0');
    expect(resolveModel(parse(['--method', 'fm']), 10).stored.source).toBeNull();
    expect(() => resolveModel(parse(['--method', 'realnvp', '--source', 'gaussian']), 10)).toThrow(/--source: not used by the normalizing flow realnvp/);
    expect(() => resolveModel(parse(['--method', 'fm', '--source', 'gaussian']), 10)).toThrow(/--source: not used by fm/);
    expect(() => resolveModel(parse(['--method', 'icfm', '--ot', 'exact']), 10)).toThrow(/--ot: only otcfm, sbcfm and sf2m/);
  });
  test('datasets and data files are checked', () => {
    expect(() => resolveModel(parse(['--target', 'mons']), 10)).toThrow(/^--target: unknown dataset "mons" \(did you mean "moons"\?\); accepted: gaussian, 8gaussians, moons/);
    expect(() => resolveModel(parse(['--source', 'nope']), 10)).toThrow(/^--source: unknown dataset "nope"/);
    expect(() => resolveModel(parse(['--data', '/nonexistent.npy']), 10)).toThrow(/^--data: cannot read data file "\/nonexistent.npy"/);
    expect(() => resolveModel(parse(['--data', 'x.txt']), 10)).toThrow(/^--data: unknown data file extension ".txt"/);
    expect(() => resolveModel(parse(['--data', 'x.npy', '--target', 'moons']), 10)).toThrow(/--data and --target: give one of them/);
  });
  test('options from --sigma, --ot, --option', () => {
    expect(resolveModel(parse(['--sigma', '0.2', '--ot', 'sinkhorn', '--option', 'reg=0.05']), 10).config.options).toEqual({ sigma: 0.2, ot: 'sinkhorn', reg: 0.05 });
  });
  test('--resume: given flags must match the run, the rest come from it', () => {
    const prev = resolveModel(parse(['--batch', '128', '--sigma', '0.2']), 100).stored;
    const merged = mergeResume(parse(['--steps', '300']), prev, 100, 'runs/x');
    expect(merged.stored).toEqual({ ...prev, steps: 300 });
    expect(() => mergeResume(parse(['--batch', '256']), prev, 100, 'runs/x')).toThrow('--batch: the run in runs/x was trained with 128, got 256 (--resume continues the same run; use another --out for a new one)');
    expect(() => mergeResume(parse(['--sigma', '0.1']), prev, 100, 'runs/x')).toThrow(/^--sigma: the run in runs\/x was trained with 0.2, got 0.1/);
    expect(() => mergeResume(parse(['--steps', '50']), prev, 100, 'runs/x')).toThrow(/^--steps: the checkpoint in runs\/x is already at step 100/);
  });
});

describe('ProgressView', () => {
  const sink = () => {
    const out: string[] = [];
    return { out, w: { write: (s: string) => out.push(s), columns: 100 } };
  };
  test('json lines', () => {
    const { out, w } = sink();
    let t = 0;
    const v = new ProgressView('json', w, 0, () => t);
    t = 1000;
    v.update({ step: 10, steps: 100, loss: 0.5, elapsedMs: 1000 });
    t = 2000;
    v.update({ step: 30, steps: 100, loss: 0.25, elapsedMs: 2000 });
    const lines = out.map((l) => JSON.parse(l));
    expect(lines[1]).toEqual({ type: 'progress', step: 30, steps: 100, loss: 0.25, steps_per_s: 20, eta_s: 3.5, elapsed_s: 2 });
  });
  test('plain lines are rate-limited, the last step always printed', () => {
    const { out, w } = sink();
    let t = 0;
    const v = new ProgressView('plain', w, 0, () => t, 2000);
    for (let s = 1; s <= 10; s++) {
      t = s * 500;
      v.update({ step: s * 10, steps: 100, loss: 1 / s, elapsedMs: t });
    }
    expect(out.length).toBe(4);
    expect(out[out.length - 1]).toMatch(/^step 100\/100  loss 0\.10000  20\.0 steps\/s  ETA 0:00\n$/);
  });
  test('tty bar redraws in place and ends with a newline', () => {
    const { out, w } = sink();
    let t = 0;
    const v = new ProgressView('tty', w, 0, () => t);
    t = 1000;
    v.update({ step: 50, steps: 100, loss: 0.5, elapsedMs: 1000 });
    v.note('adapter: x');
    t = 2000;
    v.update({ step: 100, steps: 100, loss: 0.25, elapsedMs: 2000 });
    v.finish();
    const text = out.join('');
    expect(text).toContain('\r\x1b[2K');
    expect(text).toContain(' 50/100  50%  loss 0.50000');
    expect(text).toContain('adapter: x\n');
    expect(text.endsWith('\n')).toBe(true);
    expect(formatDuration(3725)).toBe('1:02:05');
  });
});

describe('pictures and report', () => {
  const pts = (n: number, f: (i: number) => [number, number]) => Float32Array.from({ length: 2 * n }, (_, k) => f(k >> 1)[k & 1]!);
  test('robust bounds ignore a far-off point', () => {
    const p = pts(1000, (i) => [Math.cos(i), Math.sin(i)]);
    p[0] = 1e6;
    const b = robustBounds([p], 100, 100);
    expect(b.xmax).toBeLessThan(5);
    expect(b.xmax - b.xmin).toBeCloseTo(b.ymax - b.ymin, 6);
  });
  test('PNGs decode, with sizes as drawn', async () => {
    const img = samplesImage({ data: pts(300, (i) => [i % 17, i % 5]), n: 300, dim: 2 }, { data: pts(300, (i) => [i % 7, i % 3]), n: 300, dim: 2 }, 200);
    const png = await pngOf(img);
    expect(decodePngSize(png)).toEqual({ width: 200, height: 200 });
    expect(readPngChunks(png).map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    const loss = lossImage([{ step: 5, loss: 3 }, { step: 50, loss: 0.1 }, { step: 100, loss: 0.01 }], 300, 120);
    expect([loss.width, loss.height]).toEqual([300, 120]);
  });
  test('renderPictures: trajectories for CFM, density for 2-D flows', async () => {
    const m = { data: pts(50, (i) => [i, -i]), n: 50, dim: 2 };
    const state = { step: 1, params: {}, adam: { t: 1, m: new Float32Array(0), v: new Float32Array(0) }, extra: {}, losses: [{ step: 1, loss: 1 }] };
    const cfm = await renderPictures({ samples: m, target: m, trajectories: [m.data, m.data], state });
    expect(Object.keys(cfm)).toEqual(['samples.png', 'trajectories.png', 'loss.png']);
    const flow = await renderPictures({ samples: m, target: m, density: { values: new Float32Array(16).map((_, i) => -i), gw: 4, gh: 4, bounds: [-1, 1, -2, 2] }, state });
    expect(Object.keys(flow)).toEqual(['samples.png', 'loss.png', 'density.png']);
    expect(decodePngSize(flow['density.png']!)).toEqual({ width: 280, height: 560 });
  });
  test('report.html is self-contained: inline images and styles, metrics, configuration, adapter', async () => {
    const result: RunResult = {
      type: 'result', method: 'otcfm', source: '8gaussians', target: 'moons', steps: 2000, batch: 256, seed: 0, runtime: 'browser',
      adapter: 'google swiftshader (software, browser)', w2: 0.5123, npe: 0.061, nll: null, loss: 1.25, ms_per_step: 7.5, dispatches_per_step: 9, out: 'runs/x',
    };
    const png = await pngOf(samplesImage({ data: pts(10, (i) => [i, i]), n: 10, dim: 2 }, { data: pts(10, (i) => [i, -i]), n: 10, dim: 2 }, 64));
    const html = renderReport({
      result,
      config: { method: 'otcfm', sigma: 0.1, hidden: [64, 64, 64], note: '<script>' },
      adapter: { runtime: 'browser', vendor: 'google', architecture: 'swiftshader', device: '', description: '', kind: 'software', features: ['subgroups'], limits: { maxBufferSize: 1 << 30 } },
      pictures: { 'samples.png': png, 'loss.png': png },
      wallSeconds: 15.2,
      startedAt: new Date('2025-01-01T00:00:00Z'),
      finishedAt: new Date('2025-01-01T00:00:15Z'),
      command: 'wgflow train',
      resumedFrom: null,
      lr: 1e-3,
      fusion: { asked: 'step', used: 'layer', fallback: "a width of 300 exceeds the mlp kernel's 256; the network runs layer by layer" },
    });
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('Step fusion');
    expect(html).toContain('asked step: a width of 300 exceeds the mlp kernel&#39;s 256');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(html.match(/src="data:image\/png;base64,/g)?.length).toBe(2);
    expect(html).toContain('OT-CFM');
    expect(html).toContain('0.5123');
    expect(html).toContain('0.512 ± 0.025'); // the torchcfm reference for this task
    expect(html).toContain('64, 64, 64');
    expect(html).toContain('&lt;script&gt;');
    expect(html).not.toContain('<script>');
    expect(html).toContain('swiftshader');
    expect(escapeHtml(`<a href="x">'&`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;');
    expect(referenceFor({ source: 'gaussian', target: 'moons', method: 'otcfm', steps: 15000 })?.w2).toBe('0.292');
  });
});

void MODEL_FLAGS;
