/**
 * Fused ODE kernels for flow-matching vector fields: the whole MLP v(x, t) is evaluated inside the
 * shader with its weights read from the flat parameter buffer (engine/optim.ts ParamSet) at offsets
 * baked into the source, so one dispatch moves a batch through one or many solver steps with no
 * intermediate tensors.
 *
 *  - `fixedStepKernel`: Euler, midpoint or RK4 (Butcher tableaux below), `steps` steps per dispatch
 *    from uniforms (t0, dt, steps); optionally accumulates the path energy ∫‖v‖² dt with the
 *    solver's own quadrature weights (for NPE, SPEC §3).
 *  - `cnfKernel`: RK4 on the augmented CNF state [x, ∫ div v dt] (run backwards in time for
 *    log p(x)), with the exact divergence (d forward-mode tangents e_1..e_d pushed through the MLP
 *    next to the primal) or Hutchinson's εᵀ(∂v/∂x)ε with a probe ε fixed per sample for the solve.
 *  - `fieldKernel`: one evaluation of v (and optionally div v) for a batch (tests, references).
 *
 * The network (and its forward-mode tangents) comes from the one MLP emitter, kernels/mlp/emit.ts.
 * Code shape (measured on SwiftShader, see bench/cfm-sample.ts): each thread owns S samples
 * (default 8). A layer loops over its outputs j at run time and, for each j, reads the column
 * W[:, j] once (fully unrolled over the inputs k) and uses every weight for all S samples (and all
 * tangents): buffer loads are SwiftShader's bottleneck (a load costs ~15 FMAs), so reuse across
 * samples is what pays. Activations live in private arrays indexed by constants (registers or
 * stack slots) except for the one dynamic store per output. One sample per thread runs ~5× slower.
 */
import type { KernelSpec } from '../engine/backend';
import { activationWgsl, type Activation } from './activations';
import { declareArrays, emitForward, range, type MlpNet } from './mlp/emit';
import { packedOffsets, workgroup } from './mlp/kernels';
import { f32, u32, type Binding } from './wgsl';

export type MlpActivation = Activation;
export { activationWgsl };

/** A dense MLP [x, t] → … → d stored as W_k ([dims[k], dims[k+1]], row-major, for x·W) and b_k. */
export interface MlpLayout {
  /** Layer widths: dims[0] = d + 1 + context (state, then t, then the context columns), dims[last] = d. */
  readonly dims: readonly number[];
  /**
   * Context columns after t (0 or absent: an unconditional field). Conditional generation feeds a
   * label's one-hot or a context vector here, constant along a trajectory (cfm/conditional.ts).
   */
  readonly context?: number;
  /** Activation after every layer except the last. */
  readonly activation: MlpActivation;
  /** Element offsets of W_k and b_k in the flat parameter buffer. */
  readonly wOffsets: readonly number[];
  readonly bOffsets: readonly number[];
}

/** The standard layout [W0, b0, W1, b1, …] packed from offset 0 (what cfm/mlp.ts builds). */
export function packedLayout(dims: readonly number[], activation: MlpActivation, context = 0): MlpLayout {
  const { w: wOffsets, b: bOffsets } = packedOffsets(dims);
  return context > 0 ? { dims: [...dims], activation, wOffsets, bOffsets, context } : { dims: [...dims], activation, wOffsets, bOffsets };
}

/** Context columns of a layout (0 for an unconditional field). */
export function contextCols(l: MlpLayout): number {
  return l.context ?? 0;
}

/** Number of parameters the layout spans (the flat buffer must hold at least this many). */
export function layoutSize(l: MlpLayout): number {
  const last = l.dims.length - 2;
  return l.bOffsets[last]! + l.dims[last + 1]!;
}

export function stateDim(l: MlpLayout): number {
  const d = l.dims[l.dims.length - 1]!;
  const c = contextCols(l);
  if (l.dims[0] !== d + 1 + c) throw new Error(`MLP layout: input width ${l.dims[0]} must be the output width ${d} + 1${c ? ` + ${c} context columns` : ''} (state, then t${c ? ', then the context' : ''})`);
  return d;
}

/**
 * Classifier-free guidance (Ho & Salimans 2022) in the sampling kernels: the field integrated is
 *   ṽ = v(x, t, ∅) + w·(v(x, t, c) − v(x, t, ∅)),
 * ∅ the null context (all zeros: the dropped label of training). w = 1 is the plain conditional
 * field (one network evaluation), w = 0 the unconditional one, w > 1 sharpens. w is baked into
 * the source (a pipeline per scale).
 */
export interface ContextOptions {
  /** Guidance scale w (default 1: v(x, t, c) alone). */
  guidance?: number;
}


/** What the generated field function computes besides v. */
export type JvpMode = 'none' | 'trace' | 'probe';

/**
 * WGSL for S samples at one time t, from the one MLP emitter (kernels/mlp/emit.ts):
 *   'none':  fn field(x: array<array<f32, D>, S>, t: f32) -> array<array<f32, D>, S>
 *   'trace': fn field_div(x, t) -> FieldDiv { v, div: array<f32, S> } with div = tr ∂v/∂x exactly
 *            (D tangents e_m per sample pushed forward: forward mode);
 *   'probe': fn field_div(x, t, e: array<array<f32, D>, S>) -> FieldDiv with div = eᵀ(∂v/∂x)e.
 * Weights are read from the storage array `P` at offsets baked in.
 */
export function mlpWgsl(l: MlpLayout, S: number, mode: JvpMode = 'none'): string {
  const d = stateDim(l);
  const C = contextCols(l);
  const cArg = C > 0 ? `, c: array<array<f32, ${C}>, ${S}>` : '';
  const T = mode === 'trace' ? d : mode === 'probe' ? 1 : 0; // tangents per sample
  const net: MlpNet = { dims: l.dims, activation: l.activation, w: l.wOffsets.map((off) => ({ buf: 'P', off })), b: l.bOffsets.map((off) => ({ buf: 'P', off })) };
  const vecT = `array<array<f32, ${d}>, ${S}>`;
  const L: string[] = [];
  if (mode === 'none') L.push(`fn field(x: ${vecT}, t: f32${cArg}) -> ${vecT} {`);
  else {
    L.push(`struct FieldDiv { v: ${vecT}, div: array<f32, ${S}> }`);
    L.push(`fn field_div(x: ${vecT}, t: f32${cArg}${mode === 'probe' ? `, e: ${vecT}` : ''}) -> FieldDiv {`);
  }
  // Private arrays start zeroed: tangent rows need only their nonzero entries.
  L.push(...declareArrays(net, S, { tangents: T }));
  for (const q of range(S)) {
    for (let k = 0; k < d; k++) L.push(`  a0_${q}[${k}] = x[${q}][${k}];`);
    L.push(`  a0_${q}[${d}] = t;`);
    for (let k = 0; k < C; k++) L.push(`  a0_${q}[${d + 1 + k}] = c[${q}][${k}];`);
    if (mode === 'trace') for (let m = 0; m < d; m++) L.push(`  ta0_${q}_${m}[${m}] = 1.0;`);
    if (mode === 'probe') for (let k = 0; k < d; k++) L.push(`  ta0_${q}_0[${k}] = e[${q}][${k}];`);
  }
  L.push(...emitForward(net, S, { tangents: T }));
  L.push(`  var v: ${vecT};`);
  for (const q of range(S)) for (let j = 0; j < d; j++) L.push(`  v[${q}][${j}] = o_${q}[${j}];`);
  if (T > 0) {
    L.push(`  var div: array<f32, ${S}>;`);
    for (const q of range(S)) {
      // trace: Σ_m (J e_m)_m; probe: eᵀ (J e).
      const terms = mode === 'trace' ? range(d).map((m) => `to_${q}_${m}[${m}]`) : range(d).map((j) => `e[${q}][${j}] * to_${q}_0[${j}]`);
      L.push(`  div[${q}] = ${terms.join(' + ')};`);
    }
  }
  L.push(mode === 'none' ? '  return v;' : '  return FieldDiv(v, div);', '}');
  return L.join('\n');
}

/**
 * For a conditional layout: WGSL `fn vfield(x, t, c)`, the guided field of ContextOptions (one
 * network evaluation at w = 1, two otherwise), and the expression calling it on (xs, ts, cx).
 * For an unconditional layout: `field(xs, ts)` and no helper.
 */
function guidedWgsl(l: MlpLayout, S: number, guidance = 1): { fn: string; call: (x: string, t: string) => string } {
  const d = stateDim(l);
  const C = contextCols(l);
  if (C === 0) {
    if (guidance !== 1) throw new RangeError(`guidance ${guidance}: an unconditional field takes no guidance scale (only 1)`);
    return { fn: '', call: (x, t) => `field(${x}, ${t})` };
  }
  if (!Number.isFinite(guidance)) throw new RangeError(`guidance: ${guidance} is not a finite number`);
  const vecT = `array<array<f32, ${d}>, ${S}>`;
  const body = guidance === 1
    ? '  return field(x, t, c);'
    : [`  var cnull: array<array<f32, ${C}>, ${S}>;`, '  let vc = field(x, t, c);', '  let vn = field(x, t, cnull);', `  var v: ${vecT};`,
      ...range(S).flatMap((q) => range(d).map((j) => `  v[${q}][${j}] = fma(${f32(guidance)}, vc[${q}][${j}] - vn[${q}][${j}], vn[${q}][${j}]);`)), '  return v;'].join('\n');
  return { fn: `fn vfield(x: ${vecT}, t: f32, c: array<array<f32, ${C}>, ${S}>) -> ${vecT} {\n${body}\n}`, call: (x, t) => `vfield(${x}, ${t}, cx)` };
}

export type FixedMethod = 'euler' | 'midpoint' | 'rk4';

/** Explicit Butcher tableaux: stage time offsets c, stage coefficients a (row s: a[s][0..s-1]), weights b. */
export const TABLEAUX: Record<FixedMethod, { c: number[]; a: number[][]; b: number[] }> = {
  euler: { c: [0], a: [[]], b: [1] },
  midpoint: { c: [0, 0.5], a: [[], [0.5]], b: [0, 1] },
  rk4: { c: [0, 0.5, 0.5, 1], a: [[], [0.5], [0, 0.5], [0, 0, 1]], b: [1 / 6, 1 / 3, 1 / 3, 1 / 6] },
};

/**
 * Uniforms of the ODE kernels: t0, dt (f32), steps, n (u32). The batch size n is a uniform, not a
 * constant, so one pipeline serves every batch size (the dispatch size comes from the spec).
 */
export function odeUniforms(t0: number, dt: number, steps: number, n: number): Uint8Array {
  const buf = new ArrayBuffer(16);
  new Float32Array(buf, 0, 2).set([t0, dt]);
  new Uint32Array(buf, 8, 2).set([steps >>> 0, n >>> 0]);
  return new Uint8Array(buf);
}

const ODE_STRUCT = 'struct OdeParams { t0: f32, dt: f32, steps: u32, n: u32 }';
/** Default samples per thread (see the header). */
export const SAMPLES_PER_THREAD = 8;

/**
 * Bindings with the parameter buffer `P` declared as a fixed-size array: constant indices into it
 * need no run-time bounds clamp.
 */
function kernelSpec(name: string, bindings: readonly Binding[], source: (wg: number) => string, threads: number, pSize: number): KernelSpec {
  const wg = workgroup(threads);
  const decl = bindings
    .map((b, i) => {
      if (b.kind === 'uniform') return `@group(0) @binding(${i}) var<uniform> ${b.name}: ${b.type};`;
      const access = b.kind === 'read' ? 'read' : 'read_write';
      const type = b.name === 'P' ? `array<f32, ${pSize}>` : `array<${b.type ?? 'f32'}>`;
      return `@group(0) @binding(${i}) var<storage, ${access}> ${b.name}: ${type};`;
    })
    .join('\n');
  const groups = Math.ceil(threads / wg);
  if (groups > 65535) throw new RangeError(`${name}: ${threads} threads exceed one dispatch (raise samples per thread)`);
  return { name: `${name}/wg${wg}`, source: `${decl}\n${source(wg)}`, bindings: bindings.map((b) => b.kind), workgroups: [groups, 1, 1] };
}

/** Prologue: thread → samples base..base+S-1 (clamped to n − 1 for loads; stores are guarded). */
function samplePrologue(S: number): string {
  return `  let base = gid.x * ${u32(S)};
  if (base >= up.n) { return; }
${range(S).map((s) => `  let r${s} = min(base + ${u32(s)}, up.n - 1u);`).join('\n')}`;
}

function loadState(d: number, S: number, buf: string, name: string): string {
  return `  var ${name}: array<array<f32, ${d}>, ${S}>;\n${range(S).map((s) => range(d).map((k) => `  ${name}[${s}][${k}] = ${buf}[r${s} * ${u32(d)} + ${u32(k)}];`).join('\n')).join('\n')}`;
}

function storeState(d: number, S: number, buf: string, name: string): string {
  return range(S)
    .map((s) => `  if (base + ${u32(s)} < up.n) {\n${range(d).map((k) => `    ${buf}[r${s} * ${u32(d)} + ${u32(k)}] = ${name}[${s}][${k}];`).join('\n')}\n  }`)
    .join('\n');
}

export interface FixedStepOptions extends ContextOptions {
  /** Accumulate E[i] += ∫‖v‖² dt (quadrature with the method's weights b). */
  energy?: boolean;
  samplesPerThread?: number;
}

/**
 * Integrates X (n × d, in place) with `steps` steps of `method` from t0 by dt (uniforms). The stage
 * loop is a run-time loop, so the MLP is emitted once. A conditional layout reads each sample's
 * context row from CTX (n × context) once: constant along the trajectory.
 * Bindings: uniforms, P (parameters), X, [E], [CTX].
 */
export function fixedStepKernel(l: MlpLayout, n: number, method: FixedMethod, opts: FixedStepOptions = {}): KernelSpec {
  const d = stateDim(l);
  const S = opts.samplesPerThread ?? SAMPLES_PER_THREAD;
  const tab = TABLEAUX[method];
  const NS = tab.c.length;
  const bindings: Binding[] = [
    { name: 'up', kind: 'uniform', type: 'OdeParams' },
    { name: 'P', kind: 'read' },
    { name: 'X', kind: 'read_write' },
  ];
  if (opts.energy) bindings.push({ name: 'E', kind: 'read_write' });
  const C = contextCols(l);
  if (C > 0) bindings.push({ name: 'CTX', kind: 'read' });
  const g = guidedWgsl(l, S, opts.guidance);
  const stageSel: string[] = [];
  for (let st = 1; st < NS; st++) {
    const upd = range(S).flatMap((s) =>
      range(d).map((i) => `xs[${s}][${i}] = x[${s}][${i}]${tab.a[st]!.map((a, r) => (a === 0 ? '' : ` + ${f32(a)} * h * ks[${r}][${s}][${i}]`)).join('')};`),
    );
    stageSel.push(`      if (st == ${u32(st)}) {\n        ${upd.join('\n        ')}\n        ts = t + ${f32(tab.c[st]!)} * h;\n      }`);
  }
  const src = (wg: number) => `${ODE_STRUCT}
${mlpWgsl(l, S)}
${g.fn}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${samplePrologue(S)}
${loadState(d, S, 'X', 'x')}
${C > 0 ? loadState(C, S, 'CTX', 'cx') : ''}
  let h = up.dt;
  var bw = array<f32, ${NS}>(${tab.b.map(f32).join(', ')});
  var energy = array<f32, ${S}>();
  for (var step = 0u; step < up.steps; step++) {
    let t = up.t0 + f32(step) * h;
    var acc = array<array<f32, ${d}>, ${S}>();
    var ks: array<array<array<f32, ${d}>, ${S}>, ${NS}>;
    for (var st = 0u; st < ${u32(NS)}; st++) {
      var xs = x;
      var ts = t;
${stageSel.join('\n')}
      let k = ${g.call('xs', 'ts')};
      ks[st] = k;
      let b = bw[st];
${range(S).map((s) => `      energy[${s}] = fma(b * abs(h), ${range(d).map((i) => `k[${s}][${i}] * k[${s}][${i}]`).join(' + ')}, energy[${s}]);\n${range(d).map((i) => `      acc[${s}][${i}] = fma(b, k[${s}][${i}], acc[${s}][${i}]);`).join('\n')}`).join('\n')}
    }
${range(S).map((s) => range(d).map((i) => `    x[${s}][${i}] = fma(h, acc[${s}][${i}], x[${s}][${i}]);`).join('\n')).join('\n')}
  }
${storeState(d, S, 'X', 'x')}
${opts.energy ? range(S).map((s) => `  if (base + ${u32(s)} < up.n) { E[r${s}] = E[r${s}] + energy[${s}]; }`).join('\n') : '  _ = energy;'}
}`;
  return kernelSpec(`ode_${method}[${n}x${l.dims.join('-')}${opts.energy ? '+energy' : ''}${C ? `+c${C}/w${opts.guidance ?? 1}` : ''}/S${S}]`, bindings, src, Math.ceil(n / S), layoutSize(l));
}

export interface CnfOptions {
  /** 'trace': exact divergence; 'probe': Hutchinson with the probe buffer E (n × d). */
  divergence: 'trace' | 'probe';
  samplesPerThread?: number;
}

/**
 * RK4 on the augmented state [x, ℓ] with dx/dt = v(x, t), dℓ/dt = div v(x, t), `steps` steps from
 * t0 by dt (negative dt integrates backwards). X (n × d) is updated in place, Lacc[i] += ℓ change.
 * Bindings: uniforms, P, X, Lacc, [E (probe, n × d)], [CTX (conditional layouts, n × context)].
 */
export function cnfKernel(l: MlpLayout, n: number, opts: CnfOptions): KernelSpec {
  const d = stateDim(l);
  const S = opts.samplesPerThread ?? Math.max(2, Math.floor(SAMPLES_PER_THREAD / (opts.divergence === 'trace' ? d : 2)));
  const tab = TABLEAUX.rk4;
  const bindings: Binding[] = [
    { name: 'up', kind: 'uniform', type: 'OdeParams' },
    { name: 'P', kind: 'read' },
    { name: 'X', kind: 'read_write' },
    { name: 'Lacc', kind: 'read_write' },
  ];
  if (opts.divergence === 'probe') bindings.push({ name: 'E', kind: 'read' });
  const C = contextCols(l);
  if (C > 0) bindings.push({ name: 'CTX', kind: 'read' });
  const stageSel: string[] = [];
  for (let st = 1; st < 4; st++) {
    const upd = range(S).flatMap((s) =>
      range(d).map((i) => `xs[${s}][${i}] = x[${s}][${i}]${tab.a[st]!.map((a, r) => (a === 0 ? '' : ` + ${f32(a)} * h * ks[${r}][${s}][${i}]`)).join('')};`),
    );
    stageSel.push(`      if (st == ${u32(st)}) {\n        ${upd.join('\n        ')}\n        ts = t + ${f32(tab.c[st]!)} * h;\n      }`);
  }
  const src = (wg: number) => `${ODE_STRUCT}
${mlpWgsl(l, S, opts.divergence)}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${samplePrologue(S)}
${loadState(d, S, 'X', 'x')}
${opts.divergence === 'probe' ? loadState(d, S, 'E', 'e') : ''}
${C > 0 ? loadState(C, S, 'CTX', 'cx') : ''}
  let h = up.dt;
  var bw = array<f32, 4>(${tab.b.map(f32).join(', ')});
  var ell = array<f32, ${S}>();
  for (var step = 0u; step < up.steps; step++) {
    let t = up.t0 + f32(step) * h;
    var acc = array<array<f32, ${d}>, ${S}>();
    var ks: array<array<array<f32, ${d}>, ${S}>, 4>;
    for (var st = 0u; st < 4u; st++) {
      var xs = x;
      var ts = t;
${stageSel.join('\n')}
      let fd = field_div(xs, ts${C > 0 ? ', cx' : ''}${opts.divergence === 'probe' ? ', e' : ''});
      ks[st] = fd.v;
      let b = bw[st] * h;
${range(S).map((s) => `      ell[${s}] = fma(b, fd.div[${s}], ell[${s}]);\n${range(d).map((i) => `      acc[${s}][${i}] = fma(bw[st], fd.v[${s}][${i}], acc[${s}][${i}]);`).join('\n')}`).join('\n')}
    }
${range(S).map((s) => range(d).map((i) => `    x[${s}][${i}] = fma(h, acc[${s}][${i}], x[${s}][${i}]);`).join('\n')).join('\n')}
  }
${storeState(d, S, 'X', 'x')}
${range(S).map((s) => `  if (base + ${u32(s)} < up.n) { Lacc[r${s}] = Lacc[r${s}] + ell[${s}]; }`).join('\n')}
}`;
  return kernelSpec(`cnf_rk4_${opts.divergence}[${n}x${l.dims.join('-')}/S${S}]`, bindings, src, Math.ceil(n / S), layoutSize(l));
}

/**
 * One evaluation at time `t` (uniform t0): V = v(X, t) and, unless mode is 'none', Div = div v
 * (exact, or the probe estimate with E). A conditional layout reads CTX (n × context); mode 'none'
 * then evaluates the guided field with `guidance` (ContextOptions). Bindings: uniforms, P, X, V,
 * [Div], [E], [CTX].
 */
export function fieldKernel(l: MlpLayout, n: number, mode: JvpMode = 'none', samplesPerThread = 4, ctxOpts: ContextOptions = {}): KernelSpec {
  const d = stateDim(l);
  const C = contextCols(l);
  if (C > 0 && mode !== 'none' && (ctxOpts.guidance ?? 1) !== 1) throw new RangeError('fieldKernel: guidance applies to the field alone (mode none)');
  const S = samplesPerThread;
  const bindings: Binding[] = [
    { name: 'up', kind: 'uniform', type: 'OdeParams' },
    { name: 'P', kind: 'read' },
    { name: 'X', kind: 'read' },
    { name: 'V', kind: 'read_write' },
  ];
  if (mode !== 'none') bindings.push({ name: 'Div', kind: 'read_write' });
  if (mode === 'probe') bindings.push({ name: 'E', kind: 'read' });
  if (C > 0) bindings.push({ name: 'CTX', kind: 'read' });
  const g = mode === 'none' ? guidedWgsl(l, S, ctxOpts.guidance) : { fn: '', call: () => '' };
  const src = (wg: number) => `${ODE_STRUCT}
${mlpWgsl(l, S, mode)}
${g.fn}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u) {
${samplePrologue(S)}
${loadState(d, S, 'X', 'x')}
${mode === 'probe' ? loadState(d, S, 'E', 'e') : ''}
${C > 0 ? loadState(C, S, 'CTX', 'cx') : ''}
${mode === 'none' ? `  let v = ${g.call('x', 'up.t0')};` : `  let fd = field_div(x, up.t0${C > 0 ? ', cx' : ''}${mode === 'probe' ? ', e' : ''});\n  let v = fd.v;`}
${storeState(d, S, 'V', 'v')}
${mode === 'none' ? '' : range(S).map((s) => `  if (base + ${u32(s)} < up.n) { Div[r${s}] = fd.div[${s}]; }`).join('\n')}
}`;
  return kernelSpec(`field_${mode}[${n}x${l.dims.join('-')}${C ? `+c${C}/w${ctxOpts.guidance ?? 1}` : ''}/S${S}]`, bindings, src, Math.ceil(n / S), layoutSize(l));
}
