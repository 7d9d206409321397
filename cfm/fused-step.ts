/**
 * The fused CFM training step: two dispatches for matcher + MLP forward + loss + backward + Adam.
 *
 *  1. `forwardBackwardKernel`: each thread owns S samples of the batch. It draws t and eps from the
 *     matcher's Philox stream, forms x_t and u_t (cfm/matchers.ts), runs the MLP forward keeping
 *     every layer's activations in private arrays, takes the loss mean((v − u_t)²) and back-
 *     propagates by hand (the VJP rules of engine/vjp.ts for `linear`, written out per layer:
 *     gz = g·act'(y) with act' from the output y, dW = Σ_s x_s gz_s, db = Σ_s gz_s, g_in = gz·Wᵀ).
 *     It writes its partial gradient (the sum over its S samples, in parameter-buffer order) and
 *     its partial loss to row `thread` of PART.
 *  2. `reduceAdamKernel`: one thread per parameter sums the partial gradients over the threads and
 *     applies Adam (the formula of kernels/adam.ts) to the flat parameter buffer in place; one more
 *     thread stores the step's loss into a ring of GPU slots, read only every few hundred ms; a
 *     NaN/Inf loss or updated parameter raises the ring's guard word (kernels/guard.ts).
 *
 * The same loop shape as kernels/ode.ts: a layer loops over its outputs j at run time and each
 * weight W[k, j] is loaded once and used for all S samples (loads dominate on SwiftShader). The
 * tape (engine autodiff) path in cfm/step.ts computes the same gradients; tests compare them.
 */
import type { CfmMethod } from '../train/contract';
import type { KernelSpec } from '../engine/backend';
import { SELU_ALPHA, SELU_LAMBDA } from '../kernels/elementwise';
import { activationWgsl, layoutSize, stateDim, type MlpActivation, type MlpLayout } from '../kernels/ode';
import { NONFINITE_WGSL, raiseGuard, storeLoss } from '../kernels/guard';
import { PHILOX_WGSL } from '../kernels/random';
import { f32, u32, type Binding } from '../kernels/wgsl';
import { MATCH_STRUCT, matcherWgsl, streamWgsl } from './matchers';

export interface FusedStepShape {
  layout: MlpLayout;
  method: CfmMethod;
  sigma: number;
  batch: number;
  /** Row of XY where the x1 rows start (x0 rows first). */
  n0: number;
  /** Pairs come from an index buffer [i…, j…] (GPU Sinkhorn) instead of row b ↔ row b. */
  withPairs: boolean;
  samplesPerThread: number;
  /** Threads per workgroup. */
  workgroup: number;
}

export function fusedThreads(s: FusedStepShape): number {
  return Math.ceil(s.batch / s.samplesPerThread);
}

/** act'(z) written in terms of the output y = act(z) (as engine/vjp.ts does for `linear`). */
function dactFromY(act: MlpActivation): string {
  switch (act) {
    case 'none': return 'return 1.0;';
    case 'relu': return 'return select(0.0, 1.0, y > 0.0);';
    case 'selu': return `return select(y + ${f32(SELU_LAMBDA * SELU_ALPHA)}, ${f32(SELU_LAMBDA)}, y > 0.0);`;
    case 'tanh': return 'return 1.0 - y * y;';
    case 'sigmoid': return 'return y * (1.0 - y);';
    case 'silu': throw new Error('fused step: silu is not supported (its derivative is not a function of its output)');
  }
}

const range = (n: number): number[] => [...Array(n).keys()];

function declare(bindings: readonly Binding[], pSize: number, fixedP: boolean): string {
  return bindings
    .map((b, i) => {
      if (b.kind === 'uniform') return `@group(0) @binding(${i}) var<uniform> ${b.name}: ${b.type};`;
      const access = b.kind === 'read' ? 'read' : 'read_write';
      const type = b.name === 'P' && fixedP ? `array<f32, ${pSize}>` : `array<${b.type ?? 'f32'}>`;
      return `@group(0) @binding(${i}) var<storage, ${access}> ${b.name}: ${type};`;
    })
    .join('\n');
}

/**
 * Bindings: uniforms (MatchParams: key, draw), P (parameters), XY (x0 rows then x1 rows),
 * [PAIRS], PART (threads × (params + 1)).
 */
export function forwardBackwardKernel(s: FusedStepShape): KernelSpec {
  const l = s.layout;
  const d = stateDim(l);
  const nl = l.dims.length - 1;
  if (nl < 2) throw new Error('fused step: the MLP needs at least one hidden layer');
  const S = s.samplesPerThread;
  const T = fusedThreads(s);
  const NP = layoutSize(l);
  const row = NP + 1;
  const Sx = range(S);
  const B = s.batch;
  const bindings: Binding[] = [{ name: 'mp', kind: 'uniform', type: 'MatchParams' }, { name: 'P', kind: 'read' }, { name: 'XY', kind: 'read' }];
  if (s.withPairs) bindings.push({ name: 'PAIRS', kind: 'read' });
  bindings.push({ name: 'PART', kind: 'read_write' });
  const L: string[] = [];
  const widest = Math.max(...l.dims.slice(1, -1));
  // --- samples: x_t, u_t, t
  L.push(`  var xin: array<array<f32, ${d + 1}>, ${S}>;`, `  var ut: array<array<f32, ${d}>, ${S}>;`, `  var valid: array<f32, ${S}>;`);
  for (const q of Sx) {
    L.push(`  {`,
      `    let b = min(tid * ${u32(S)} + ${u32(q)}, ${u32(B - 1)});`,
      `    valid[${q}] = select(0.0, 1.0, tid * ${u32(S)} + ${u32(q)} < ${u32(B)});`,
      `    let i0 = ${s.withPairs ? 'u32(PAIRS[b])' : 'b'};`,
      `    let i1 = ${s.withPairs ? `u32(PAIRS[${u32(B)} + b])` : 'b'};`,
      `    var x0: array<f32, ${d}>;`,
      `    var x1: array<f32, ${d}>;`,
      ...range(d).map((k) => `    x0[${k}] = XY[i0 * ${u32(d)} + ${u32(k)}];\n    x1[${k}] = XY[(${u32(s.n0)} + i1) * ${u32(d)} + ${u32(k)}];`),
      `    let t = draw_t(b);`,
      `    let m = match_xt_ut(x0, x1, t, draw_eps(b));`,
      ...range(d).map((k) => `    xin[${q}][${k}] = m.xt[${k}];\n    ut[${q}][${k}] = m.ut[${k}];`),
      `    xin[${q}][${d}] = t;`,
      `  }`);
  }
  // --- forward: a{k}_{q} = act(z) of hidden layer k
  const inName = (k: number, q: number, i: number) => (k === 0 ? `xin[${q}][${i}]` : `a${k - 1}_${q}[${i}]`);
  for (let k = 0; k < nl - 1; k++) {
    const nIn = l.dims[k]!, nOut = l.dims[k + 1]!;
    for (const q of Sx) L.push(`  var a${k}_${q}: array<f32, ${nOut}>;`);
    L.push(`  for (var j = 0u; j < ${u32(nOut)}; j++) {`);
    for (let i = 0; i < nIn; i++) L.push(`    let w${i} = P[${u32(l.wOffsets[k]! + i * nOut)} + j];`);
    L.push(`    let bj = P[${u32(l.bOffsets[k]!)} + j];`);
    // Interleaved fma chains, one per sample (a single long chain of adds is latency-bound).
    for (const q of Sx) L.push(`    var z${q} = bj;`);
    for (let i = 0; i < nIn; i++) for (const q of Sx) L.push(`    z${q} = fma(${inName(k, q, i)}, w${i}, z${q});`);
    for (const q of Sx) L.push(`    a${k}_${q}[j] = act(z${q});`);
    L.push('  }');
  }
  // --- output layer, loss and its gradient gv = 2(v − u)/(B·d)
  const ko = nl - 1;
  const hIn = l.dims[ko]!;
  const scale = f32(2 / (B * d));
  L.push(`  var lsum = 0.0;`, `  var gv: array<array<f32, ${d}>, ${S}>;`);
  for (let j = 0; j < d; j++) for (let i = 0; i < hIn; i++) L.push(`  let wo${i}_${j} = P[${u32(l.wOffsets[ko]! + i * d + j)}];`);
  for (const q of Sx) for (let j = 0; j < d; j++) L.push(`  var v${q}_${j} = P[${u32(l.bOffsets[ko]! + j)}];`);
  for (let i = 0; i < hIn; i++) for (const q of Sx) for (let j = 0; j < d; j++) L.push(`  v${q}_${j} = fma(a${ko - 1}_${q}[${i}], wo${i}_${j}, v${q}_${j});`);
  for (const q of Sx) {
    for (let j = 0; j < d; j++) {
      L.push(`  {`,
        `    let v = v${q}_${j};`,
        `    let r = (v - ut[${q}][${j}]) * valid[${q}];`,
        `    lsum = fma(r, r, lsum);`,
        `    gv[${q}][${j}] = ${scale} * r;`,
        `  }`);
    }
  }
  L.push(`  let o = tid * ${u32(row)};`, `  PART[o + ${u32(NP)}] = lsum;`);
  // --- backward, output layer: dW, db, and gz of the last hidden layer
  for (let j = 0; j < d; j++) {
    L.push(`  PART[o + ${u32(l.bOffsets[ko]! + j)}] = ${Sx.map((q) => `gv[${q}][${j}]`).join(' + ')};`);
    for (let i = 0; i < hIn; i++) L.push(`  PART[o + ${u32(l.wOffsets[ko]! + i * d + j)}] = ${Sx.map((q) => `a${ko - 1}_${q}[${i}] * gv[${q}][${j}]`).join(' + ')};`);
  }
  for (const p of [0, 1]) for (const q of Sx) L.push(`  var g${p}_${q}: array<f32, ${widest}>;`);
  for (const q of Sx) {
    for (let i = 0; i < hIn; i++) {
      L.push(`  g0_${q}[${i}] = (${range(d).map((j) => `gv[${q}][${j}] * wo${i}_${j}`).join(' + ')}) * dacty(a${ko - 1}_${q}[${i}]);`);
    }
  }
  // --- backward through hidden layers k = nl−2 … 0 (layer k maps dims[k] → dims[k+1]), one
  // input row i at a time (the forward's loop shape): the weights W[i, :] are loaded once, dW[i, :]
  // = Σ_s in_s[i]·gz_s[:] is stored, and g_in,s[i] = (Σ_j gz_s[j]·W[i, j])·act'(in_s[i]) is one
  // register sum per sample — no read-modify-write of large private arrays.
  let par = 0;
  for (let k = nl - 2; k >= 0; k--) {
    const nIn = l.dims[k]!, nOut = l.dims[k + 1]!;
    const needIn = k > 0;
    const np2 = 1 - par;
    const gz = (q: number, j: number) => `g${par}_${q}[${j}]`;
    for (let j = 0; j < nOut; j++) L.push(`  PART[o + ${u32(l.bOffsets[k]! + j)}] = ${Sx.map((q) => gz(q, j)).join(' + ')};`);
    const body = (i: string, inv: (q: number) => string, ind: string) => {
      const out: string[] = [];
      for (let j = 0; j < nOut; j++) out.push(`${ind}let w${j} = P[${u32(l.wOffsets[k]!)} + ${i} * ${u32(nOut)} + ${u32(j)}];`);
      for (const q of Sx) out.push(`${ind}let in${q} = ${inv(q)};`);
      for (let j = 0; j < nOut; j++) out.push(`${ind}PART[o + ${u32(l.wOffsets[k]!)} + ${i} * ${u32(nOut)} + ${u32(j)}] = ${Sx.map((q) => `in${q} * ${gz(q, j)}`).join(' + ')};`);
      if (needIn) {
        for (const q of Sx) out.push(`${ind}var gn${q} = 0.0;`);
        for (let j = 0; j < nOut; j++) for (const q of Sx) out.push(`${ind}gn${q} = fma(${gz(q, j)}, w${j}, gn${q});`);
        for (const q of Sx) out.push(`${ind}g${np2}_${q}[${i}] = gn${q} * dacty(in${q});`);
      }
      return out;
    };
    if (k === 0) {
      // The input layer (d + 1 rows): unrolled, inputs read by constant index.
      for (let i = 0; i < nIn; i++) L.push('  {', ...body(`${i}u`, (q) => `xin[${q}][${i}]`, '    '), '  }');
    } else {
      L.push(`  for (var i = 0u; i < ${u32(nIn)}; i++) {`, ...body('i', (q) => `a${k - 1}_${q}[i]`, '    '), '  }');
      par = np2;
    }
  }
  const src = `${declare(bindings, NP, true)}
${PHILOX_WGSL}
${MATCH_STRUCT}
${streamWgsl(d)}
${matcherWgsl(s.method, s.sigma, d)}
${activationWgsl(l.activation)}
fn dacty(y: f32) -> f32 {
  ${dactFromY(l.activation)}
}
@compute @workgroup_size(${s.workgroup})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let tid = gid.x;
  if (tid >= ${u32(T)}) { return; }
${L.join('\n')}
}`;
  return { name: `cfm_fwdbwd_${s.method}[${B}x${l.dims.join('-')}/S${S}${s.withPairs ? '+pairs' : ''}]`, source: src, bindings: bindings.map((b) => b.kind), workgroups: [Math.ceil(T / s.workgroup), 1, 1] };
}

/** Adam uniforms: lr, β1, β2, ε, 1/(1−β1^t), 1/(1−β2^t), weight decay, step (0-based: loss slot and guard). */
export function adamUniforms(o: { lr: number; beta1: number; beta2: number; eps: number; t: number; weightDecay: number; step: number }): Uint8Array {
  const buf = new ArrayBuffer(32);
  const f = new Float32Array(buf);
  f.set([o.lr, o.beta1, o.beta2, o.eps, 1 / (1 - o.beta1 ** o.t), 1 / (1 - o.beta2 ** o.t), o.weightDecay]);
  new Uint32Array(buf)[7] = o.step >>> 0;
  return new Uint8Array(buf);
}

/**
 * Sums PART (threads × (NP + 1)) over threads and applies Adam to P; the step's loss Σ loss / (B·d)
 * goes to its slot of the loss ring (engine/loss-ring.ts, `slots` slots then the guard word), and
 * the guard is raised if the loss or any updated parameter is non-finite (kernels/guard.ts: each
 * thread checks the value it just wrote, so the check costs no pass of its own).
 * Bindings: uniforms, PART, P, M, V, RING.
 */
export function reduceAdamKernel(np: number, threads: number, batch: number, d: number, slots: number): KernelSpec {
  const bindings: Binding[] = [
    { name: 'hp', kind: 'uniform', type: 'AdamParams' },
    { name: 'PART', kind: 'read' },
    { name: 'P', kind: 'read_write' },
    { name: 'M', kind: 'read_write' },
    { name: 'V', kind: 'read_write' },
    { name: 'RING', kind: 'read_write', type: 'atomic<u32>' },
  ];
  const row = u32(np + 1);
  const src = `${declare(bindings, np, false)}
struct AdamParams { lr: f32, beta1: f32, beta2: f32, eps: f32, c1: f32, c2: f32, wd: f32, step: u32 }
${NONFINITE_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let p = gid.x;
  if (p > ${u32(np)}) { return; }
  var g = 0.0;
  for (var t = 0u; t < ${u32(threads)}; t++) { g += PART[t * ${row} + p]; }
  if (p == ${u32(np)}) {
    let loss = g * ${f32(1 / (batch * d))};
    ${storeLoss('RING', slots, 'hp.step', 'loss')}
    if (nonfinite(loss)) { ${raiseGuard('RING', slots, 'hp.step')} }
    return;
  }
  let mi = hp.beta1 * M[p] + (1.0 - hp.beta1) * g;
  let vi = hp.beta2 * V[p] + (1.0 - hp.beta2) * g * g;
  M[p] = mi;
  V[p] = vi;
  let decayed = P[p] * (1.0 - hp.lr * hp.wd);
  let pn = decayed - hp.lr * (mi * hp.c1) / (sqrt(vi * hp.c2) + hp.eps);
  P[p] = pn;
  if (nonfinite(pn)) { ${raiseGuard('RING', slots, 'hp.step')} }
}`;
  return { name: `cfm_reduce_adam[${threads}x${np}]`, source: src, bindings: bindings.map((b) => b.kind), workgroups: [Math.ceil((np + 1) / 64), 1, 1] };
}
