/**
 * Adam / AdamW (Kingma & Ba, 2015; decoupled weight decay: Loshchilov & Hutter, 2019, as
 * torch.optim.AdamW), the one WGSL body every optimiser path uses:
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *   p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε).
 * Step-dependent numbers arrive as uniforms, so one pipeline serves every step.
 *
 *  - `adamKernel`: the engine's Adam (engine/optim.ts) over one flat parameter buffer and a packed
 *    gradient, one dispatch;
 *  - `reduceAdamKernel`: a fused step's end (the CFM step, cfm/step.ts): sums per-thread partial
 *    gradients, applies the same update in place, stores the step's loss into the loss ring and
 *    raises its guard on a non-finite loss or parameter (kernels/guard.ts), one dispatch.
 *
 * Both can also keep an exponential moving average of the parameters in the same pass (no extra
 * dispatch): e ← δ·e + (1 − δ)·p with the updated p, δ a per-step uniform (engine/optim.ts picks
 * it: Polyak averaging as torchcfm's image recipe, with TensorFlow's warm-up min(δ, (1+t)/(10+t))).
 */
import type { KernelSpec } from '../engine/backend';
import { NONFINITE_WGSL, raiseGuard, storeLoss } from './guard';
import { entry1d, f32, grid1d, spec, u32, type Binding } from './wgsl';

/**
 * Uniform layout (16 × 4 bytes): lr, beta1, beta2, eps, 1/(1−β1^t), 1/(1−β2^t), weightDecay (f32),
 * step (u32), 1−β1, 1−β2, 1−lr·wd, δ, 1−δ (f32: the average's decay this step), 3 × pad. The
 * complements are computed in float64 and rounded once, as torch passes `1 - beta2` (a Python
 * float) to addcmul_: 1 − fround(0.999) in float32 is 1.3e-5 below 1e-3, which made v 1.3e-5 too
 * small (tests/otcfm-fidelity.test.ts). With the paper's lr 1e-3, wd 1e-5, 1 − lr·wd rounds to
 * exactly 1 in float32, here as in torch's float32 mul_.
 */
export const ADAM_UNIFORM_FLOATS = 16;
const ADAM_STRUCT = 'struct AdamParams { lr: f32, beta1: f32, beta2: f32, eps: f32, c1: f32, c2: f32, wd: f32, step: u32, omb1: f32, omb2: f32, decay: f32, ema: f32, omema: f32, pad0: f32, pad1: f32, pad2: f32 }';

/**
 * Adam's uniforms; `step` (0-based) picks a fused step's loss-ring slot (unused by `adamKernel`);
 * `emaDecay` is δ of this step's average update (ignored by kernels built without the average).
 */
export function adamUniforms(o: { lr: number; beta1: number; beta2: number; eps: number; t: number; weightDecay: number; step?: number; emaDecay?: number }): Uint8Array {
  const buf = new ArrayBuffer(ADAM_UNIFORM_FLOATS * 4);
  new Float32Array(buf).set([o.lr, o.beta1, o.beta2, o.eps, 1 / (1 - o.beta1 ** o.t), 1 / (1 - o.beta2 ** o.t), o.weightDecay]);
  new Uint32Array(buf)[7] = (o.step ?? 0) >>> 0;
  const ema = o.emaDecay ?? 0;
  new Float32Array(buf, 8 * 4, 5).set([1 - o.beta1, 1 - o.beta2, 1 - o.lr * o.weightDecay, ema, 1 - ema]);
  return new Uint8Array(buf);
}

/**
 * The update of element `i` from gradient `g` (WGSL expressions; uniforms in `hp`), leaving the new
 * parameter in `pn`; with `e`, also the moving average e[i] ← δ·e[i] + (1 − δ)·pn.
 */
function adamBody(p: string, m: string, v: string, i: string, g: string, e: string | null): string {
  return `  let mi = hp.beta1 * ${m}[${i}] + hp.omb1 * ${g};
  let vi = hp.beta2 * ${v}[${i}] + hp.omb2 * ${g} * ${g};
  ${m}[${i}] = mi;
  ${v}[${i}] = vi;
  let decayed = ${p}[${i}] * hp.decay;
  let pn = decayed - hp.lr * (mi * hp.c1) / (sqrt(vi * hp.c2) + hp.eps);
  ${p}[${i}] = pn;${e ? `\n  ${e}[${i}] = hp.ema * ${e}[${i}] + hp.omema * pn;` : ''}`;
}

/** Bindings: uniforms, p, g, m, v, then e (the parameters' moving average) when `withEma`. */
export function adamKernel(n: number, withEma = false): KernelSpec {
  const bindings: Binding[] = [
    { name: 'hp', kind: 'uniform', type: 'AdamParams' },
    { name: 'p', kind: 'read_write' },
    { name: 'g', kind: 'read' },
    { name: 'm', kind: 'read_write' },
    { name: 'v', kind: 'read_write' },
  ];
  if (withEma) bindings.push({ name: 'e', kind: 'read_write' });
  const body = `  let gi = g[index];\n${adamBody('p', 'm', 'v', 'index', 'gi', withEma ? 'e' : null)}`;
  return spec(`adam[${n}${withEma ? '+ema' : ''}]`, bindings, entry1d(256, n, body, ADAM_STRUCT), grid1d(n, 256));
}

/**
 * Sums PART (threads rows of np gradient partials then one loss partial) over the threads and
 * applies Adam to P in place; the step's loss (Σ loss partials · lossScale) goes to its slot of the
 * loss ring (engine/loss-ring.ts: `slots` slots then the guard word), and the guard is raised when
 * the loss or an updated parameter is non-finite (each thread checks the value it just wrote).
 * Bindings: uniforms, PART, P, M, V, RING, then E (the parameters' moving average) when `withEma`.
 */
export function reduceAdamKernel(np: number, threads: number, lossScale: number, slots: number, withEma = false): KernelSpec {
  const bindings: Binding[] = [
    { name: 'hp', kind: 'uniform', type: 'AdamParams' },
    { name: 'PART', kind: 'read' },
    { name: 'P', kind: 'read_write' },
    { name: 'M', kind: 'read_write' },
    { name: 'V', kind: 'read_write' },
    { name: 'RING', kind: 'read_write', type: 'atomic<u32>' },
  ];
  if (withEma) bindings.push({ name: 'E', kind: 'read_write' });
  const row = u32(np + 1);
  const src = `${ADAM_STRUCT}
${NONFINITE_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let p = gid.x;
  if (p > ${u32(np)}) { return; }
  var g = 0.0;
  for (var t = 0u; t < ${u32(threads)}; t++) { g += PART[t * ${row} + p]; }
  if (p == ${u32(np)}) {
    let loss = g * ${f32(lossScale)};
    ${storeLoss('RING', slots, 'hp.step', 'loss')}
    if (nonfinite(loss)) { ${raiseGuard('RING', slots, 'hp.step')} }
    return;
  }
${adamBody('P', 'M', 'V', 'p', 'g', withEma ? 'E' : null)}
  if (nonfinite(pn)) { ${raiseGuard('RING', slots, 'hp.step')} }
}`;
  return spec(`reduce_adam[${threads}x${np}${withEma ? '+ema' : ''}]`, bindings, src, [Math.ceil((np + 1) / 64), 1, 1]);
}
