/**
 * Flow-layer heads on the MLP kernel family: one kernel runs a flow layer's conditioner (the one
 * emitter, kernels/mlp/emit.ts) and applies the bijection to the layer's input in the same dispatch,
 * so a normalizing-flow training step costs one dispatch per layer forward and two (reverse +
 * reduce) for every cotangent of the layer, instead of ~25 elementwise dispatches around each network.
 *
 * The flow state of a row is one vector [h, ℓ]: the D coordinates and the running log|det| ℓ
 * (`stateIn` = false: the input has only h and ℓ starts at 0). Heads (m = the coupling mask, 1 =
 * conditioning coordinate; B = `scaleBound`; o = the conditioner's output):
 *
 *   affine   (RealNVP, Dinh et al. 2017)  o = net(h ⊙ m) = [ŝ, t̂], s = (1 − m) ⊙ B·tanh(ŝ/B),
 *            h' = h ⊙ exp(s) + (1 − m) ⊙ t̂,  ℓ' = ℓ + Σ s
 *   additive (NICE, Dinh et al. 2015)     o = net(h ⊙ m) = t̂,  h' = h + (1 − m) ⊙ t̂,  ℓ' = ℓ
 *   maf      (Papamakarios et al. 2017)   o = MADE(h) = [μ, â], a = B·tanh(â/B),
 *            h' = (h − μ) ⊙ exp(−a),  ℓ' = ℓ − Σ a
 *
 * The tanh soft clamp is the op-by-op layers' (flows/coupling.ts, flows/maf.ts), written the same
 * way so every fusion level computes the same numbers. Two optional folds save whole dispatches:
 *
 *   pre  an ActNorm (Glow) in front: h ← h ⊙ exp(σ) + β, ℓ ← ℓ + Σ σ (σ, β: two [D] parameters);
 *   tail 'normal': the output is log N(h'; 0, I) + ℓ' = −½|h'|² − (D/2)·log 2π + ℓ' per row ([B, 1])
 *        instead of the state [B, D + 1] (the standard-normal base at the end of the flow).
 *
 * Reverse mode: the kernel recomputes the layer, forms the conditioner's output cotangent from the
 * head's derivatives (∂h'/∂ŝ = h·e^s·(1 − tanh²), ∂ℓ'/∂ŝ = 1 − tanh², …), runs the emitter's reverse
 * pass, and adds the network's input cotangent (⊙ m for couplings) to the head's direct one
 * (e^s for affine, e^{−a} for MAF). Per-thread partial parameter gradients go to PART in the order
 * [σ, β (pre)], W_0, b_0, W_1, … (the order the flow declares its parameters, so one layer's
 * gradients are one contiguous run), summed over threads by the mlp reduce kernel.
 */
import type { KernelSpec } from '../../engine/backend';
import { ACT } from '../activations';
import { f32, u32, type Binding } from '../wgsl';
import { declareArrays, emitForward, emitReverse, range, type MlpNet } from './emit';
import { kernel, mlpParamCount, net, packedOffsets, prologue, readBindings, type MlpDesc, type SlotRef } from './kernels';

export const FLOW_HEADS = ['affine', 'additive', 'maf'] as const;
export type FlowHead = (typeof FLOW_HEADS)[number];

export interface FlowHeadDesc {
  /** The conditioner; its `x` is the layer input ([B, D] or [B, D + 1]), dims[0] = D + context columns. */
  readonly net: MlpDesc;
  readonly head: FlowHead;
  readonly dim: number;
  /** Couplings: 1 = conditioning coordinate (passes through unchanged); null for maf. */
  readonly keep: readonly number[] | null;
  readonly scaleBound: number;
  /** The input carries ℓ as column D; else it has D columns and ℓ starts at 0. */
  readonly stateIn: boolean;
  /** 'state': output [B, D + 1] = [h', ℓ']; 'normal': output [B, 1] = log N(h'; 0, I) + ℓ'. */
  readonly tail: 'state' | 'normal';
  /** An ActNorm folded in front: log-scale σ and shift β, [D] each. */
  readonly pre: { readonly s: SlotRef; readonly b: SlotRef } | null;
  /**
   * Per layer, whether its (constant) mask is all ones, so the kernel skips it: a MADE's hidden-to-
   * hidden masks in 2-D, where every hidden unit has degree 1. Each mask load skipped is one buffer
   * load per weight less (SwiftShader's bottleneck, kernels/mlp/emit.ts).
   */
  readonly onesMasks?: readonly boolean[] | null;
}

/** The conditioner for the emitter, without the masks that are all ones. */
function headNet(d: FlowHeadDesc): MlpNet {
  const n = net(d.net);
  const ones = d.onesMasks;
  return ones && n.mask ? { ...n, mask: n.mask.map((m, k) => (ones[k] ? null : m)) } : n;
}

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** Conditioner outputs per coordinate: [ŝ, t̂] / [μ, â] (2) or t̂ (1). */
export function headOutputs(head: FlowHead): number {
  return head === 'additive' ? 1 : 2;
}

/** Columns of the layer's input and output. */
export function headWidths(d: Pick<FlowHeadDesc, 'dim' | 'stateIn' | 'tail'>): { inW: number; outW: number } {
  return { inW: d.dim + (d.stateIn ? 1 : 0), outW: d.tail === 'state' ? d.dim + 1 : 1 };
}

/** Width of a PART row and of the gradient: [σ, β] when pre, then the network's parameters. */
export function headParamCount(d: FlowHeadDesc): number {
  return (d.pre ? 2 * d.dim : 0) + mlpParamCount(d.net.dims);
}

const at = (r: SlotRef, idx: string): string => `in${r.slot}[${r.offset ? `${u32(r.offset)} + ` : ''}${idx}]`;

function label(kind: string, d: FlowHeadDesc): string {
  const n = d.net;
  return `flow_${d.head}_${kind}[${n.batch}x${n.dims.join('-')}${n.contextCols ? `+c${n.contextCols}` : ''}${n.mask ? `+mask${d.onesMasks?.some((o) => o) ? `(ones ${d.onesMasks.map((o) => +o).join('')})` : ''}` : ''}/${n.activation}${d.pre ? '/pre' : ''}${d.stateIn ? '' : '/x'}${d.tail === 'normal' ? '/normal' : ''}/S${n.samples}]`;
}

function check(d: FlowHeadDesc): void {
  const D = d.dim;
  const L = d.net.dims.length - 1;
  if (d.net.dims[0] !== D + d.net.contextCols) throw new Error(`flow head: the conditioner takes ${d.net.dims[0]} inputs, not D + context = ${D + d.net.contextCols}`);
  if (d.net.dims[L] !== headOutputs(d.head) * D) throw new Error(`flow head ${d.head}: the conditioner gives ${d.net.dims[L]} outputs, needs ${headOutputs(d.head) * D}`);
  if ((d.head === 'maf') !== (d.keep === null)) throw new Error(`flow head ${d.head}: ${d.head === 'maf' ? 'takes no coupling mask' : 'needs a coupling mask'}`);
  if (d.keep && d.keep.length !== D) throw new Error(`flow head: the coupling mask has ${d.keep.length} entries for dimension ${D}`);
  if (!(d.scaleBound > 0) || !Number.isFinite(d.scaleBound)) throw new RangeError(`flow head: scaleBound must be a positive number, got ${d.scaleBound}`);
}

/**
 * Per sample q: loads the input row into h_q (after the folded ActNorm, the raw row then in xr_q),
 * ℓ into ld_q, and the conditioner input (h ⊙ m for couplings, then the context) into a0_q.
 */
function load(d: FlowHeadDesc): string[] {
  const D = d.dim;
  const nc = d.net.contextCols;
  const { inW } = headWidths(d);
  const out: string[] = [];
  const x = d.net.x;
  for (const q of range(d.net.samples)) {
    out.push(`  var h_${q}: array<f32, ${D}>;`);
    if (d.pre) out.push(`  var xr_${q}: array<f32, ${D}>;`);
    out.push(`  var ld_${q} = ${d.stateIn ? at(x, `row${q} * ${u32(inW)} + ${u32(D)}`) : '0.0'};`);
    for (const j of range(D)) {
      const v = at(x, `row${q} * ${u32(inW)} + ${u32(j)}`);
      if (!d.pre) {
        out.push(`  h_${q}[${j}] = ${v};`);
        continue;
      }
      out.push(`  xr_${q}[${j}] = ${v};`);
      out.push(`  h_${q}[${j}] = xr_${q}[${j}] * exp(${at(d.pre.s, u32(j))}) + ${at(d.pre.b, u32(j))};`);
    }
    if (d.pre) out.push(`  ld_${q} = ld_${q} + (${range(D).map((j) => at(d.pre!.s, u32(j))).join(' + ')});`);
    for (const j of range(D)) out.push(`  a0_${q}[${j}] = ${d.keep && d.keep[j] === 0 ? '0.0' : `h_${q}[${j}]`};`);
    if (nc) for (const c of range(nc)) out.push(`  a0_${q}[${D + c}] = ${at(d.net.ctx!, `row${q} * ${u32(nc)} + ${u32(c)}`)};`);
  }
  return out;
}

/** tanh(v / B) as the op-by-op path computes it (the activation table's clamped tanh of v·(1/B)). */
const tanhB = (d: FlowHeadDesc, v: string): string => ACT.tanh.wgsl(`(${v} * ${f32(1 / d.scaleBound)})`);

/** The bijection on o_q: y_q (the new h) and ldo_q (the new ℓ). */
function epilogue(d: FlowHeadDesc): string[] {
  const D = d.dim;
  const B = f32(d.scaleBound);
  const out: string[] = [];
  for (const q of range(d.net.samples)) {
    out.push(`  var y_${q}: array<f32, ${D}>;`, `  var ls_${q} = 0.0;`);
    for (const j of range(D)) {
      const h = `h_${q}[${j}]`;
      if (d.head !== 'maf' && d.keep![j] === 1) {
        out.push(`  y_${q}[${j}] = ${h};`);
        continue;
      }
      if (d.head === 'additive') out.push(`  y_${q}[${j}] = ${h} + o_${q}[${j}];`);
      else if (d.head === 'affine') out.push(`  { let s = ${tanhB(d, `o_${q}[${j}]`)} * ${B}; y_${q}[${j}] = ${h} * exp(s) + o_${q}[${D + j}]; ls_${q} += s; }`);
      else out.push(`  { let a = ${tanhB(d, `o_${q}[${D + j}]`)} * ${B}; y_${q}[${j}] = (${h} - o_${q}[${j}]) * exp(-a); ls_${q} += a; }`);
    }
    out.push(`  let ldo_${q} = ${d.head === 'maf' ? `ld_${q} - ls_${q}` : d.head === 'affine' ? `ld_${q} + ls_${q}` : `ld_${q}`};`);
  }
  return out;
}

/** Bindings: in0…, OUT ([B, D + 1] state or [B, 1] log-density). */
export function flowHeadForwardKernel(d: FlowHeadDesc): KernelSpec {
  check(d);
  const D = d.dim;
  const S = d.net.samples;
  const bindings: Binding[] = [...readBindings(d.net), { name: 'OUT', kind: 'read_write' }];
  const store = range(S).map((q) => {
    const lines = d.tail === 'state'
      ? [...range(D).map((j) => `OUT[row${q} * ${u32(D + 1)} + ${u32(j)}] = y_${q}[${j}];`), `OUT[row${q} * ${u32(D + 1)} + ${u32(D)}] = ldo_${q};`]
      : [`OUT[row${q}] = (-0.5 * (${range(D).map((j) => `y_${q}[${j}] * y_${q}[${j}]`).join(' + ')}) - ${f32(D * HALF_LOG_2PI)}) + ldo_${q};`];
    return `  if (valid${q}) {\n${lines.map((l) => `    ${l}`).join('\n')}\n  }`;
  });
  return kernel('fwd', d.net, bindings, [
    ...prologue(d.net),
    ...declareArrays(headNet(d), S),
    ...load(d),
    ...emitForward(headNet(d), S),
    ...epilogue(d),
    ...store,
  ], label('fwd', d));
}

/**
 * Bindings: in0… (G, the output cotangent, among them at `g`), [DIN: the input's cotangent
 * [B, inW] then the context's [B, nc]], PART [threads, headParamCount]. `withInput` = false
 * skips DIN (neither the input nor the context needs a cotangent).
 */
export function flowHeadReverseKernel(d: FlowHeadDesc, withInput: boolean, g: SlotRef): KernelSpec {
  check(d);
  const D = d.dim;
  const S = d.net.samples;
  const Q = range(S);
  const n = headNet(d);
  const L = d.net.dims.length - 1;
  const nc = d.net.contextCols;
  const B = d.net.batch;
  const { inW, outW } = headWidths(d);
  const P0 = d.pre ? 2 * D : 0;
  const np = headParamCount(d);
  const off = packedOffsets(d.net.dims);
  const bindings: Binding[] = [...readBindings(d.net)];
  if (withInput) bindings.push({ name: 'DIN', kind: 'read_write' });
  bindings.push({ name: 'PART', kind: 'read_write' });
  const G = (idx: string) => at(g, idx);
  const Bc = f32(d.scaleBound);
  const body: string[] = [...prologue(d.net), ...declareArrays(n, S, { keep: true }), ...load(d), ...emitForward(n, S, { keep: true }), ...epilogue(d)];
  // The cotangents of y and ℓ' (zero for padding samples), then the head's derivatives: gd_q (direct
  // cotangent of h) and gz{L−1}_q (the conditioner's output cotangent).
  for (const q of Q) {
    body.push(`  var gy_${q}: array<f32, ${D}>;`, `  var gd_${q}: array<f32, ${D}>;`, `  var gz${L - 1}_${q}: array<f32, ${d.net.dims[L]}>;`);
    if (d.tail === 'state') {
      for (const j of range(D)) body.push(`  gy_${q}[${j}] = select(0.0, ${G(`row${q} * ${u32(outW)} + ${u32(j)}`)}, valid${q});`);
      body.push(`  let gld_${q} = select(0.0, ${G(`row${q} * ${u32(outW)} + ${u32(D)}`)}, valid${q});`);
    } else {
      body.push(`  let gld_${q} = select(0.0, ${G(`row${q}`)}, valid${q});`);
      for (const j of range(D)) body.push(`  gy_${q}[${j}] = -gld_${q} * y_${q}[${j}];`);
    }
    for (const j of range(D)) {
      const gy = `gy_${q}[${j}]`, h = `h_${q}[${j}]`;
      if (d.head !== 'maf' && d.keep![j] === 1) {
        body.push(`  gd_${q}[${j}] = ${gy};`);
        continue;
      }
      if (d.head === 'additive') body.push(`  gd_${q}[${j}] = ${gy};`, `  gz${L - 1}_${q}[${j}] = ${gy};`);
      else if (d.head === 'affine') {
        body.push(`  { let th = ${tanhB(d, `o_${q}[${j}]`)}; let e = exp(th * ${Bc});`,
          `    gd_${q}[${j}] = ${gy} * e;`,
          `    gz${L - 1}_${q}[${j}] = (${gy} * ${h} * e + gld_${q}) * (1.0 - th * th);`,
          `    gz${L - 1}_${q}[${D + j}] = ${gy}; }`);
      } else {
        body.push(`  { let th = ${tanhB(d, `o_${q}[${D + j}]`)}; let e = exp(-(th * ${Bc})); let z = (${h} - o_${q}[${j}]) * e;`,
          `    gd_${q}[${j}] = ${gy} * e;`,
          `    gz${L - 1}_${q}[${j}] = -${gy} * e;`,
          `    gz${L - 1}_${q}[${D + j}] = (-${gy} * z - gld_${q}) * (1.0 - th * th); }`);
      }
    }
    body.push(`  var gn_${q}: array<f32, ${D}>;`);
  }
  body.push(`  let po = tid * ${u32(np)};`);
  // The network's input cotangent: x columns into gn_q, context columns straight to DIN.
  const needIn = withInput || d.pre !== null;
  body.push(...emitReverse(n, S, {
    gradB: (k, j, v) => `PART[po + ${u32(P0 + off.b[k]!)} + ${j}] = ${v};`,
    gradW: (k, i, j, v) => `PART[po + ${u32(P0 + off.w[k]!)} + ${i} * ${u32(d.net.dims[k + 1]!)} + ${j}] = ${v};`,
    gradIn: needIn
      ? (q, i, v) => (nc && withInput
        ? `if (${i} < ${u32(D)}) { gn_${q}[${i}] = ${v}; } else if (valid${q}) { DIN[${u32(B * inW)} + row${q} * ${u32(nc)} + ${i} - ${u32(D)}] = ${v}; }`
        : `if (${i} < ${u32(D)}) { gn_${q}[${i}] = ${v}; }`)
      : null,
  }));
  // The cotangent of h: direct + through the conditioner (⊙ m for couplings), then through the ActNorm.
  for (const j of range(D)) {
    const viaNet = (q: number) => (d.keep && d.keep[j] === 0 ? '' : ` + gn_${q}[${j}]`);
    for (const q of Q) body.push(`  let gh${q}_${j} = gd_${q}[${j}]${viaNet(q)};`);
    const es = d.pre ? `exp(${at(d.pre.s, u32(j))})` : '';
    if (withInput) for (const q of Q) body.push(`  if (valid${q}) { DIN[row${q} * ${u32(inW)} + ${u32(j)}] = gh${q}_${j}${d.pre ? ` * ${es}` : ''}; }`);
    if (d.pre) {
      body.push(`  PART[po + ${u32(j)}] = ${Q.map((q) => `(gh${q}_${j} * xr_${q}[${j}] * ${es} + gld_${q})`).join(' + ')};`);
      body.push(`  PART[po + ${u32(D + j)}] = ${Q.map((q) => `gh${q}_${j}`).join(' + ')};`);
    }
  }
  if (withInput && d.stateIn) for (const q of Q) body.push(`  if (valid${q}) { DIN[row${q} * ${u32(inW)} + ${u32(D)}] = gld_${q}; }`);
  return kernel('rev', d.net, bindings, body, label(withInput ? 'rev' : 'rev_params', d));
}
