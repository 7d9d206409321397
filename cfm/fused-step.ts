/**
 * The fused CFM training step: two dispatches for matcher + MLP forward + loss + backward + Adam.
 *
 *  1. `forwardBackwardKernel`: each thread owns S samples of the batch. It draws t and eps from the
 *     matcher's Philox stream, forms x_t and u_t (cfm/matchers.ts), and runs the network forward and
 *     backward with the one MLP emitter (kernels/mlp/emit.ts, the same code as the `mlp`
 *     primitive's kernels) between the loss mean((v − u_t)²) and its gradient gv = 2(v − u)/(B·d).
 *     It writes its partial gradient (the sum over its S samples, in parameter-buffer order) and
 *     its partial loss to row `thread` of PART.
 *  2. `reduceAdamKernel` (kernels/adam.ts, the one Adam body): one thread per parameter sums the
 *     partial gradients and applies Adam in place; the loss goes to the loss ring with its
 *     non-finite guard.
 *
 * cfm/ holds no MLP or Adam WGSL: only the matcher prologue and the loss are written here. The tape
 * path in cfm/step.ts computes the same gradients; tests compare them.
 */
import type { CfmMethod } from '../train/contract';
import type { KernelSpec } from '../engine/backend';
import { declareArrays, emitForward, emitReverse, range, type MlpNet } from '../kernels/mlp/emit';
import { layoutSize, stateDim, type MlpLayout } from '../kernels/ode';
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

/** Context columns of the step's network (the layout's; 0 for an unconditional field). */
export function stepContextCols(s: FusedStepShape): number {
  return s.layout.context ?? 0;
}

export function fusedThreads(s: FusedStepShape): number {
  return Math.ceil(s.batch / s.samplesPerThread);
}

/** WGSL declarations of a fused step's bindings; the parameters P as a fixed-size array when `fixedP`. */
export function declare(bindings: readonly Binding[], pSize: number, fixedP: boolean): string {
  return bindings
    .map((b, i) => {
      if (b.kind === 'uniform') return `@group(0) @binding(${i}) var<uniform> ${b.name}: ${b.type};`;
      const access = b.kind === 'read' ? 'read' : 'read_write';
      const type = b.name === 'P' && fixedP ? `array<f32, ${pSize}>` : `array<${b.type ?? 'f32'}>`;
      return `@group(0) @binding(${i}) var<storage, ${access}> ${b.name}: ${type};`;
    })
    .join('\n');
}

/** The vector field's network as the emitter sees it: weights in the fixed-size array P. */
function netOf(l: MlpLayout): MlpNet {
  return { dims: l.dims, activation: l.activation, w: l.wOffsets.map((off) => ({ buf: 'P', off })), b: l.bOffsets.map((off) => ({ buf: 'P', off })) };
}

/**
 * Bindings: uniforms (MatchParams: key, draw), P (parameters), XY (x0 rows then x1 rows, then for
 * a conditional field the context rows [B, c] of the x1 rows: the context belongs to the target
 * point; cfm/conditional.ts), [PAIRS], PART (threads × (params + 1)).
 */
export function forwardBackwardKernel(s: FusedStepShape): KernelSpec {
  const l = s.layout;
  const d = stateDim(l);
  const B = s.batch;
  const C = stepContextCols(s);
  const ctxAt = (s.n0 + B) * d;
  const nl = l.dims.length - 1;
  if (nl < 2) throw new Error('fused step: the MLP needs at least one hidden layer');
  const S = s.samplesPerThread;
  const T = fusedThreads(s);
  const NP = layoutSize(l);
  const row = NP + 1;
  const Sx = range(S);
  const net = netOf(l);
  const bindings: Binding[] = [{ name: 'mp', kind: 'uniform', type: 'MatchParams' }, { name: 'P', kind: 'read' }, { name: 'XY', kind: 'read' }];
  if (s.withPairs) bindings.push({ name: 'PAIRS', kind: 'read' });
  bindings.push({ name: 'PART', kind: 'read_write' });
  const L: string[] = [...declareArrays(net, S, { keep: true })];
  // --- samples: the network's input a0 = [x_t, t], the target u_t
  L.push(`  var ut: array<array<f32, ${d}>, ${S}>;`, `  var valid: array<f32, ${S}>;`);
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
      ...range(d).map((k) => `    a0_${q}[${k}] = m.xt[${k}];\n    ut[${q}][${k}] = m.ut[${k}];`),
      `    a0_${q}[${d}] = t;`,
      ...range(C).map((k) => `    a0_${q}[${d + 1 + k}] = XY[${u32(ctxAt)} + i1 * ${u32(C)} + ${u32(k)}];`),
      `  }`);
  }
  L.push(...emitForward(net, S, { keep: true }));
  // --- loss and its gradient gv = 2(v − u)/(B·d) (zero for padding samples)
  const scale = f32(2 / (B * d));
  L.push(`  var lsum = 0.0;`);
  for (const q of Sx) {
    L.push(`  var gz${nl - 1}_${q}: array<f32, ${d}>;`);
    for (let j = 0; j < d; j++) {
      L.push(`  {`,
        `    let r = (o_${q}[${j}] - ut[${q}][${j}]) * valid[${q}];`,
        `    lsum = fma(r, r, lsum);`,
        `    gz${nl - 1}_${q}[${j}] = ${scale} * r;`,
        `  }`);
    }
  }
  L.push(`  let po = tid * ${u32(row)};`, `  PART[po + ${u32(NP)}] = lsum;`);
  L.push(...emitReverse(net, S, {
    gradB: (k, j, v) => `PART[po + ${u32(l.bOffsets[k]!)} + ${j}] = ${v};`,
    gradW: (k, i, j, v) => `PART[po + ${u32(l.wOffsets[k]!)} + ${i} * ${u32(l.dims[k + 1]!)} + ${j}] = ${v};`,
    gradIn: null,
  }));
  const src = `${declare(bindings, NP, true)}
${PHILOX_WGSL}
${MATCH_STRUCT}
${streamWgsl(d)}
${matcherWgsl(s.method, s.sigma, d)}
@compute @workgroup_size(${s.workgroup})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let tid = gid.x;
  if (tid >= ${u32(T)}) { return; }
${L.join('\n')}
}`;
  return { name: `cfm_fwdbwd_${s.method}[${B}x${l.dims.join('-')}${C ? `+c${C}` : ''}/S${S}${s.withPairs ? '+pairs' : ''}]`, source: src, bindings: bindings.map((b) => b.kind), workgroups: [Math.ceil(T / s.workgroup), 1, 1] };
}
