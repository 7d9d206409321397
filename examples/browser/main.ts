/**
 * The page script of examples/browser/index.html: trains OT-CFM (8gaussians → moons) with wgflow on
 * the page's WebGPU device, writes a progress line, and every few hundred steps draws 1 000 samples
 * of the model so far on the canvas. Bundled with esbuild (`import … from 'wgflow'` resolves to the
 * installed package). `document.body.dataset.state` says where it is (CI waits for "done").
 */
import { resolvedConfig, sample, train, type DataMatrix, type TrainSpec } from 'wgflow';

const canvas = document.getElementById('samples') as HTMLCanvasElement;
const progress = document.getElementById('progress')!;
const steps = Number(new URLSearchParams(location.search).get('steps') ?? 2000);
const stop = new AbortController();
document.getElementById('stop')!.addEventListener('click', () => stop.abort());

/** Points in [-5, 5]² as dots on the canvas. */
function draw(points: DataMatrix): void {
  const g = canvas.getContext('2d')!;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = '#1f77b4';
  for (let i = 0; i < points.n; i++) {
    const x = ((points.data[2 * i]! + 5) / 10) * canvas.width;
    const y = (1 - (points.data[2 * i + 1]! + 5) / 10) * canvas.height;
    g.fillRect(x - 1, y - 1, 2, 2);
  }
}

async function main(): Promise<void> {
  document.body.dataset.state = 'training';
  const spec: TrainSpec = { method: 'otcfm', source: '8gaussians', target: 'moons', steps };
  const config = resolvedConfig(spec); // what sample() needs besides a state's parameters
  const result = await train({
    ...spec,
    signal: stop.signal,
    checkpointEvery: Math.max(1, Math.floor(steps / 10)),
    onProgress: (p) => (progress.textContent = `step ${p.step} / ${p.steps}, loss ${p.loss.toFixed(3)}`),
    // A checkpoint is the full state: draw the model it holds (training waits for this).
    onCheckpoint: async (state) => draw(await sample({ method: 'otcfm', config, params: state.params, step: state.step }, { n: 1000, solverSteps: 20 })),
  });
  draw(await sample(result.model, { n: 1000, solverSteps: 20 }));
  progress.textContent = `done: ${result.state.step} steps, W2 ${result.metrics.w2?.toFixed(3)}, ${result.metrics.ms_per_step.toFixed(1)} ms/step`;
  document.body.dataset.state = 'done';
}

main().catch((e: unknown) => {
  progress.textContent = `failed: ${(e as Error).message}`;
  document.body.dataset.state = 'failed';
});
