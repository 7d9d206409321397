// Train OT-CFM from 8 gaussians to two moons in Node, sample from it, save a checkpoint.
// Run: node --experimental-strip-types train.ts (Node ≥ 22.6), or bundle it (esbuild, tsx).
import { mkdirSync } from 'node:fs';
import { train, sample, writeCheckpoint } from 'wgflow';

const stop = new AbortController();
process.once('SIGINT', () => stop.abort()); // Ctrl-C: stop after the current step

const result = await train({
  method: 'otcfm',
  source: '8gaussians',
  target: 'moons',
  steps: 300,
  batch: 256,
  seed: 0,
  signal: stop.signal,
  onProgress: (p) => console.log(`step ${p.step}/${p.steps}  loss ${p.loss.toFixed(3)}`),
});
console.log('W2', result.metrics.w2, 'NPE', result.metrics.npe, 'ms/step', result.metrics.ms_per_step);

const points = await sample(result.model, { n: 1000 }); // 1000 × 2, row-major Float32Array
console.log('first sample', points.data[0], points.data[1]);

mkdirSync('runs/library-example', { recursive: true });
writeCheckpoint('runs/library-example/model.safetensors', result); // `wgflow sample --checkpoint …` reads it
