/**
 * Time and dispatches of one OT-CFM training step on Fashion-MNIST in each representation (issue 14
 * item 2): PCA latents (default 64 components) against the 784 pixels, the vector field an MLP with
 * the image default's hidden widths. Says the fusion level each ran at (784 inputs exceed the fused
 * kernels' width of 256, so the pixel step runs layer by layer).
 *
 *   node scripts/run-ts.mjs bench/fashion-step.ts [--steps 30] [--targets fashion-mnist,fashion-mnist@pixels] [--hidden 256,256,256] [--batch 256] [--method otcfm] [--fusion layer|step|mlp|ops]
 *
 * Evaluation is cut to the minimum (64 points, no trajectories, no NLL): this measures the step.
 */
import { adapterSummary, init, mlpFallbackReason } from '../engine';
import { imageData } from '../datasets/images';
import { cfmTrainer } from '../cfm/train';
import { runTraining } from '../train/driver';
import type { Method } from '../train/contract';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const steps = Number(arg('steps', '30'));
const targets = arg('targets', 'fashion-mnist,fashion-mnist@pixels').split(',');
const hidden = arg('hidden', '256,256,256');
const batch = Number(arg('batch', '256'));
const method = arg('method', 'otcfm') as Method;
// The image runs' default level (cli/images.ts): on SwiftShader the fused kernels at width 256 compile for minutes.
const fusion = arg('fusion', 'layer');

const backend = await init({ runtime: 'node' });
console.error(`adapter: ${adapterSummary(backend.adapter)}`);
for (const target of targets) {
  const t0 = performance.now();
  const img = imageData(target, 'train', (w) => console.error(w));
  const loadS = (performance.now() - t0) / 1000;
  const dims = [img.data.dim + 1, ...hidden.split(',').map(Number), img.data.dim];
  const fallback = fusion === 'step' ? mlpFallbackReason(dims) : null;
  const out = await runTraining(cfmTrainer, {
    method,
    source: 'gaussian',
    target: null,
    data: img.data,
    steps,
    batch,
    lr: 1e-3,
    seed: 0,
    options: { hidden, fusion, evalPoints: 64, solverSteps: 2, trajectoryPoints: 0, nllPoints: 0 },
  });
  const m = out.metrics;
  console.log(
    JSON.stringify({
      target: img.name,
      dim: img.data.dim,
      explained: img.pca ? +img.pca.explained.toFixed(4) : 1,
      load_s: +loadS.toFixed(2),
      steps,
      batch,
      hidden,
      fusion: fallback ? 'layer' : fusion,
      fallback,
      ms_per_step: +m.ms_per_step.toFixed(1),
      dispatches_per_step: m.dispatches_per_step,
    }),
  );
}
process.exit(0);
