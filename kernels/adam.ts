/**
 * Adam / AdamW over one flat parameter buffer in one dispatch (Kingma & Ba, 2015; decoupled weight
 * decay: Loshchilov & Hutter, 2019, as torch.optim.AdamW):
 *   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
 *   p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε).
 * Step-dependent numbers arrive as uniforms, so one pipeline serves every step.
 */
import type { KernelSpec } from '../engine/backend';
import { entry1d, grid1d, spec, type Binding } from './wgsl';

/** Uniform layout (8 × f32): lr, beta1, beta2, eps, 1/(1−β1^t), 1/(1−β2^t), weightDecay, unused. */
export const ADAM_UNIFORM_FLOATS = 8;

export function adamKernel(n: number): KernelSpec {
  const bindings: Binding[] = [
    { name: 'hp', kind: 'uniform', type: 'AdamParams' },
    { name: 'p', kind: 'read_write' },
    { name: 'g', kind: 'read' },
    { name: 'm', kind: 'read_write' },
    { name: 'v', kind: 'read_write' },
  ];
  const preamble = `struct AdamParams { lr: f32, beta1: f32, beta2: f32, eps: f32, c1: f32, c2: f32, wd: f32, pad: f32 }`;
  const body = `  let gi = g[index];
  let mi = hp.beta1 * m[index] + (1.0 - hp.beta1) * gi;
  let vi = hp.beta2 * v[index] + (1.0 - hp.beta2) * gi * gi;
  m[index] = mi;
  v[index] = vi;
  let decayed = p[index] * (1.0 - hp.lr * hp.wd);
  p[index] = decayed - hp.lr * (mi * hp.c1) / (sqrt(vi * hp.c2) + hp.eps);`;
  return spec(`adam[${n}]`, bindings, entry1d(256, n, body, preamble), grid1d(n, 256));
}
