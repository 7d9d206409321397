/**
 * The one WGSL emitter for a dense MLP evaluated whole inside a shader (every MLP kernel of wgflow
 * is built from it: the `mlp` primitive's forward, reverse and forward-mode kernels, kernels/mlp/
 * kernels.ts). A network maps dims[0] inputs through dims[1..L−1] hidden widths (activation after
 * each, from the one table kernels/activations.ts) to dims[L] outputs (no activation):
 *
 *   z_k = a_k·(W_k ⊙ M_k) + b_k,   a_{k+1} = f(z_k)   (k < L − 1),   y = z_{L−1}
 *
 * with optional constant 0/1 masks M_k (MADE, Germain et al. 2015). Each thread owns S samples;
 * a layer loops over its outputs j and loads each weight once for all S samples (buffer loads are
 * SwiftShader's bottleneck; kernels/ode.ts measured ~5× for reuse across samples). Activations live
 * in private arrays a{k}_{q} (sample q), their derivatives f'(z) in d{k}_{q} when the reverse pass
 * needs them.
 *
 *  - forward:  the caller fills a0_{q} (and tangent rows ta0_{q}_{m}); the emitter leaves outputs in
 *    o_{q} (and output tangents to_{q}_{m} = J·t: forward mode, Griewank & Walther ch. 3);
 *  - reverse:  the caller fills gz{L−1}_{q} = ∂loss/∂y; the emitter walks the layers backwards:
 *    ∂b_k = Σ_q gz_k, ∂W_k = Σ_q a_kᵀ gz_k (⊙ M_k), gz_{k−1} = (gz_k·(W_k ⊙ M_k)ᵀ) ⊙ f'(z_{k−1}),
 *    and hands each sum and the input cotangent to the caller's writers.
 */
import { ACT, type Activation } from '../activations';
import { u32 } from '../wgsl';

/** Where an array lives: a WGSL storage array name and an element offset into it. */
export interface Loc {
  readonly buf: string;
  readonly off: number;
}

export interface MlpNet {
  /** Widths: inputs (incl. context columns), hidden…, outputs. At least one layer. */
  readonly dims: readonly number[];
  readonly activation: Activation;
  /** W_k [dims[k], dims[k+1]] row-major (for a·W) and b_k [dims[k+1]]. */
  readonly w: readonly Loc[];
  readonly b: readonly Loc[];
  /** Per layer, an optional 0/1 mask of W_k's shape. */
  readonly mask?: readonly (Loc | null)[];
}

/** Largest hidden/input/output width the emitters accept (private arrays per sample). */
export const MLP_MAX_WIDTH = 256;
/**
 * Loops over at most this many are unrolled by default. Inner loops (over a layer's inputs in the
 * forward pass, over its outputs in the reverse pass) are always unrolled: private arrays are then
 * indexed by constants (registers), and only the outer loop's one store per output is dynamic.
 * Measured on SwiftShader: runtime inner loops made the RealNVP step ~10× slower.
 */
const UNROLL = 8;

export const range = (n: number): number[] => [...Array(n).keys()];

/** `for` over 0..n−1 as a WGSL loop, or unrolled when short; `body` gets the index expression. */
export function loop(n: number, v: string, body: (i: string) => string[], ind: string, unroll = n <= UNROLL): string[] {
  if (unroll) return range(n).flatMap((i) => [`${ind}{`, ...body(`${i}u`).map((l) => `  ${l}`), `${ind}}`]);
  return [`${ind}for (var ${v} = 0u; ${v} < ${u32(n)}; ${v}++) {`, ...body(v).map((l) => `  ${l}`), `${ind}}`];
}

const at = (l: Loc, idx: string): string => `${l.buf}[${l.off ? `${u32(l.off)} + ` : ''}${idx}]`;

/** W_k[i, j] (masked when the layer has a mask). */
function weight(net: MlpNet, k: number, i: string, j: string): string {
  const idx = `${i} * ${u32(net.dims[k + 1]!)} + ${j}`;
  const m = net.mask?.[k];
  return m ? `(${at(net.w[k]!, idx)} * ${at(m, idx)})` : at(net.w[k]!, idx);
}

/**
 * Checks the layout; widths are bounded by `maxWidth` (the reverse pass keeps every layer's
 * activations per sample, so it takes MLP_MAX_WIDTH; forward-only kernels such as the ODE solvers'
 * keep two arrays and take wider networks).
 */
export function checkNet(net: MlpNet, maxWidth = MLP_MAX_WIDTH): void {
  const L = net.dims.length - 1;
  if (L < 1) throw new Error('mlp: needs at least one layer');
  if (net.w.length !== L || net.b.length !== L) throw new Error(`mlp: ${L} layers need ${L} weights and biases`);
  for (const d of net.dims) if (!Number.isInteger(d) || d < 1 || d > maxWidth) throw new RangeError(`mlp: widths must be integers in 1..${maxWidth}, got [${net.dims.join(', ')}]`);
}

/**
 * Private array of layer k's input: a{k}_{q} when the reverse pass needs every layer (`keep`); else
 * two arrays per sample, used in turn. Less private memory pays: the RK4 kernel (10 000 samples,
 * 10 steps, 3×64 SELU, SwiftShader on a loaded 2-core machine) took 4.9 s with one array per layer,
 * 2.8 s with two (bench/ A/B against the previous hand-written emitter: 2.7 s).
 */
const slot = (k: number, keep: boolean | undefined): number => (keep ? k : k % 2);

/** Declarations of the private arrays a sample needs: activations (and derivatives, tangents). */
export function declareArrays(net: MlpNet, S: number, opts: { keep?: boolean; tangents?: number } = {}): string[] {
  const L = net.dims.length - 1;
  const T = opts.tangents ?? 0;
  const widest = Math.max(...net.dims.slice(0, L));
  const out: string[] = [];
  for (const q of range(S)) {
    for (let k = 0; k < (opts.keep ? L : Math.min(L, 2)); k++) {
      const width = opts.keep ? net.dims[k]! : widest;
      out.push(`  var a${k}_${q}: array<f32, ${width}>;`);
      if (opts.keep && k > 0) out.push(`  var d${k}_${q}: array<f32, ${width}>;`);
      for (const m of range(T)) out.push(`  var ta${k}_${q}_${m}: array<f32, ${width}>;`);
    }
    out.push(`  var o_${q}: array<f32, ${net.dims[L]}>;`);
    for (const m of range(T)) out.push(`  var to_${q}_${m}: array<f32, ${net.dims[L]}>;`);
  }
  return out;
}

/**
 * Forward through every layer for S samples from a0_{q} (filled by the caller) to o_{q}; with
 * `keep`, f'(z) of every hidden unit goes to d{k}_{q} (for the reverse pass); with `tangents` = T,
 * tangent rows ta0_{q}_{m} are pushed forward to to_{q}_{m}.
 */
export function emitForward(net: MlpNet, S: number, opts: { keep?: boolean; tangents?: number } = {}): string[] {
  checkNet(net, opts.keep ? MLP_MAX_WIDTH : 4096);
  const L = net.dims.length - 1;
  const T = opts.tangents ?? 0;
  const Q = range(S);
  const M = range(T);
  const lines: string[] = [];
  for (let k = 0; k < L; k++) {
    const nIn = net.dims[k]!;
    const nOut = net.dims[k + 1]!;
    const last = k === L - 1;
    const src = slot(k, opts.keep);
    const dst = slot(k + 1, opts.keep);
    const outA = (q: number) => (last ? `o_${q}` : `a${dst}_${q}`);
    const outT = (q: number, m: number) => (last ? `to_${q}_${m}` : `ta${dst}_${q}_${m}`);
    lines.push(...loop(nOut, 'j', (j) => {
      const b: string[] = [`let bj = ${at(net.b[k]!, j)};`];
      for (const q of Q) b.push(`var z${q} = bj;`);
      for (const q of Q) for (const m of M) b.push(`var tz${q}_${m} = 0.0;`);
      // Interleaved fma chains, one per sample (one long chain of adds is latency-bound).
      b.push(...loop(nIn, 'i', (i) => [
        `let w = ${weight(net, k, i, j)};`,
        ...Q.map((q) => `z${q} = fma(a${src}_${q}[${i}], w, z${q});`),
        ...Q.flatMap((q) => M.map((m) => `tz${q}_${m} = fma(ta${src}_${q}_${m}[${i}], w, tz${q}_${m});`)),
      ], '', true));
      for (const q of Q) {
        if (last) {
          b.push(`${outA(q)}[${j}] = z${q};`);
          for (const m of M) b.push(`${outT(q, m)}[${j}] = tz${q}_${m};`);
          continue;
        }
        b.push(`${outA(q)}[${j}] = ${ACT[net.activation].wgsl(`z${q}`)};`);
        if (opts.keep || T > 0) b.push(`let dz${q} = ${ACT[net.activation].dwgsl(`z${q}`)};`);
        if (opts.keep) b.push(`d${k + 1}_${q}[${j}] = dz${q};`);
        for (const m of M) b.push(`${outT(q, m)}[${j}] = dz${q} * tz${q}_${m};`);
      }
      return b;
    }, '  ', nOut <= 4));
  }
  return lines;
}

export interface ReverseWriters {
  /** Store the (sample-summed) gradient of b_k[j]. */
  gradB(k: number, j: string, value: string): string;
  /** Store the (sample-summed, masked) gradient of W_k[i, j]. */
  gradW(k: number, i: string, j: string, value: string): string;
  /** Store sample q's input cotangent at input column i; null when no one needs it. */
  gradIn: ((q: number, i: string, value: string) => string) | null;
}

/**
 * Reverse pass for S samples after `emitForward(…, { keep: true })`: the caller declares and fills
 * gz{L−1}_{q} (array<f32, dims[L]>, the output cotangent, zero for padding samples); each layer's
 * parameter gradients and the input cotangent go to the writers.
 */
export function emitReverse(net: MlpNet, S: number, w: ReverseWriters): string[] {
  const L = net.dims.length - 1;
  const Q = range(S);
  const lines: string[] = [];
  for (let k = L - 1; k >= 0; k--) {
    const nIn = net.dims[k]!;
    const nOut = net.dims[k + 1]!;
    const gz = (q: number, j: string) => `gz${k}_${q}[${j}]`;
    lines.push(...loop(nOut, 'j', (j) => [w.gradB(k, j, Q.map((q) => gz(q, j)).join(' + '))], '  '));
    const needIn = k > 0 || w.gradIn !== null;
    if (k > 0) for (const q of Q) lines.push(`  var gz${k - 1}_${q}: array<f32, ${nIn}>;`);
    // One input row i at a time: W[i, :] loaded once, dW[i, :] stored once, and the cotangent of
    // input i accumulated in a register per sample.
    lines.push(...loop(nIn, 'i', (i) => {
      const b: string[] = [];
      if (needIn) for (const q of Q) b.push(`var gn${q} = 0.0;`);
      for (const q of Q) b.push(`let ai${q} = a${k}_${q}[${i}];`);
      const m = net.mask?.[k];
      const idx = (j: string) => `${i} * ${u32(nOut)} + ${j}`;
      b.push(...loop(nOut, 'j', (j) => {
        // The mask is loaded once and serves the weight and its gradient.
        const inner: string[] = m ? [`let mk = ${at(m, idx(j))};`] : [];
        const sum = Q.map((q) => `ai${q} * ${gz(q, j)}`).join(' + ');
        inner.push(w.gradW(k, i, j, m ? `(${sum}) * mk` : sum));
        if (needIn) {
          inner.push(`let w = ${m ? `${at(net.w[k]!, idx(j))} * mk` : at(net.w[k]!, idx(j))};`);
          for (const q of Q) inner.push(`gn${q} = fma(${gz(q, j)}, w, gn${q});`);
        }
        return inner;
      }, '', true));
      if (k > 0) for (const q of Q) b.push(`gz${k - 1}_${q}[${i}] = gn${q} * d${k}_${q}[${i}];`);
      else if (w.gradIn) for (const q of Q) b.push(w.gradIn(q, i, `gn${q}`));
      return b;
    }, '  ', false));
  }
  return lines;
}
