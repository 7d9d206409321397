/**
 * Flows training step at each fusion level (issue 10 item 4): RealNVP (8 affine couplings) and MAF
 * (10 MADE layers) in 2-D, conditioners [64, 64] ReLU, ActNorm in front, batch 256 — the step of
 * flows/train.ts (−mean log p on the tape, Adam, loss into the ring; one flush). Dispatches per step
 * from the engine counters; ms/step as the median over rounds of `steps` steps each (synced at the
 * ends), levels alternated round by round (layer, mlp, ops, layer, mlp, ops, …) on one adapter.
 * At 'mlp' (and 'step') each coupling / MAF layer is one fused `flowLayer` dispatch with the ActNorm
 * and the base folded in (flows/flow.ts); at 'layer' and 'ops' the layers run op by op.
 *
 *   node scripts/run-ts.mjs bench/flows-fusion.ts [--steps 20] [--rounds 3] [--levels ops,layer,mlp] [--models realnvp,maf] [--profile]
 *
 * `--profile` also prints, per model and level, one step's dispatches counted by kernel name (where
 * the dispatches go).
 */
import { adapterSummary, init, setFusion, type FusionLevel } from '../engine';
import { flowTrainer } from './engine-targets';

const args = process.argv.slice(2);
const flag = (k: string, d: string) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : d;
};
const steps = Number(flag('steps', '20'));
const rounds = Number(flag('rounds', '3'));
const levels = flag('levels', 'layer,mlp,ops').split(',') as FusionLevel[];
const models = flag('models', 'realnvp,maf').split(',');
const profile = args.includes('--profile');

const b = await init({ runtime: 'node' });
console.error(`adapter: ${adapterSummary(b.adapter)}`);

const median = (xs: number[]) => [...xs].sort((a, c) => a - c)[Math.floor(xs.length / 2)]!;
const rows: string[] = [];
for (const model of models) {
  const trainer = await flowTrainer(b, model); // one model for every level: the levels alternate on it
  const step = trainer.step;
  const times = new Map<FusionLevel, number[]>();
  const disp = new Map<FusionLevel, number>();
  for (const l of levels) {
    setFusion(l); // warm-up: compile this level's pipelines
    step();
    step();
    await b.sync();
    if (profile) {
      // One step's dispatches by kernel name (the name up to its shape suffix).
      const byName = new Map<string, number>();
      const orig = b.dispatch.bind(b);
      b.dispatch = (k, bufs, u) => {
        const n = k.spec.name.replace(/\[.*$/, '');
        byName.set(n, (byName.get(n) ?? 0) + 1);
        orig(k, bufs, u);
      };
      step();
      b.dispatch = orig;
      await b.sync();
      const list = [...byName].sort((x, y) => y[1] - x[1]).map(([n, c]) => `${n} ${c}`).join(', ');
      console.error(`${model} ${l} profile (${[...byName.values()].reduce((a, c) => a + c, 0)}): ${list}`);
    }
  }
  for (let r = 0; r < rounds; r++) {
    for (const l of levels) {
      setFusion(l);
      const d0 = b.counters.dispatches;
      const t0 = performance.now();
      for (let s = 0; s < steps; s++) step();
      await b.sync();
      const ms = (performance.now() - t0) / steps;
      disp.set(l, (b.counters.dispatches - d0) / steps);
      (times.get(l) ?? times.set(l, []).get(l)!).push(ms);
      console.error(`${model} ${l} round ${r}: ${ms.toFixed(1)} ms/step, ${disp.get(l)} dispatches/step`);
    }
  }
  const layerMs = times.has('layer') ? median(times.get('layer')!) : NaN;
  for (const l of levels) {
    const ms = median(times.get(l)!);
    rows.push(`| ${model} | ${l} | ${disp.get(l)} | ${ms.toFixed(1)} | ${(layerMs / ms).toFixed(2)}× |`);
  }
  setFusion('step');
  trainer.dispose();
}
console.log(`| model | fusion | dispatches/step | ms/step (median of ${rounds} × ${steps} steps) | layer ÷ this |\n|---|---|---|---|---|\n${rows.join('\n')}`);
