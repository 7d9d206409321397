/**
 * Maximum-likelihood training of normalizing flows: the flows family of the training driver
 * (`flowTrainer`: config resolution, the step, evaluation; the loop, loss readback, guard,
 * checkpoints, abort and timing are train/driver.ts). The data (toy sets or a standardised user
 * matrix, split by the seed) is flows/data.ts; a trained flow on a checkpoint (sample, eval, NLL in
 * chunks) is flows/checkpoint.ts.
 *
 * A step (one flush, no readback): upload the batch, loss = −mean log p(x) on the tape, Adam (one
 * pack + one update dispatch), the loss into its slot of the GPU loss ring with the non-finite
 * guard (engine/loss-ring.ts: one dispatch). A data-dependent initialisation (ActNorm) runs once
 * before the first step on a batch of ≤ 2 048 rows.
 * Option `chunk` (default: off) evaluates a batch in chunks of that many rows inside one gradient
 * (loss = −Σ_chunks Σ log p / B, the same gradient): it was a workaround for workgroup-tree bias
 * reductions over > 128 rows, which were very slow on SwiftShader before kernels/reduce.ts went
 * serial for wide outputs; it doubles the dispatches, so it now only pays to bound memory.
 * Learning rate: cosine decay from cfg.lr to 0 over cfg.steps (options.schedule 'cosine', the
 * default) or constant. The batch of step s depends only on (seed, s), so a resumed run sees the
 * same batches as an uninterrupted one.
 *
 * Options (cfg.options): layers, hidden, activation, scaleBound, linear ('lu' | 'dense', glow),
 * base ('standard' | 'diag'), actnorm (true), contextDim, nsf's variant, bins, bound (flows/build.ts
 * ARCH_OPTIONS), schedule
 * ('cosine' | 'constant'), testSize (toy test set, 10 000), testFraction (file data, 0.1), grid
 * (density picture cells per side, 128), w2 (compute W2 against target samples, true), chunk (rows
 * per gradient chunk, off), condition ('none' | 'labels' | 'context': train/options.ts; the flow
 * then models p(x | c) with c a label's one-hot or the data's context rows, fed to every
 * conditioner as contextDim columns; evaluation reports NLL given the test rows' labels and the
 * per-label accuracy of samples drawn for the test labels, cfm/conditional-eval.ts). Unknown
 * options are an error naming the accepted ones.
 */
import { add, Adam, affine, getBackend, learningRate, LR_SCHEDULES, type LrSchedule, LossRing, mean, neg, NonFiniteError, scope, sum, tensor, valueAndGrad, type Tensor } from '../engine';
import { FLOW_METHODS, type DataMatrix, type Evaluation, type FamilyTrainer, type TrainConfig, type TrainingRun, type TrainState } from '../train/contract';
import { conditionCols, resolveCondition } from '../train/options';
import { conditionalMetrics } from '../cfm/conditional-eval';
import { wassersteinW2 } from '../cfm/metrics/w2';
import { ARCH_OPTIONS, buildFlow, resolveArch } from './build';
import { EVAL_ROWS, densityGrid, drawSamples, meanNll, type FlowRunConfig } from './checkpoint';
import { GPU_SAMPLE_SEED_OFFSET, logStdSum, prepareData, testRawOf, type Prepared } from './data';

function numOption(o: Record<string, unknown>, key: string, def: number, ok: (v: number) => boolean, accepted: string): number {
  if (o[key] === undefined) return def;
  const v = Number(o[key]);
  if (!Number.isFinite(v) || !ok(v)) throw new Error(`flow option ${key}: ${JSON.stringify(o[key])} is not accepted; accepted: ${accepted}`);
  return v;
}

/** Square bounds around the data with a 10 % margin. */
function boundsOf(m: DataMatrix): [number, number, number, number] {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < m.n; i++) {
    const x = m.data[2 * i]!, y = m.data[2 * i + 1]!;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const half = (Math.max(x1 - x0, y1 - y0, 1e-3) / 2) * 1.1;
  return [cx - half, cx + half, cy - half, cy + half];
}


/** Options of the flow trainer itself (the architecture's are flows/build.ts ARCH_OPTIONS). */
const TRAIN_OPTIONS = ['schedule', 'testSize', 'testFraction', 'grid', 'w2', 'chunk'] as const;

interface FlowTrainOptions {
  schedule: LrSchedule;
  testSize: number;
  testFraction: number;
  grid: number;
  w2: boolean;
  chunk: number;
}

function trainOptions(cfg: TrainConfig): FlowTrainOptions {
  const o = cfg.options ?? {};
  const accepted = [...TRAIN_OPTIONS, ...ARCH_OPTIONS, 'condition'];
  for (const k of Object.keys(o)) if (!(accepted as readonly string[]).includes(k)) throw new Error(`unknown flow option "${k}"; accepted: ${accepted.join(', ')}`);
  const schedule = (o.schedule ?? 'cosine') as LrSchedule;
  if (!LR_SCHEDULES.includes(schedule)) throw new Error(`flow option schedule: ${JSON.stringify(o.schedule)} is not accepted; accepted: ${LR_SCHEDULES.join(', ')}`);
  if (o.w2 !== undefined && ![true, false, 'true', 'false'].includes(o.w2 as string)) throw new Error(`flow option w2: ${JSON.stringify(o.w2)} is not accepted; accepted: true, false`);
  return {
    schedule,
    testSize: numOption(o, 'testSize', 10000, (v) => Number.isInteger(v) && v >= 1, 'a positive integer'),
    testFraction: numOption(o, 'testFraction', 0.1, (v) => v > 0 && v < 1, 'a number in (0, 1)'),
    grid: numOption(o, 'grid', 128, (v) => Number.isInteger(v) && v >= 2 && v <= 1024, 'an integer from 2 to 1024'),
    w2: o.w2 === undefined ? true : o.w2 === true || o.w2 === 'true',
    chunk: numOption(o, 'chunk', cfg.batch, (v) => Number.isInteger(v) && v >= 1, 'a positive integer'),
  };
}

/** The resolved run configuration (stored in checkpoints); `data` is the prepared data it was resolved with. */
function resolveFlow(cfg: TrainConfig): { config: FlowRunConfig; data: Prepared; opts: FlowTrainOptions } {
  if (!(FLOW_METHODS as readonly string[]).includes(cfg.method)) throw new Error(`flow training: method "${cfg.method}" is not a flow method`);
  const opts = trainOptions(cfg);
  const cond = resolveCondition(cfg);
  const data = prepareData(cfg, opts.testSize, opts.testFraction, cond);
  const { condition: _c, ...archOptions } = cfg.options ?? {};
  if (cond && archOptions.contextDim !== undefined && Number(archOptions.contextDim) !== conditionCols(cond)) throw new Error(`flow option contextDim: ${JSON.stringify(archOptions.contextDim)} is not accepted with condition = "${cond.kind}"; it is set to the condition's ${conditionCols(cond)} columns (leave it out)`);
  const arch = resolveArch(cfg.method, data.dim, cond ? { ...archOptions, contextDim: conditionCols(cond) } : archOptions, cfg.seed);
  const config: FlowRunConfig = {
    family: 'flow', method: arch.method, source: null, target: cfg.data ? null : cfg.target,
    data: cfg.data ? { n: cfg.data.n, dim: cfg.data.dim } : null, dim: data.dim,
    steps: cfg.steps, batch: cfg.batch, lr: cfg.lr, seed: cfg.seed, schedule: opts.schedule, testSize: opts.testSize, testFraction: opts.testFraction,
    arch, standardize: data.standardize, options: { ...(cfg.options ?? {}) },
    ...(cond ? { condition: cond } : {}),
  };
  return { config, data, opts };
}

async function prepare(cfg: TrainConfig, _resolved: Record<string, unknown>, resume?: TrainState): Promise<TrainingRun> {
  // Resolved again for the prepared data (the split and standardisation), which the config only summarises.
  const { config, data, opts } = resolveFlow(cfg);
  const arch = config.arch;
  const offset = logStdSum(data.standardize);
  const b = getBackend();
  const flow = buildFlow(arch);
  let adam: Adam | null = null;
  let ring: LossRing | null = null;
  try {
    const paramSet = flow.store.paramSet;
    if (!paramSet) throw new Error(`method ${arch.method}: the flow has no trainable parameters`);
    adam = new Adam(paramSet, { lr: cfg.lr });
    ring = new LossRing();
    if (resume) {
      flow.store.load(resume.params);
      adam.loadState(resume.adam);
    } else {
      const init = data.initRows();
      const x = tensor(init, [init.length / data.dim, data.dim]);
      const c = data.initContext ? tensor(data.initContext, [init.length / data.dim, flow.contextDim]) : undefined;
      await flow.initialize(x, c);
      x.dispose();
      c?.dispose();
    }
  } catch (e) {
    adam?.dispose();
    ring?.dispose();
    flow.dispose();
    throw e;
  }
  const params = flow.parameters;
  const paramSet = flow.store.paramSet!;
  const opt = adam;
  const lossRing = ring;
  const fused = flow.fusionReport();
  return {
    // Flows have no whole-step kernel: their 'step' is 'mlp' (flows/build.ts).
    fusion: { asked: arch.fusion === 'step' ? 'mlp' : (arch.fusion ?? 'mlp'), used: fused.fallback ? 'layer' : fused.level === 'step' ? 'mlp' : fused.level, fallback: fused.fallback },
    step(step) {
      const xb = data.batchAt(step, cfg.batch);
      const cb = data.contextAt(step, cfg.batch);
      const C = flow.contextDim;
      const lr = learningRate(opts.schedule, cfg.lr, step, cfg.steps);
      scope(() => {
        const xs: Tensor[] = [];
        const cs: (Tensor | undefined)[] = [];
        for (let r = 0; r < cfg.batch; r += opts.chunk) {
          const rows = Math.min(opts.chunk, cfg.batch - r);
          xs.push(tensor(xb.subarray(r * data.dim, (r + rows) * data.dim), [rows, data.dim]));
          cs.push(cb ? tensor(cb.subarray(r * C, (r + rows) * C), [rows, C]) : undefined);
        }
        const { value, grads } = valueAndGrad(() => {
          if (xs.length === 1) return neg(mean(flow.logProb(xs[0]!, cs[0])));
          let total: Tensor | null = null;
          for (const [i, x] of xs.entries()) {
            const s = sum(flow.logProb(x, cs[i]));
            total = total ? add(total, s) : s;
          }
          return affine(total!, -1 / cfg.batch);
        }, params);
        opt.step(grads, lr);
        lossRing.record(value, paramSet.flat, step);
      });
      b.flush();
    },
    async readLosses(from, to) {
      // The ring holds standardised-unit losses; report them in the data's units.
      const r = await lossRing.read(from, to);
      return { losses: offset === 0 ? r.losses : r.losses.map((v) => v + offset), firstBad: r.firstBad };
    },
    snapshot: async () => ({ params: await flow.store.read(), adam: await opt.state(), extra: { initialized: true } }),
    // What to try when training diverges (the affine couplings' scales are bounded by scaleBound).
    divergenceAdvice: `Try a lower --lr (this run: ${cfg.lr})${['realnvp', 'glow', 'maf'].includes(arch.method) ? ` or a smaller --option scaleBound=… (this run: ${arch.scaleBound})` : ''}`,
    async evaluate(): Promise<Evaluation> {
      const nll = (await meanNll(flow, data.test, EVAL_ROWS, data.testContext)) + offset;
      const nShow = 2048;
      // A conditional flow: samples for the first test rows' contexts (so as many per label as the test set has).
      const k0 = Math.min(nShow, data.test.n);
      const showCtx = data.testContext ? data.testContext.slice(0, k0 * flow.contextDim) : null;
      const samples = await drawSamples(flow, showCtx ? k0 : nShow, cfg.seed + GPU_SAMPLE_SEED_OFFSET, data.standardize, showCtx);
      const bad = samples.data.reduce((k, x) => k + (Number.isFinite(x) ? 0 : 1), 0);
      if (bad > 0) throw new NonFiniteError(`evaluation: ${bad} of ${samples.data.length} sample coordinates are NaN or infinite (the trained flow overflows). Try a lower --lr (this run: ${cfg.lr})`, cfg.steps, []);
      const target = data.targetSamples(nShow);
      let density: Evaluation['density'];
      // A conditional flow has a density per context: no single density picture.
      if (data.dim === 2 && !config.condition) {
        const bounds = boundsOf(target);
        density = { values: await densityGrid(flow, bounds, opts.grid, opts.grid, data.standardize), gw: opts.grid, gh: opts.grid, bounds };
      }
      let w2: number | null = null;
      if (opts.w2) {
        const k = Math.min(samples.n, target.n);
        w2 = wassersteinW2(samples.data.subarray(0, k * data.dim), target.data.subarray(0, k * data.dim), k, data.dim);
      }
      // Labels: the test rows (original units) with their labels against the samples drawn for them.
      const cm = data.testLabels && config.condition?.kind === 'labels' ? conditionalMetrics(samples.data, data.testLabels.subarray(0, samples.n), testRawOf(data, samples.n), data.testLabels.subarray(0, samples.n), config.condition.numClasses, data.dim, 1) : null;
      return { metrics: { w2, npe: null, nll, ...(cm ? { conditional: cm } : {}) }, samples, target, density };
    },
    dispose() {
      opt.dispose();
      lossRing.dispose();
      flow.dispose();
    },
  };
}

/** The normalizing-flow family for the training driver (train/driver.ts). */
export const flowTrainer: FamilyTrainer = {
  family: 'flow',
  resolveConfig: (cfg) => resolveFlow(cfg).config as unknown as Record<string, unknown>,
  prepare,
};
