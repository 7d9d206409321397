/**
 * Image quality against solver cost (issue 14): the Fréchet distance of trained Fashion-MNIST
 * models (`wgflow train --target fashion-mnist …` checkpoints) when their ODE is solved with fewer
 * or more function evaluations. OT-CFM's claim over I-CFM (Tong et al. 2024, "Improving and
 * generalizing flow-based generative models with minibatch optimal transport", §5) is straighter
 * paths, so better samples at low NFE; at a high-order solver's NFE both fields are integrated
 * almost exactly and the comparison is of the fields alone.
 *
 *   node scripts/run-ts.mjs bench/fashion-nfe.ts A/model.safetensors B/model.safetensors … \
 *     [--solvers euler:1,euler:2,euler:5,euler:10,euler:20,rk4:20] [--seed 0] [--weights average|raw] [--json] [--png FILE [--png-cols 8]]
 *
 * Prints one row per solver, one column per checkpoint (named by method, σ, learning rate, training seed and step),
 * and for runs that differ only in the seed, their mean ± sample std. Each cell draws
 * the same 1 000 starting points (--seed) and is judged by the same cached evaluator as
 * `wgflow eval`, so a cell equals `wgflow eval --checkpoint F --solver S --solver-steps K`.
 * --png draws a row per solver (labelled with its NFE) holding the first --png-cols samples of each
 * checkpoint in the order given, a blank column between checkpoints: the same starting points, so
 * the same column shows where each model takes one draw of noise at each cost.
 * --weights: a run trained with option ema is judged with its moving average of the weights (as
 * `wgflow sample`/`eval` do; default `average`), or with its last weights (`raw`) — the same
 * checkpoint both ways measures what the average buys. Names end in "avg" when the average is used.
 */
import { evaluateImages, modelWeights, readCheckpoint, type Model } from '../api';
import { IMAGE_SOLVERS, type ImageSolver } from '../train/images';
import { imageGrid } from '../cli/image-pictures';
import { pngOf } from '../cli/pictures';
import { writeFileAtomic } from '../io/atomic';

const argv = process.argv.slice(2);
function flag(name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name}: needs a value`);
  argv.splice(i, 2);
  return v;
}
const json = argv.includes('--json');
if (json) argv.splice(argv.indexOf('--json'), 1);
const seed = Number(flag('seed', '0'));
const png = flag('png', '');
const pngCols = Number(flag('png-cols', '8'));
const weights = flag('weights', 'average');
if (weights !== 'average' && weights !== 'raw') throw new Error(`--weights: "${weights}" is not accepted; accepted: average, raw`);
const solvers: ImageSolver[] = flag('solvers', 'euler:1,euler:2,euler:5,euler:10,euler:20,rk4:20').split(',').map((s) => {
  const [solver, steps] = s.split(':');
  if (!(IMAGE_SOLVERS as readonly string[]).includes(solver!) || !(Number(steps) >= 1)) throw new Error(`--solvers: "${s}" is not accepted; accepted: SOLVER:STEPS with SOLVER one of ${IMAGE_SOLVERS.join(', ')}`);
  return { solver: solver as ImageSolver['solver'], steps: Number(steps) };
});
const files = argv.filter((a) => !a.startsWith('--'));
if (files.length === 0) throw new Error('give one or more model.safetensors of image runs');

/** Vector-field evaluations per step of each solver. */
const STAGES: Record<ImageSolver['solver'], number> = { euler: 1, midpoint: 2, rk4: 4 };

const models = files.map((f) => {
  const ck = readCheckpoint(f);
  const avg = weights === 'average' && !!ck.state.adam.ema;
  const model: Model = { method: ck.trainConfig.method as Model['method'], config: ck.config, params: avg ? modelWeights(ck.state) : ck.state.params, step: ck.state.step };
  // Runs that differ only in the seed form a group (mean ± std per solver).
  const group = `${model.method} σ${model.config.sigma} lr${model.config.lr} @${model.step}${avg ? ' avg' : ''}`;
  return { file: f, model, group, name: `${model.method} σ${model.config.sigma} lr${model.config.lr} s${ck.trainConfig.seed} @${model.step}${avg ? ' avg' : ''}` };
});

const table: number[][] = solvers.map(() => []);
/** The first pngCols samples of each (solver, checkpoint). */
const shown: Float32Array[][] = solvers.map(() => []);
let side = 0;
for (const [j, m] of models.entries()) {
  for (const [i, s] of solvers.entries()) {
    const t0 = performance.now();
    const { metrics, pixels } = await evaluateImages(m.model, { seed, solver: s.solver, solverSteps: s.steps });
    const frechet = metrics.generation?.frechet;
    if (frechet === undefined) throw new Error(`${m.file}: not a generation model (a translation has no Fréchet score)`);
    table[i]![j] = frechet;
    side = pixels.side;
    shown[i]![j] = pixels.samples!.slice(0, pngCols * side * side);
    const line = { type: 'cell', checkpoint: m.file, name: m.name, solver: s.solver, steps: s.steps, nfe: s.steps * STAGES[s.solver], frechet, floor: metrics.generation!.frechet_floor, mean_term: +metrics.generation!.frechet_mean_term.toFixed(3), spread: +metrics.generation!.feature_spread.toFixed(3), seconds: +((performance.now() - t0) / 1000).toFixed(1) };
    if (json) console.log(JSON.stringify(line));
    else console.error(`${m.name}, ${s.solver} ${s.steps}: Fréchet ${frechet.toFixed(2)} (mean term ${line.mean_term}, spread ${line.spread}; ${line.seconds} s)`);
  }
}

if (!json) {
  const names = [...new Set(models.map((m) => m.group))];
  const groups = names.map((name) => ({ name, cols: models.flatMap((m, j) => (m.group === name ? [j] : [])) })).filter((g) => g.cols.length > 1);
  const stat = (xs: number[]) => {
    const mu = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mu) ** 2, 0) / (xs.length - 1));
    return `${mu.toFixed(2)} ± ${sd.toFixed(2)}`;
  };
  const head = ['solver', 'NFE', ...models.map((m) => m.name), ...groups.map((g) => `${g.name} (${g.cols.length} seeds)`)];
  console.log(`| ${head.join(' | ')} |`);
  console.log(`|${head.map(() => '---').join('|')}|`);
  for (const [i, s] of solvers.entries()) {
    const cells = [`${s.solver} ${s.steps}`, String(s.steps * STAGES[s.solver]), ...table[i]!.map((v) => v.toFixed(2)), ...groups.map((g) => stat(g.cols.map((j) => table[i]![j]!)))];
    console.log(`| ${cells.join(' | ')} |`);
  }
}

if (png) {
  const D = side * side;
  const cols = models.length * (pngCols + 1) - 1;
  const px = new Float32Array(solvers.length * cols * D).fill(-1);
  for (let i = 0; i < solvers.length; i++) {
    for (let j = 0; j < models.length; j++) px.set(shown[i]![j]!, (i * cols + j * (pngCols + 1)) * D);
  }
  const labels = solvers.map((s) => String(s.steps * STAGES[s.solver]));
  writeFileAtomic(png, await pngOf(imageGrid(px, side, solvers.length, cols, { rowLabels: labels })));
  console.error(`wrote ${png}: a row per solver (NFE ${labels.join(', ')}), ${pngCols} samples of ${models.map((m) => m.name).join(' | ')}`);
}
