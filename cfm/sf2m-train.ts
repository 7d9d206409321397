/**
 * [SF]2M in the training driver and at sampling time (cfm/sf2m.ts for the method):
 *
 *  - `sf2mTrainer`: the CFM family's config (cfm/config.ts resolveConfig: σ default 1.0, exact OT
 *    by default, `ot: 'sinkhorn'` with reg 2σ²), the same per-step batches and pairing as every CFM
 *    method (cfm/train.ts stepBatch), the two-network step (cfm/sf2m-step.ts), evaluation of the
 *    flow network by the probability-flow ODE (cfm/train.ts evaluateModel: W2, NPE, NLL).
 *  - `sdeSolve`: Euler–Maruyama for dx = [v + s] dt + σ dW from t0 to t1 (kernels/sde.ts, `steps`
 *    steps, 10 per dispatch, noise from the Philox stream of `seed`), trajectories on request.
 *  - `sf2mSample` / `sf2mEvaluate`: the checkpoint adapters of train/methods.ts; solver 'sde' runs
 *    the SDE, any ODE solver the probability-flow ODE of the flow network (cfm/train.ts).
 */
import type { FamilyTrainer, TrainConfig, TrainingRun, TrainState } from '../train/contract';
import type { EvalOptions, EvalResult, ModelCheckpoint, SampleOptions, SampleResult } from '../train/methods';
import { affine, getBackend, noGrad, tensor, type Tensor } from '../engine';
import { Rng, seedKey } from '../engine/philox';
import { eulerMaruyamaKernel, sdeUniforms } from '../kernels/sde';
import { w2 } from './metrics';
import { readSolution, segmentPlan } from './ode';
import { Sf2mModel, sf2mShapes } from './sf2m';
import { Sf2mStepper } from './sf2m-step';
import { askedFusion, asEvaluation, cfmEvaluate, cfmRun, cfmSample, cfmTrainer, evaluateModel, sinkhornOf, sourceSampler, stepBatch, STREAM, targetSampler } from './train';
import { configFrom, type CfmConfig } from './config';

export interface SdeOptions {
  /** Euler–Maruyama steps over [t0, t1] (default 100). */
  steps?: number;
  t0?: number;
  t1?: number;
  /** Record the state at these times (ascending, within [t0, t1]). */
  times?: readonly number[];
  /** Philox seed of the noise. */
  seed?: number;
  /** Diffusion g (the bridge's σ). */
  g: number;
  stepsPerDispatch?: number;
}

/** Integrates x0 ([n, d], not modified) by Euler–Maruyama; returns the state at t1 and at `times` (caller owns). */
export function sdeSolve(model: Sf2mModel, x0: Tensor, o: SdeOptions): { x: Tensor; trajectory: Tensor[]; nfe: number } {
  const steps = o.steps ?? 100;
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`sde: steps must be a positive integer, got ${steps}`);
  if (!(o.g >= 0) || !Number.isFinite(o.g)) throw new RangeError(`sde: the diffusion g must be a finite non-negative number, got ${o.g}`);
  const t0 = o.t0 ?? 0;
  const t1 = o.t1 ?? 1;
  const times = o.times ?? [];
  for (let i = 0; i < times.length; i++) {
    if (!(times[i]! >= Math.min(t0, t1) && times[i]! <= Math.max(t0, t1)) || (i > 0 && (times[i]! - times[i - 1]!) * (t1 - t0) < 0)) throw new RangeError(`sde: times must be ordered within [${t0}, ${t1}]; got ${times[i]}`);
  }
  const n = x0.shape[0]!;
  if (x0.rank !== 2 || x0.shape[1] !== model.cfg.dim) throw new Error(`sde: x0 must be [n, ${model.cfg.dim}], got [${x0.shape.join(', ')}]`);
  const b = getBackend();
  const kernel = b.prepare(eulerMaruyamaKernel(model.flowLayout, model.scoreLayout, n));
  const copy = (t: Tensor) => noGrad(() => affine(t, 1, 0));
  const x = copy(x0);
  const trajectory: Tensor[] = times.length && times[0] === t0 ? [copy(x)] : [];
  const per = o.stepsPerDispatch ?? 10;
  const key = seedKey(o.seed ?? 0);
  let step0 = 0;
  for (const seg of segmentPlan(t0, t1, steps, times)) {
    const h = (seg.to - seg.from) / seg.steps;
    for (let s = 0; s < seg.steps; s += per) {
      const k = Math.min(per, seg.steps - s);
      b.dispatch(kernel, [model.params.flat.buffer, x.buffer], sdeUniforms({ t0: seg.from + s * h, dt: h, g: o.g, n, steps: k, key, step0 }));
      b.flush();
      step0 += k;
    }
    if (seg.record) trajectory.push(copy(x));
  }
  return { x, trajectory, nfe: 2 * step0 };
}

/** A model from a checkpoint's named parameters (both networks). */
function modelFrom(c: CfmConfig, params: TrainState['params']): Sf2mModel {
  const cfg = { dim: c.dim, hidden: c.hidden, activation: c.activation };
  const shapes = sf2mShapes(cfg);
  const flat = new Float32Array(shapes.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0));
  let off = 0;
  for (const s of shapes) {
    const p = params[s.name];
    const size = s.shape.reduce((x, y) => x * y, 1);
    if (!p || p.data.length !== size) throw new Error(`checkpoint: parameter "${s.name}" is missing or has ${p?.data.length ?? 0} values (need ${size} for shape [${s.shape}])`);
    flat.set(p.data, off);
    off += size;
  }
  return new Sf2mModel(cfg, flat);
}

async function prepare(cfg: TrainConfig, resolved: Record<string, unknown>, resume?: TrainState): Promise<TrainingRun> {
  const c = resolved as unknown as CfmConfig;
  const src = sourceSampler(c);
  const tgt = targetSampler(c, cfg.data);
  if (tgt.dim !== c.dim || src.dim !== c.dim) throw new RangeError(`source and target dimensions differ (${src.dim} vs ${tgt.dim})`);
  return cfmRun(c, new Sf2mModel({ dim: c.dim, hidden: c.hidden, activation: c.activation }, new Rng(c.seed, STREAM.init)), resume, {
    stepper: (model) =>
      new Sf2mStepper(model, {
        sigma: c.sigma,
        batch: c.batch,
        seed: c.seed,
        fusion: askedFusion(c),
        sinkhorn: sinkhornOf(c),
        adam: { lr: c.lr, weightDecay: c.weightDecay, emaDecay: c.ema ?? 0 },
      }),
    batch: (step) => stepBatch(c, step, src, tgt),
    divergenceAdvice: `Try a lower --lr (this run: ${c.lr}) or a larger --sigma (this run: ${c.sigma}; the score target −ε/λ(t) grows as 1/σ near t = 0 and 1)`,
    async evaluate(model) {
      const vf = await model.flowField();
      try {
        return asEvaluation(await evaluateModel(vf, c, { data: cfg.data }), c.dim);
      } finally {
        vf.dispose();
      }
    },
  });
}

/** [SF]2M for the training driver (train/registry.ts). */
export const sf2mTrainer: FamilyTrainer = {
  family: 'cfm',
  resolveConfig(cfg) {
    const c = cfmTrainer.resolveConfig(cfg);
    // Conditional generation (cfm/conditional.ts) feeds context columns to the vector field only.
    if (c.condition) throw new RangeError('option condition: sf2m trains unconditional models (its score network takes no context); accepted: none');
    return c;
  },
  prepare,
};

/** train/methods.ts MethodImpl.sample for sf2m: 'sde' by Euler–Maruyama, an ODE solver by the flow network. */
export async function sf2mSample(ckpt: ModelCheckpoint, opts: SampleOptions): Promise<SampleResult> {
  if (opts.solver !== 'sde') return cfmSample(ckpt, opts);
  const c = configFrom(ckpt.config);
  if (!Number.isInteger(opts.n) || opts.n < 1) throw new RangeError(`sample: n must be a positive integer, got ${opts.n}`);
  const model = modelFrom(c, ckpt.params);
  try {
    const x0 = tensor(sourceSampler(c).sample(opts.n, new Rng(opts.seed, STREAM.sample)), [opts.n, c.dim]);
    const tt = opts.trajectoryTimes ?? 0;
    const times = tt >= 2 ? Array.from({ length: tt }, (_, i) => i / (tt - 1)) : [];
    const sol = sdeSolve(model, x0, { steps: opts.solverSteps ?? 100, g: c.sigma, seed: opts.seed, times });
    const { x: samples, trajectory: trajectories } = await readSolution(sol);
    x0.dispose();
    return { samples: { data: samples, n: opts.n, dim: c.dim }, trajectories: trajectories.length ? trajectories : undefined, nfe: sol.nfe };
  } finally {
    model.dispose();
  }
}

/**
 * train/methods.ts MethodImpl.evaluate for sf2m: an ODE solver as every CFM model (W2, NPE, NLL of
 * the flow network); 'sde': W2 of SDE samples from the evaluation source stream against the
 * evaluation target stream (the same points as the ODE evaluation), no NPE or NLL (an SDE path
 * has no finite kinetic energy and no change-of-variables density).
 */
export async function sf2mEvaluate(ckpt: ModelCheckpoint, opts: EvalOptions): Promise<EvalResult> {
  if (opts.solver !== 'sde') return cfmEvaluate(ckpt, opts);
  const base = configFrom(ckpt.config);
  const c: CfmConfig = { ...base, target: opts.data ? null : (opts.target ?? base.target), source: opts.source !== undefined ? opts.source : base.source };
  if (!opts.data && !c.target) throw new RangeError('eval: the model was trained on user data; pass the data (or a target dataset name)');
  const n = opts.n;
  const x0 = sourceSampler(c).sample(n, new Rng(opts.seed, STREAM.evalSource));
  const xt = targetSampler(c, opts.data).sample(n, new Rng(opts.seed, STREAM.evalTarget));
  const model = modelFrom(c, ckpt.params);
  try {
    const x0t = tensor(x0, [n, c.dim]);
    const sol = sdeSolve(model, x0t, { steps: opts.solverSteps ?? 100, g: c.sigma, seed: opts.seed });
    const samples = await sol.x.data();
    sol.x.dispose();
    x0t.dispose();
    return { w2: w2(samples, xt, c.dim), npe: null, nll: null, nfe: sol.nfe };
  } finally {
    model.dispose();
  }
}
