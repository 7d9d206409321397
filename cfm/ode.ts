/**
 * ODE solvers for dx/dt = v_θ(x, t) on a batch: Euler, midpoint and RK4 with fixed steps, each
 * either fused (kernels/ode.ts: the whole MLP and all stages of a step inside one kernel, several
 * steps per dispatch) or op-by-op (engine ops: one fill + concat + one fused `linear` per layer per
 * stage, plus the stage combinations); and dopri5 (Dormand–Prince 5(4), adaptive, op-by-op, one
 * step size for the batch with torchdiffeq's RMS error norm). Trajectories can be recorded at
 * requested times; NFE (batch evaluations of v) is counted. The path energy ∫ E‖v‖² dt (for NPE)
 * is accumulated per sample with the solver's own quadrature weights.
 *
 * A conditional field (cfm/conditional.ts) takes its context rows [n, c] (constant along each
 * trajectory) and a classifier-free guidance scale w (Ho & Salimans 2022): the field integrated is
 * v(x, t, ∅) + w·(v(x, t, c) − v(x, t, ∅)), ∅ = zeros; w = 1 (default) is v(x, t, c) alone.
 */
import { abs, add, affine, div, getBackend, keep, maximum, mul, noGrad, scope, sqrt, square, sub, sum, withFusion, type FusionLevel, type Tensor, zeros } from '../engine';
import { fixedStepKernel, odeUniforms, TABLEAUX, type FixedMethod } from '../kernels/ode';
import type { VectorField } from './mlp';

export type Solver = FixedMethod | 'dopri5';
export const SOLVERS: readonly Solver[] = ['rk4', 'euler', 'midpoint', 'dopri5'];

export interface SolveOptions {
  solver?: Solver;
  /** Fixed-step solvers: steps over [t0, t1] (default 100). */
  steps?: number;
  t0?: number;
  t1?: number;
  /** Record the state at these times (ascending between t0 and t1, inclusive). */
  times?: readonly number[];
  /**
   * The fusion level (engine/config.ts): 'step' (default) = the fused solver kernel, several steps
   * per dispatch; 'mlp', 'layer', 'ops' = step by step on engine ops with the network at that level.
   * dopri5 is always op-by-op. `path` is the older switch: 'fused' = 'step', 'ops' = 'layer'.
   */
  fusion?: FusionLevel;
  path?: 'fused' | 'ops';
  /** Accumulate ∫‖v‖² dt per sample (returned as `energy`, shape [n]). */
  energy?: boolean;
  /** Fused path: steps per dispatch (default 10) and samples per thread (default 8). */
  stepsPerDispatch?: number;
  samplesPerThread?: number;
  /** dopri5 tolerances (torchdyn / torchdiffeq-style mixed norm), defaults 1e-5 / 1e-5. */
  rtol?: number;
  atol?: number;
  /** dopri5: give up after this many steps (default 10 000). */
  maxSteps?: number;
  /** A conditional field's context rows [n, c] (required exactly when the field has context columns). */
  context?: Tensor;
  /** Classifier-free guidance scale w (default 1; see the header). */
  guidance?: number;
}

export interface SolveResult {
  /** State at t1 (caller owns). */
  x: Tensor;
  /** States at `times` (caller owns), when requested. */
  trajectory: Tensor[];
  /** Batch evaluations of v. */
  nfe: number;
  /** ∫‖v(x(t), t)‖² dt per sample, when requested (caller owns). */
  energy: Tensor | null;
  /** dopri5: accepted and rejected steps. */
  accepted?: number;
  rejected?: number;
}

function checkTimes(times: readonly number[], t0: number, t1: number): void {
  const dir = Math.sign(t1 - t0) || 1;
  for (let i = 0; i < times.length; i++) {
    const t = times[i]!;
    if (!Number.isFinite(t) || (t - t0) * dir < -1e-12 || (t1 - t) * dir < -1e-12) throw new RangeError(`odeSolve: time ${t} is outside [${t0}, ${t1}]`);
    if (i > 0 && (t - times[i - 1]!) * dir < 0) throw new RangeError('odeSolve: times must be ordered from t0 to t1');
  }
}

/**
 * Fixed-step grid with the requested times on it: the interval is split into segments at the
 * requested times and each segment gets ⌈steps·|segment|/|t1−t0|⌉ equal steps.
 */
export function segmentPlan(t0: number, t1: number, steps: number, times: readonly number[]): { from: number; to: number; steps: number; record: boolean }[] {
  const cuts = [...times.filter((t) => t !== t0 && t !== t1)];
  const pts = [t0, ...cuts, t1];
  const out: { from: number; to: number; steps: number; record: boolean }[] = [];
  for (let i = 0; i + 1 < pts.length; i++) {
    const from = pts[i]!, to = pts[i + 1]!;
    if (from === to) continue;
    out.push({ from, to, steps: Math.max(1, Math.ceil((steps * Math.abs(to - from)) / Math.abs(t1 - t0) - 1e-9)), record: i + 1 < pts.length - 1 || times.includes(t1) });
  }
  return out;
}

const copy = (x: Tensor): Tensor => noGrad(() => affine(x, 1, 0));

/** Integrates x0 ([n, d]) from t0 to t1. x0 is not modified. */
export async function odeSolve(vf: VectorField, x0: Tensor, opts: SolveOptions = {}): Promise<SolveResult> {
  const solver = opts.solver ?? 'rk4';
  if (!SOLVERS.includes(solver)) throw new RangeError(`odeSolve: unknown solver "${String(solver)}"; accepted: ${SOLVERS.join(', ')}`);
  const t0 = opts.t0 ?? 0;
  const t1 = opts.t1 ?? 1;
  const times = opts.times ?? [];
  checkTimes(times, t0, t1);
  if (x0.rank !== 2 || x0.shape[1] !== vf.cfg.dim) throw new Error(`odeSolve: x0 must be [n, ${vf.cfg.dim}], got [${x0.shape.join(', ')}]`);
  const c = vf.cfg.context ?? 0;
  if (c > 0 && (!opts.context || opts.context.rank !== 2 || opts.context.shape[0] !== x0.shape[0] || opts.context.shape[1] !== c)) throw new Error(`odeSolve: the conditional field needs context rows [${x0.shape[0]}, ${c}], got ${opts.context ? `[${opts.context.shape.join(', ')}]` : 'none'}`);
  if (opts.context && opts.context.offset !== 0) throw new Error('odeSolve: context must be its own tensor (not a view at an offset)');
  if (c === 0 && (opts.context || (opts.guidance ?? 1) !== 1)) throw new Error('odeSolve: an unconditional field takes no context or guidance');
  if (opts.guidance !== undefined && !Number.isFinite(opts.guidance)) throw new RangeError(`odeSolve: guidance ${opts.guidance} is not a finite number`);
  if (solver === 'dopri5') return dopri5(vf, x0, t0, t1, times, opts);
  const steps = opts.steps ?? 100;
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`odeSolve: steps must be a positive integer, got ${steps}`);
  const level: FusionLevel = opts.fusion ?? ((opts.path ?? 'fused') === 'fused' ? 'step' : 'layer');
  if (level === 'step') return fixedFused(vf, x0, solver, t0, t1, steps, times, opts);
  return withFusion(level, () => fixedOps(vf, x0, solver, t0, t1, steps, times, opts));
}

/**
 * A solve's end state and trajectory read back to the CPU (one readback each), the tensors disposed:
 * the solution of odeSolve, or of the SDE sampler (cfm/sf2m-train.ts), taken over by the caller.
 */
export async function readSolution(sol: { x: Tensor; trajectory: Tensor[] }): Promise<{ x: Float32Array; trajectory: Float32Array[] }> {
  const x = await sol.x.data();
  const trajectory: Float32Array[] = [];
  for (const t of sol.trajectory) {
    trajectory.push(await t.data());
    t.dispose();
  }
  sol.x.dispose();
  return { x, trajectory };
}

/** The (guided) field at (x, t): vf.at, with the context and guidance of `opts` (see the header). */
export function fieldAt(vf: VectorField, x: Tensor, t: number, opts: Pick<SolveOptions, 'context' | 'guidance'>): Tensor {
  if (!opts.context) return vf.at(x, t);
  const w = opts.guidance ?? 1;
  if (w === 1) return vf.at(x, t, opts.context);
  return scope(() => {
    const vc = vf.at(x, t, opts.context);
    const vn = vf.at(x, t, zeros(opts.context!.shape));
    return add(vn, mul(sub(vc, vn), w));
  });
}

function recordInitial(x: Tensor, times: readonly number[], t0: number, trajectory: Tensor[]): void {
  if (times.length && times[0] === t0) trajectory.push(copy(x));
}

function fixedFused(vf: VectorField, x0: Tensor, method: FixedMethod, t0: number, t1: number, steps: number, times: readonly number[], opts: SolveOptions): SolveResult {
  const b = getBackend();
  const n = x0.shape[0]!;
  const x = copy(x0);
  const energy = opts.energy ? zeros([n]) : null;
  const kernel = b.prepare(fixedStepKernel(vf.layout, n, method, { energy: !!opts.energy, samplesPerThread: opts.samplesPerThread, guidance: opts.guidance }));
  const per = opts.stepsPerDispatch ?? 10;
  const trajectory: Tensor[] = [];
  recordInitial(x, times, t0, trajectory);
  let nfe = 0;
  for (const seg of segmentPlan(t0, t1, steps, times)) {
    const h = (seg.to - seg.from) / seg.steps;
    for (let s = 0; s < seg.steps; s += per) {
      const k = Math.min(per, seg.steps - s);
      const bufs = [vf.params.flat.buffer, x.buffer];
      if (energy) bufs.push(energy.buffer);
      if (opts.context) bufs.push(opts.context.buffer);
      b.dispatch(kernel, bufs, odeUniforms(seg.from + s * h, h, k, n));
      b.flush();
      nfe += k * TABLEAUX[method].c.length;
    }
    if (seg.record) trajectory.push(copy(x));
  }
  return { x, trajectory, nfe, energy };
}

function fixedOps(vf: VectorField, x0: Tensor, method: FixedMethod, t0: number, t1: number, steps: number, times: readonly number[], opts: SolveOptions): SolveResult {
  const tab = TABLEAUX[method];
  const n = x0.shape[0]!;
  let x = copy(x0);
  let energy: Tensor | null = opts.energy ? zeros([n]) : null;
  const trajectory: Tensor[] = [];
  recordInitial(x, times, t0, trajectory);
  let nfe = 0;
  for (const seg of segmentPlan(t0, t1, steps, times)) {
    const h = (seg.to - seg.from) / seg.steps;
    for (let s = 0; s < seg.steps; s++) {
      const t = seg.from + s * h;
      const [nx, ne] = noGrad(() =>
        scope(() => {
          const ks: Tensor[] = [];
          let acc: Tensor | null = null;
          let en: Tensor | null = null;
          for (let st = 0; st < tab.c.length; st++) {
            let xs = x;
            tab.a[st]!.forEach((a, r) => {
              if (a !== 0) xs = add(xs, mul(ks[r]!, a * h));
            });
            const k = fieldAt(vf, xs, t + tab.c[st]! * h, opts);
            ks.push(k);
            if (tab.b[st] !== 0) {
              const term = mul(k, tab.b[st]!);
              acc = acc ? add(acc, term) : term;
              if (energy) {
                const e2 = mul(sum(square(k), 1), tab.b[st]! * Math.abs(h));
                en = en ? add(en, e2) : e2;
              }
            }
          }
          const xn = add(x, mul(acc!, h));
          return [xn, energy ? add(energy, en!) : null] as const;
        }),
      );
      x.dispose();
      x = nx;
      if (energy) {
        energy.dispose();
        energy = ne;
      }
      getBackend().flush();
      nfe += tab.c.length;
    }
    if (seg.record) trajectory.push(copy(x));
  }
  return { x, trajectory, nfe, energy };
}

// ---- dopri5 ----

/** Dormand–Prince 5(4) tableau (as in torchdiffeq's dopri5). */
const DP = {
  c: [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1],
  a: [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
  ],
  b: [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
  bErr: [35 / 384 - 5179 / 57600, 0, 500 / 1113 - 7571 / 16695, 125 / 192 - 393 / 640, -2187 / 6784 + 92097 / 339200, 11 / 84 - 187 / 2100, -1 / 40],
};

async function readScalar(t: Tensor): Promise<number> {
  const v = await t.item();
  t.dispose();
  return v;
}

/** RMS over all elements of err / (atol + rtol·max(|y0|, |y1|)) (torchdiffeq's mixed norm). */
function errRatio(err: Tensor, y0: Tensor, y1: Tensor, rtol: number, atol: number): Tensor {
  return noGrad(() =>
    scope(() => {
      const scale = add(mul(maximum(abs(y0), abs(y1)), rtol), atol);
      return sqrt(mul(sum(square(div(err, scale))), 1 / err.size));
    }),
  );
}

async function dopri5(vf: VectorField, x0: Tensor, t0: number, t1: number, times: readonly number[], opts: SolveOptions): Promise<SolveResult> {
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 1e-5;
  const maxSteps = opts.maxSteps ?? 10_000;
  const n = x0.shape[0]!;
  const dir = Math.sign(t1 - t0) || 1;
  let x = copy(x0);
  let energy: Tensor | null = opts.energy ? zeros([n]) : null;
  const trajectory: Tensor[] = [];
  recordInitial(x, times, t0, trajectory);
  const targets = [...times.filter((t) => (t - t0) * dir > 0 && t !== t1), t1];
  let nfe = 0;
  const f = (y: Tensor, t: number): Tensor => {
    nfe++;
    return noGrad(() => fieldAt(vf, y, t, opts));
  };
  let k1 = keep(f(x, t0));
  // Initial step (Hairer, Nørsett & Wanner, II.4): h0 = 0.01·‖y0‖/‖f0‖, refined with one Euler probe.
  const norm = (v: Tensor, y: Tensor) => noGrad(() => scope(() => sqrt(mul(sum(square(div(v, add(mul(abs(y), rtol), atol)))), 1 / v.size))));
  const d0 = await readScalar(norm(x, x));
  const d1 = await readScalar(norm(k1, x));
  let h = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * (d0 / d1);
  {
    const y1 = noGrad(() => add(x, mul(k1, h * dir)));
    const f1 = f(y1, t0 + h * dir);
    const d2 = (await readScalar(noGrad(() => scope(() => norm(sub(f1, k1), x))))) / h;
    y1.dispose();
    f1.dispose();
    const h1 = Math.max(d1, d2) <= 1e-15 ? Math.max(1e-6, h * 1e-3) : (0.01 / Math.max(d1, d2)) ** (1 / 5);
    h = Math.min(100 * h, h1, Math.abs(t1 - t0));
  }
  let t = t0;
  let accepted = 0;
  let rejected = 0;
  for (const target of targets) {
    while ((target - t) * dir > 1e-12) {
      if (accepted + rejected >= maxSteps) throw new Error(`dopri5: more than ${maxSteps} steps (rtol ${rtol}, atol ${atol}); the field may be stiff or non-finite`);
      const hs = Math.min(h, Math.abs(target - t)) * dir;
      const ks: Tensor[] = [k1];
      for (let st = 1; st < 7; st++) {
        const xs = noGrad(() => scope(() => {
          let acc: Tensor = x;
          DP.a[st]!.forEach((a, r) => {
            if (a !== 0) acc = add(acc, mul(ks[r]!, a * hs));
          });
          return acc === x ? copy(x) : acc;
        }));
        ks.push(f(xs, t + DP.c[st]! * hs));
        xs.dispose();
      }
      const [y1, err] = noGrad(() => scope(() => {
        let y: Tensor = x;
        let e: Tensor | null = null;
        for (let st = 0; st < 7; st++) {
          if (DP.b[st]) y = add(y, mul(ks[st]!, DP.b[st]! * hs));
          if (DP.bErr[st]) {
            const term = mul(ks[st]!, DP.bErr[st]! * hs);
            e = e ? add(e, term) : term;
          }
        }
        return [y, e!] as const;
      }));
      const ratio = await readScalar(errRatio(err, x, y1, rtol, atol));
      err.dispose();
      if (!Number.isFinite(ratio)) {
        y1.dispose();
        for (const k of ks.slice(1)) k.dispose();
        throw new Error('dopri5: non-finite error estimate (the vector field produced NaN or Inf)');
      }
      if (ratio <= 1) {
        if (energy) {
          // ∫‖v‖² over the step with the 5th-order weights (stage values ks at the stage points).
          const en = noGrad(() => scope(() => {
            let acc: Tensor = energy!;
            for (let st = 0; st < 7; st++) if (DP.b[st]) acc = add(acc, mul(sum(square(ks[st]!), 1), DP.b[st]! * Math.abs(hs)));
            return acc;
          }));
          energy.dispose();
          energy = en;
        }
        x.dispose();
        x = y1;
        t += hs;
        k1.dispose();
        k1 = ks[6]!; // FSAL: the last stage is f(t + h, y1)
        for (const k of ks.slice(1, 6)) k.dispose();
        accepted++;
      } else {
        y1.dispose();
        for (const k of ks.slice(1)) k.dispose();
        rejected++;
      }
      const factor = ratio === 0 ? 10 : Math.min(10, Math.max(0.2, 0.9 * ratio ** (-1 / 5)));
      h = Math.abs(hs) * factor;
      getBackend().flush();
    }
    t = target;
    if (target !== t1 || times.includes(t1)) trajectory.push(copy(x));
  }
  k1.dispose();
  return { x, trajectory, nfe, energy, accepted, rejected };
}
