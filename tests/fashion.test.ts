/**
 * Issue 14: Fashion-MNIST as a named dataset of `wgflow train`, on a fixture made here (10 classes
 * of bars, tests/fixtures/fashion-fixture.ts) through WGFLOW_FASHION_MNIST_DIR, with a private cache
 * folder and a 10-step evaluator: the names and their errors (exit 2), the PCA cache (same basis
 * fitted or read), and short end-to-end runs in Node that write image grids and the classifier-based
 * metrics (generation, translation); then the same through the library (api/: train on an image
 * target, evaluateImages, imagePixels, translateImages), which must give the command line's configuration and
 * `images` block.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { imageDatasetName, isImageDataset, parseImageDataset } from '../datasets/image-names';
import { decodePngSize } from '../io/png';
import { imageGrid, trajectoryStrips } from '../cli/image-pictures';
import { evaluateImages, imagePixels, parseNpy, resolvedConfig, sample, train, translateImages, writeCheckpoint, type Model } from '../api';
import { imageData, loadImageSplit } from '../datasets/images';
import { writeFashionFixture } from './fixtures/fashion-fixture';

const ROOT = path.resolve(__dirname, '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'wgflow-fashion-'));
const dir = path.join(tmp, 'data');
const cache = path.join(tmp, 'cache');
const env = { ...process.env, WGFLOW_FASHION_MNIST_DIR: dir, WGFLOW_CACHE_DIR: cache, WGFLOW_EVALUATOR_STEPS: '10' };

beforeAll(() => writeFashionFixture(dir));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function wgflow(args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/wgflow.js'), ...args], { cwd: tmp, env, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('image dataset names', () => {
  test('parse to a canonical form (classes sorted, defaults left out)', () => {
    expect(parseImageDataset('fashion-mnist')).toEqual({ base: 'fashion-mnist', classes: null, latent: 64 });
    expect(parseImageDataset('fashion-mnist:9,7,7')).toEqual({ base: 'fashion-mnist', classes: [7, 9], latent: 64 });
    expect(parseImageDataset('fashion-mnist:3@pixels')).toEqual({ base: 'fashion-mnist', classes: [3], latent: 0 });
    expect(imageDatasetName(parseImageDataset('fashion-mnist:0,1,2,3,4,5,6,7,8,9@pca64')!)).toBe('fashion-mnist');
    expect(imageDatasetName(parseImageDataset('fashion-mnist:9,7@pca32')!)).toBe('fashion-mnist:7,9@pca32');
    expect(parseImageDataset('moons')).toBeNull();
    expect(isImageDataset('fashion-mnist:12')).toBe(false);
  });

  test.each([
    ['fashion-mnist:12', /"12" is not a class of fashion-mnist; accepted: .*0–9 \(0 T-shirt\/top, 1 Trouser/],
    ['fashion-mnist:', /"" is not a class/],
    ['fashion-mnist@pca0', /representation "pca0" is not accepted; accepted: @pcaK with K from 1 to 783/],
    ['fashion-mnist@jpeg', /representation "jpeg"/],
  ])('%s is refused naming the value and what is accepted', (name, re) => {
    expect(() => parseImageDataset(name)).toThrow(re);
  });
});

describe('pictures', () => {
  test('a grid and strips have the size their layout says, ink dark on light', () => {
    const px = new Float32Array(5 * 784).fill(-1);
    px.fill(1, 0, 28); // first row of the first image: full ink
    const g = imageGrid(px, 28, 2, 3, { scale: 2, gap: 2 });
    expect([g.width, g.height]).toEqual([2 + 3 * 58, 2 + 2 * 58]);
    expect(Array.from(g.rgba.subarray(4 * (2 * g.width + 2), 4 * (2 * g.width + 2) + 4))).toEqual([0, 0, 0, 255]);
    expect(g.rgba[4 * (10 * g.width + 10)]).toBe(255);
    const s = trajectoryStrips([px, px, px], 28, 4);
    expect(s.height).toBe(11 + 2 + 4 * 58);
    expect(s.width).toBe(2 + 3 * 58);
  });
});

describe('wgflow train --target fashion-mnist (fixture)', () => {
  test('bad --classes and mismatched sources exit 2 with a clear message', () => {
    const bad = wgflow(['train', '--runtime', 'node', '--target', 'fashion-mnist', '--classes', '7,11', '--steps', '2']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--classes: "11" is not a class of fashion-mnist; accepted: a comma-separated list of class numbers 0–9/);
    expect(bad.err).not.toMatch(/\n\s+at /);
    const twice = wgflow(['train', '--runtime', 'node', '--target', 'fashion-mnist:7', '--classes', '9', '--steps', '2']);
    expect(twice.code).toBe(2);
    expect(twice.err).toMatch(/already names its classes/);
    const toy = wgflow(['train', '--runtime', 'node', '--target', 'moons', '--classes', '1', '--steps', '2']);
    expect(toy.code).toBe(2);
    expect(toy.err).toMatch(/--classes: only image datasets have classes/);
    const src = wgflow(['train', '--runtime', 'node', '--source', 'fashion-mnist:7', '--target', 'moons', '--steps', '2']);
    expect(src.code).toBe(2);
    expect(src.err).toMatch(/an image source translates to an image target of the same dataset/);
    const flow = wgflow(['train', '--runtime', 'node', '--method', 'realnvp', '--target', 'fashion-mnist', '--steps', '2']);
    expect(flow.code).toBe(2);
    expect(flow.err).toMatch(/image datasets train with the flow-matching methods/);
  });

  test('generation: trains on PCA codes, writes an image grid and the Fréchet score; the PCA is cached', () => {
    const out = path.join(tmp, 'gen');
    const r = wgflow(['train', '--runtime', 'node', '--target', 'fashion-mnist@pca8', '--classes', '1,2,3', '--steps', '30', '--batch', '32', '--option', 'hidden=32,32', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const m = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(m.target).toBe('fashion-mnist:1,2,3@pca8');
    expect(m.source).toBe('gaussian');
    expect(m.config.dim).toBe(8);
    expect(m.config.fusion).toBe('layer');
    expect(m.fusion).toEqual({ asked: 'layer', used: 'layer', fallback: null }); // the step's level, in metrics.json
    expect(m.images.model_space).toBe('pca8');
    expect(m.images.explained_variance).toBeGreaterThan(0.5);
    expect(m.images.evaluator.steps).toBe(10);
    expect(m.images.generation.frechet).toBeGreaterThan(0);
    expect(m.images.generation.frechet_floor).toBeLessThan(m.images.generation.frechet);
    expect(m.images.generation.frechet_mean_term).toBeGreaterThanOrEqual(0);
    expect(m.images.generation.frechet_mean_term).toBeLessThan(m.images.generation.frechet);
    expect(m.images.generation.feature_spread).toBeGreaterThan(0);
    expect(m.images.generation.samples).toBe(1000);
    expect(m.images.generation.class_fractions.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 6);
    const png = readFileSync(path.join(out, 'samples.png'));
    expect(decodePngSize(png)).toEqual({ width: 2 + 12 * 58, height: 2 + 8 * 58 });
    const html = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toMatch(/Fréchet \(classifier\)/);
    expect(html).toMatch(/not Inception FID/);
    expect(html).toMatch(/Generated images/);
    // `wgflow sample` on the checkpoint alone gives pixels (the basis from the dataset's name).
    const smp = wgflow(['sample', '--checkpoint', path.join(out, 'model.safetensors'), '--n', '5', '--out', path.join(out, 'x.npy')]);
    expect(smp.code, smp.err).toBe(0);
    expect(readFileSync(path.join(out, 'x.npy')).subarray(0, 128).toString('latin1')).toMatch(/'shape': \(5, 784\)/);
    // `wgflow eval` on the checkpoint gives the run's own image metrics again (same seed, same numbers).
    const ev = wgflow(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--json']);
    expect(ev.code, ev.err).toBe(0);
    const evLine = JSON.parse(ev.out.trim().split('\n').pop()!);
    expect(evLine).toMatchObject({ type: 'eval', target: 'fashion-mnist:1,2,3@pca8', step: 30, seed: 0 });
    expect(evLine.images).toEqual(m.images);
    expect(m.images.evaluator.solver).toBe('rk4 20 steps');
    // Another solver (OT-CFM's straight paths are claimed at low NFE): its name in the result, other samples.
    const eu = wgflow(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--solver', 'euler', '--solver-steps', '2', '--json']);
    expect(eu.code, eu.err).toBe(0);
    const euLine = JSON.parse(eu.out.trim().split('\n').pop()!);
    expect(euLine.images.evaluator.solver).toBe('euler 2 steps');
    expect(euLine.images.generation.frechet).not.toBe(m.images.generation.frechet);
    const human = wgflow(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--solver', 'midpoint']);
    expect(human.code, human.err).toBe(0);
    expect(human.out).toMatch(/midpoint 20 steps/);
    for (const s of ['dopri5', 'sde']) {
      const no = wgflow(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--solver', s]);
      expect(no.code).toBe(2);
      expect(no.err).toMatch(/--solver/);
      expect(no.err).not.toMatch(/ at /); // no stack trace
    }
    // One PCA basis and one evaluator in the cache, used by the next run without fitting again.
    expect(readdirSync(cache).filter((f) => f.includes('-pca8-'))).toHaveLength(1);
    expect(readdirSync(cache).filter((f) => f.includes('-evaluator-s10-'))).toHaveLength(1);
  }, 240_000);

  test('translation: --source fashion-mnist:1 --target fashion-mnist:6 writes strips and the translation metrics', () => {
    const out = path.join(tmp, 'tr');
    const r = wgflow(['train', '--runtime', 'node', '--source', 'fashion-mnist:1@pca8', '--target', 'fashion-mnist:6@pca8', '--steps', '60', '--batch', '32', '--option', 'hidden=32,32', '--out', out]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).not.toMatch(/fitting/); // the basis of the previous test, from the cache
    const m = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    const t = m.images.translation;
    expect(t).toMatchObject({ source_class: 1, target_class: 6, images: 10 });
    expect(t.source_images_target_fraction).toBe(0);
    for (const k of ['target_class_fraction', 'mean_distance', 'random_pairing_distance']) expect(Number.isFinite(t[k])).toBe(true);
    expect(existsSync(path.join(out, 'trajectories.png'))).toBe(true);
    expect(decodePngSize(readFileSync(path.join(out, 'trajectories.png')))).toEqual({ width: 2 + 9 * 58, height: 11 + 2 + 10 * 58 });
    expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toMatch(/Translated → target class/);
    // `wgflow eval` prints the translation metrics of the checkpoint; W2 flags are refused by name.
    const ev = wgflow(['eval', '--checkpoint', path.join(out, 'model.safetensors')]);
    expect(ev.code, ev.err).toBe(0);
    expect(ev.out).toContain(`translated 1 → 6: ${(100 * t.target_class_fraction).toFixed(1)} % classified as 6`);
    expect(ev.out).toMatch(/mean pixel distance/);
    // `wgflow sample` translates the source class's test images (n × 784 pixels).
    const smp = wgflow(['sample', '--checkpoint', path.join(out, 'model.safetensors'), '--n', '3', '--out', path.join(out, 't.npy')]);
    expect(smp.code, smp.err).toBe(0);
    expect(smp.out).toMatch(/wrote 3 × 784 pixels .*: the first 3 test images of fashion-mnist:1@pca8 translated to fashion-mnist:6@pca8/);
    expect(readFileSync(path.join(out, 't.npy')).subarray(0, 128).toString('latin1')).toMatch(/'shape': \(3, 784\)/);
    const many = wgflow(['sample', '--checkpoint', path.join(out, 'model.safetensors'), '--n', '50', '--out', path.join(out, 't.npy')]);
    expect(many.code).toBe(2);
    expect(many.err).toMatch(/--n: 50 translations asked; the test split has 10 images/);
    const bad = wgflow(['eval', '--checkpoint', path.join(out, 'model.safetensors'), '--n', '100']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--n: an image model .* is evaluated with its own image metrics/);
    // The checkpoint alone names the data: --resume continues it.
    const more = wgflow(['train', '--runtime', 'node', '--out', out, '--resume', '--steps', '70']);
    expect(more.code, more.err).toBe(0);
  }, 240_000);
});

describe('the library on image datasets (api/, train/images.ts)', () => {
  const saved: Record<string, string | undefined> = {};
  beforeAll(() => {
    for (const k of ['WGFLOW_FASHION_MNIST_DIR', 'WGFLOW_CACHE_DIR', 'WGFLOW_EVALUATOR_STEPS'] as const) {
      saved[k] = process.env[k];
      process.env[k] = env[k];
    }
  });
  afterAll(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  test('bad image specs are RangeErrors naming the value and what is accepted, before any GPU work', async () => {
    await expect(train({ target: 'fashion-mnist:12', steps: 1 })).rejects.toThrow(/^target: dataset "fashion-mnist:12": "12" is not a class of fashion-mnist; accepted: /);
    await expect(train({ target: 'fashion-mnist@jpeg', steps: 1 })).rejects.toThrow(RangeError);
    await expect(train({ method: 'realnvp', target: 'fashion-mnist', steps: 1 })).rejects.toThrow(/^target fashion-mnist: image datasets train with the flow-matching methods otcfm, icfm, fm, sbcfm, vpcfm \(method is realnvp\)/);
    await expect(train({ method: 'sf2m', target: 'fashion-mnist', steps: 1 })).rejects.toThrow(/method is sf2m/);
    await expect(train({ source: 'fashion-mnist:7', target: 'moons', steps: 1 })).rejects.toThrow(/^source fashion-mnist:7: an image source translates to an image target of the same dataset/);
    await expect(train({ source: 'fashion-mnist:7@pca8', target: 'fashion-mnist:9', steps: 1 })).rejects.toThrow(/same dataset in the same model space/);
    await expect(train({ target: 'fashion-mnist', labels: { labels: new Uint8Array(1), numClasses: 2 }, steps: 1 })).rejects.toThrow(/^labels: the image target fashion-mnist brings its own rows and labels/);
    const toy: Model = { method: 'otcfm', config: { target: 'moons' }, params: {}, step: 0 };
    await expect(evaluateImages(toy)).rejects.toThrow(/^evaluateImages: the model was trained on "moons", not an image dataset; accepted: /);
    expect(() => imagePixels(toy, { data: new Float32Array(2), n: 1, dim: 2 })).toThrow(/^imagePixels: .* not an image dataset/);
  });

  test('in a page (no Node file access) an image target is refused saying why', async () => {
    const proc = process as unknown as { getBuiltinModule?: unknown };
    const had = proc.getBuiltinModule;
    proc.getBuiltinModule = undefined;
    let run: Promise<unknown>;
    try {
      run = train({ target: 'fashion-mnist', steps: 1 }); // refused synchronously, before any await
    } finally {
      proc.getBuiltinModule = had;
    }
    await expect(run).rejects.toThrow(/^"fashion-mnist": image datasets are read from files .* in Node only .* train\(\{ data, \.\.\. \}\)/);
  });

  test('train() on fashion-mnist gives the command line\'s run: same configuration, same images block; pixels of the right shape', async () => {
    const spec = { target: 'fashion-mnist:3,1,2@pca8', steps: 30, batch: 32, options: { hidden: '32,32' } };
    // The CLI run of the test above: wgflow train --target fashion-mnist@pca8 --classes 1,2,3 --steps 30 --batch 32 --option hidden=32,32.
    const cli = JSON.parse(readFileSync(path.join(tmp, 'gen', 'metrics.json'), 'utf8'));
    expect(resolvedConfig(spec)).toEqual(cli.config);
    const r = await train({ ...spec, runtime: 'node' });
    expect(r.trainConfig).toMatchObject({ method: 'otcfm', source: 'gaussian', target: 'fashion-mnist:1,2,3@pca8', options: { hidden: '32,32', fusion: 'layer', evalPoints: 512 } });
    expect(r.config).toEqual(cli.config);
    const notes: string[] = [];
    const ev = await evaluateImages(r.model, { onNote: (l) => notes.push(l) });
    expect(notes.join('\n')).toMatch(/judging the model's images with the evaluator \(10 steps/);
    // The same block metrics.json holds (same seed, same steps, same device kind: the same numbers).
    expect(JSON.parse(JSON.stringify(ev.metrics))).toEqual(cli.images);
    const g = ev.metrics.generation!;
    expect(Number.isFinite(g.frechet) && g.frechet > 0).toBe(true);
    expect(g.class_fractions).toHaveLength(10);
    const px = ev.pixels;
    expect(px.side).toBe(28);
    expect(px.samples!.length).toBe(1000 * 784);
    expect(px.perClass).toBeUndefined();
    let lo = Infinity, hi = -Infinity;
    for (const v of px.samples!) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(Number.isFinite(lo) && Number.isFinite(hi)).toBe(true);
    expect(lo).toBeGreaterThan(-3);
    expect(hi).toBeLessThan(3);
    // imagePixels: sample()'s rows as images; a label column stays last.
    const s = await sample(r.model, { n: 5, solverSteps: 4 });
    const img = imagePixels(r.model, s);
    expect([img.n, img.dim, img.data.length]).toEqual([5, 784, 5 * 784]);
    const withLabel = { data: new Float32Array(5 * 9), n: 5, dim: 9 };
    for (let i = 0; i < 5; i++) {
      withLabel.data.set(s.data.subarray(i * 8, i * 8 + 8), i * 9);
      withLabel.data[i * 9 + 8] = i;
    }
    // The library's checkpoint names its image dataset: `wgflow sample` on it gives the same pixels.
    const ck = path.join(tmp, 'api-gen.safetensors');
    writeCheckpoint(ck, r);
    const cliSample = wgflow(['sample', '--checkpoint', ck, '--n', '5', '--solver-steps', '4', '--seed', '0', '--out', path.join(tmp, 'api-x.npy')]);
    expect(cliSample.code, cliSample.err).toBe(0);
    const fromCli = parseNpy(readFileSync(path.join(tmp, 'api-x.npy')));
    expect([fromCli.n, fromCli.dim]).toEqual([5, 784]);
    expect(fromCli.data).toEqual(img.data);
    const lab = imagePixels(r.model, withLabel);
    expect(lab.dim).toBe(785);
    expect(Array.from({ length: 5 }, (_, i) => lab.data[i * 785 + 784])).toEqual([0, 1, 2, 3, 4]);
    expect(lab.data.subarray(785, 785 + 784)).toEqual(img.data.subarray(784, 2 * 784));
    // The PCA round trip keeps the mean: the mean of the training rows' pixels is the training images' mean.
    const all = imageData('fashion-mnist@pca8', 'train');
    const back = imagePixels({ ...r.model, config: { ...r.model.config, target: 'fashion-mnist@pca8' } }, all.data);
    const raw = loadImageSplit('fashion-mnist', 'train');
    let worst = 0;
    for (let j = 0; j < 784; j++) {
      let a = 0, b = 0;
      for (let i = 0; i < raw.n; i++) {
        a += back.data[i * 784 + j]!;
        b += raw.images[i * 784 + j]!;
      }
      worst = Math.max(worst, Math.abs(a - b) / raw.n);
    }
    expect(worst).toBeLessThan(1e-4);
    expect(() => imagePixels(r.model, { data: new Float32Array(7), n: 1, dim: 7 })).toThrow(/dim ≥ 8/);
    await expect(evaluateImages({ ...r.model, config: { ...r.model.config, dataName: 'fashion-mnist@pca16' } })).rejects.toThrow(/^model: dimension 8 is not that of fashion-mnist@pca16's model space \(16\)/);
    expect(() => imagePixels({ ...r.model, config: { ...r.model.config, dataName: 'fashion-mnist@pca16' } }, s)).toThrow(/a model of dimension 8 is not a model of fashion-mnist@pca16, whose model space has 16 dimensions/);
  }, 240_000);

  test('a conditional run (options.condition labels) gives per-class accuracy and per-class rows', async () => {
    const r = await train({ target: 'fashion-mnist:2,5@pca8', steps: 20, batch: 32, options: { condition: 'labels', hidden: '32,32' }, runtime: 'node' });
    expect(r.trainConfig).toMatchObject({ target: 'fashion-mnist:2,5@pca8', options: { condition: 'labels' } });
    const { metrics, pixels } = await evaluateImages(r.model);
    const g = metrics.generation!;
    expect(g.conditional_accuracy! >= 0 && g.conditional_accuracy! <= 1).toBe(true);
    expect(Object.keys(g.conditional_accuracy_per_class!).sort()).toEqual(['2', '5']);
    expect(pixels.perClass!.classes).toEqual([2, 5]);
    expect(pixels.perClass!.rows.map((x) => x.length)).toEqual([12 * 784, 12 * 784]);
    expect(Array.from(new Set(pixels.sampleLabels!)).sort()).toEqual([2, 5]);
    // Row j of class 5's grid is the j-th sample drawn for class 5.
    const fives = [...pixels.sampleLabels!.keys()].filter((i) => pixels.sampleLabels![i] === 5);
    expect(pixels.perClass!.rows[1]!.subarray(784, 2 * 784)).toEqual(pixels.samples!.subarray(fives[1]! * 784, (fives[1]! + 1) * 784));
  }, 240_000);

  test('a translation (source fashion-mnist:1, target fashion-mnist:6) gives the translation block, pairs and trajectory frames', async () => {
    const r = await train({ source: 'fashion-mnist:1@pca8', target: 'fashion-mnist:6@pca8', steps: 20, batch: 32, options: { hidden: '32,32' }, runtime: 'node' });
    const { metrics, pixels } = await evaluateImages(r.model);
    expect(metrics.translation).toMatchObject({ source_class: 1, target_class: 6, images: 10 });
    expect(metrics.generation).toBeUndefined();
    expect(pixels.sources!.length).toBe(10 * 784);
    expect(pixels.translations!.length).toBe(10 * 784);
    expect(pixels.times).toEqual([0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1]);
    expect(pixels.trajectory!.map((f) => f.length)).toEqual(new Array(9).fill(10 * 784));
    // The ODE starts at the sources and ends at the translations.
    expect(pixels.trajectory![0]).toEqual(pixels.sources);
    expect(pixels.trajectory![8]).toEqual(pixels.translations);
    // Another solver: named in the metrics; the same start, another end; a solver without fixed steps is refused.
    const eu = await evaluateImages(r.model, { solver: 'euler', solverSteps: 3 });
    expect(eu.metrics.evaluator.solver).toBe('euler 3 steps');
    expect(eu.pixels.trajectory![0]).toEqual(pixels.sources);
    expect(eu.pixels.translations).not.toEqual(pixels.translations);
    await expect(evaluateImages(r.model, { solver: 'dopri5' as 'rk4' })).rejects.toThrow(/^solver: "dopri5" is not accepted for image metrics; accepted: euler, midpoint, rk4/);
    await expect(evaluateImages(r.model, { solverSteps: 0 })).rejects.toThrow(/^solver steps: 0 is not accepted; accepted: an integer from 1 to 10000/);
    // translateImages: the same map on the first n source-class test images (rows independent of n).
    const tr = await translateImages(r.model, 4);
    expect(tr).toMatchObject({ n: 4, side: 28 });
    expect(tr.sources).toEqual(pixels.sources!.subarray(0, 4 * 784));
    for (let i = 0; i < 4 * 784; i++) expect(Math.abs(tr.translations[i]! - pixels.translations![i]!)).toBeLessThan(1e-5);
    await expect(translateImages(r.model, 11)).rejects.toThrow(/n: 11 translations asked; the test split has 10 images of fashion-mnist:1@pca8 \(accepted: 1 to 10\)/);
  }, 240_000);
});
