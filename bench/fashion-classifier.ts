/**
 * Trains the evaluator of issue 14 (evaluate/classifier.ts) on Fashion-MNIST's training set and
 * prints its test accuracy, time per step, and the Fréchet distance between test-set features of
 * two halves of the test set (the floor of the FID-style score) and between the test set and the
 * training set.
 *
 *   node scripts/run-ts.mjs bench/fashion-classifier.ts [--steps 1500] [--batch 256] [--hidden 256,128] [--seed 0] [--json]
 */
import { adapterSummary, init } from '../engine';
import { loadFashionMnist } from '../datasets/fashion-mnist';
import { accuracy, classify, trainClassifier } from '../evaluate/classifier';
import { frechetDistance, gaussianStats } from '../evaluate/frechet';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const steps = Number(arg('steps', '1500'));
const batch = Number(arg('batch', '256'));
const hidden = arg('hidden', '256,128').split(',').map(Number);
const seed = Number(arg('seed', '0'));
const json = process.argv.includes('--json');

const backend = await init();
const train = loadFashionMnist({ split: 'train' });
const test = loadFashionMnist({ split: 'test' });
const t0 = performance.now();
const model = await trainClassifier(train.images, train.labels, { inputDim: 784, classes: 10, hidden, steps, batch, lr: 1e-3, seed }, {
  every: 100,
  onProgress: (p) => !json && console.error(`step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} (${((performance.now() - t0) / p.step).toFixed(1)} ms/step)`),
});
const msPerStep = (performance.now() - t0) / steps;
const testOut = await classify(model, test.images, test.n);
const trainOut = await classify(model, train.images.subarray(0, 10_000 * 784), 10_000);
const acc = accuracy(testOut.labels, test.labels);
const fd = testOut.featureDim;
const half = test.n / 2;
const floor = frechetDistance(gaussianStats(testOut.features.subarray(0, half * fd), half, fd), gaussianStats(testOut.features.subarray(half * fd), half, fd));
const trainVsTest = frechetDistance(gaussianStats(trainOut.features, 10_000, fd), gaussianStats(testOut.features, test.n, fd));
const result = { steps, batch, hidden, seed, test_accuracy: acc, ms_per_step: +msPerStep.toFixed(1), frechet_test_halves: +floor.toFixed(3), frechet_train10k_vs_test: +trainVsTest.toFixed(3), adapter: adapterSummary(backend.adapter) };
console.log(json ? JSON.stringify(result) : `test accuracy ${(100 * acc).toFixed(2)}%, ${msPerStep.toFixed(1)} ms/step; Fréchet (features ${fd}): test half vs half ${floor.toFixed(3)}, train 10k vs test ${trainVsTest.toFixed(3)}`);
model.dispose();
process.exit(0);
