/**
 * The one activation table: value and derivative of every activation, in WGSL (for kernels), as
 * engine expressions (for the tape's elementwise kernels and VJP rules) and in float64 (for the
 * reference). Every emitter (kernels/elementwise.ts, kernels/mlp/, the CFM step and the ODE kernels)
 * and engine/reference.ts read it, so an activation is defined once.
 *
 *   relu(z) = max(z, 0)                         relu'  = 1[z > 0]
 *   selu(z) = λz (z > 0), λα(eᶻ − 1) otherwise   selu'  = λ (z > 0), λα·eᶻ otherwise  (Klambauer et al., 2017)
 *   tanh(z)                                      tanh'  = 1 − tanh²
 *   sigmoid(z) = 1/(1 + e⁻ᶻ)                     σ'     = σ(1 − σ)
 *   silu(z) = z·σ(z)                             silu'  = σ(z)(1 + z(1 − σ(z)))   (Hendrycks & Gimpel; Elfwing et al.)
 *
 * `dFromY` gives the derivative from the output y = f(z) where that is possible (all but silu): the
 * fused `linear` primitive keeps only y, so its VJP rule uses it.
 */
import type { Expr } from './elementwise';
import { f32 } from './wgsl';

/** SELU constants (Klambauer et al., 2017). */
export const SELU_LAMBDA = 1.0507009873554805;
export const SELU_ALPHA = 1.6732632423543772;

export const ACTIVATIONS = ['none', 'relu', 'selu', 'tanh', 'sigmoid', 'silu'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export interface ActivationDef {
  /** WGSL of f(z) for an operand string (stable: no NaN for large |z|). */
  readonly wgsl: (z: string) => string;
  /** WGSL of f'(z). */
  readonly dwgsl: (z: string) => string;
  /** f'(z) as an engine expression of z. */
  readonly dexpr: (z: Expr) => Expr;
  /** f'(z) as an engine expression of y = f(z); absent where y does not determine it (silu). */
  readonly dFromY?: (y: Expr) => Expr;
  readonly f64: (z: number) => number;
  readonly df64: (z: number) => number;
}

const c = (v: number): Expr => ({ op: 'const', v });
const mul = (a: Expr, b: Expr): Expr => ({ op: 'mul', a, b });
const sub = (a: Expr, b: Expr): Expr => ({ op: 'sub', a, b });
const add = (a: Expr, b: Expr): Expr => ({ op: 'add', a, b });
const sig64 = (z: number): number => 1 / (1 + Math.exp(-z));
const L = SELU_LAMBDA;
const LA = SELU_LAMBDA * SELU_ALPHA;

export const ACT: { readonly [A in Activation]: ActivationDef } = {
  none: {
    wgsl: (z) => z,
    dwgsl: () => '1.0',
    dexpr: () => c(1),
    dFromY: () => c(1),
    f64: (z) => z,
    df64: () => 1,
  },
  relu: {
    wgsl: (z) => `max(${z}, 0.0)`,
    dwgsl: (z) => `select(0.0, 1.0, ${z} > 0.0)`,
    dexpr: (z) => ({ op: 'step', a: z }),
    dFromY: (y) => ({ op: 'step', a: y }),
    f64: (z) => (z > 0 ? z : 0),
    df64: (z) => (z > 0 ? 1 : 0),
  },
  selu: {
    wgsl: (z) => `select(${f32(LA)} * (exp(min(${z}, 0.0)) - 1.0), ${f32(L)} * ${z}, ${z} > 0.0)`,
    dwgsl: (z) => `select(${f32(LA)} * exp(min(${z}, 0.0)), ${f32(L)}, ${z} > 0.0)`,
    dexpr: (z) => ({ op: 'where', c: { op: 'step', a: z }, a: c(L), b: mul(c(LA), { op: 'exp', a: z }) }),
    // y > 0 ⇔ z > 0; below, y = λα(eᶻ − 1) so f' = λα·eᶻ = y + λα.
    dFromY: (y) => ({ op: 'where', c: { op: 'step', a: y }, a: c(L), b: add(y, c(LA)) }),
    f64: (z) => (z > 0 ? L * z : LA * (Math.exp(z) - 1)),
    df64: (z) => (z > 0 ? L : LA * Math.exp(z)),
  },
  tanh: {
    // tanh via exp overflows to NaN on some drivers past |z| ≈ 44; it is ±1 in f32 beyond 10.
    wgsl: (z) => `tanh(clamp(${z}, -10.0, 10.0))`,
    dwgsl: (z) => `(1.0 - tanh(clamp(${z}, -10.0, 10.0)) * tanh(clamp(${z}, -10.0, 10.0)))`,
    dexpr: (z) => sub(c(1), mul({ op: 'tanh', a: z }, { op: 'tanh', a: z })),
    dFromY: (y) => sub(c(1), mul(y, y)),
    f64: Math.tanh,
    df64: (z) => 1 - Math.tanh(z) ** 2,
  },
  sigmoid: {
    wgsl: (z) => `(1.0 / (1.0 + exp(-${z})))`,
    dwgsl: (z) => `(1.0 / (1.0 + exp(-${z})) * (1.0 - 1.0 / (1.0 + exp(-${z}))))`,
    dexpr: (z) => mul({ op: 'sigmoid', a: z }, sub(c(1), { op: 'sigmoid', a: z })),
    dFromY: (y) => mul(y, sub(c(1), y)),
    f64: sig64,
    df64: (z) => sig64(z) * (1 - sig64(z)),
  },
  silu: {
    wgsl: (z) => `(${z} / (1.0 + exp(-${z})))`,
    dwgsl: (z) => `(1.0 / (1.0 + exp(-${z})) * (1.0 + ${z} * (1.0 - 1.0 / (1.0 + exp(-${z})))))`,
    dexpr: (z) => mul({ op: 'sigmoid', a: z }, add(c(1), mul(z, sub(c(1), { op: 'sigmoid', a: z })))),
    f64: (z) => z * sig64(z),
    df64: (z) => sig64(z) * (1 + z * (1 - sig64(z))),
  },
};

/** WGSL helpers `act(z)` and `dact(z)` for one activation (kernels that evaluate a whole network). */
export function activationWgsl(a: Activation): string {
  return `fn act(z: f32) -> f32 {\n  return ${ACT[a].wgsl('z')};\n}\nfn dact(z: f32) -> f32 {\n  return ${ACT[a].dwgsl('z')};\n}`;
}

export function isActivation(a: unknown): a is Activation {
  return typeof a === 'string' && (ACTIVATIONS as readonly string[]).includes(a);
}
