/** Shared test utilities: one backend per test file, float64 references, tolerances, FD gradients. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';
import { init, sum, mul, tensor, valueAndGrad, getBackend, type Tensor } from '../engine';
import { Rng } from '../engine/philox';
import { Ref } from '../engine/reference';
import type { WebGPUBackend } from '../engine/webgpu-backend';

let backend: Promise<WebGPUBackend> | null = null;
export function gpu(): Promise<WebGPUBackend> {
  backend ??= init({ runtime: 'node' });
  return backend;
}

/** Random float64 data already rounded to float32, so GPU and reference see the same inputs. */
export function rand(shape: number[], rng: Rng, lo = -1, hi = 1): Ref {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = Math.fround(rng.uniformIn(lo, hi));
  return new Ref(shape, d);
}

export const up = (r: Ref): Tensor => tensor(Float32Array.from(r.data), r.shape);

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol?: number; rtol?: number } = {}, label = ''): void {
  const atol = tol.atol ?? 1e-5;
  const rtol = tol.rtol ?? 1e-4;
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const err = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (Number.isNaN(a) !== Number.isNaN(e) || err > worstErr || (Number.isNaN(a) && Number.isNaN(e) ? false : !Number.isFinite(err))) {
      if (!(Number.isNaN(a) && Number.isNaN(e))) {
        worst = i;
        worstErr = Number.isFinite(err) ? err : Infinity;
      }
    }
  }
  if (worst >= 0) {
    expect.fail(`${label}: element ${worst} is ${actual[worst]}, expected ${expected[worst]} (atol ${atol}, rtol ${rtol}; ${expected.length} elements)`);
  }
}

/** Central finite differences of a float64 scalar function at x, for the listed coordinates. */
export function finiteDiff(f: (x: Float64Array) => number, x: Float64Array, coords: number[], h = 1e-6): Float64Array {
  const g = new Float64Array(x.length).fill(NaN);
  for (const i of coords) {
    const xi = x[i]!;
    const step = h * Math.max(1, Math.abs(xi));
    x[i] = xi + step;
    const fp = f(x);
    x[i] = xi - step;
    const fm = f(x);
    x[i] = xi;
    g[i] = (fp - fm) / (2 * step);
  }
  return g;
}

export interface OpCase {
  name: string;
  inputs: Ref[];
  gpu: (...t: Tensor[]) => Tensor;
  ref: (...r: Ref[]) => Ref;
  /** Which inputs get gradient checks (default all). */
  grad?: number[];
  tol?: { atol?: number; rtol?: number };
  gradTol?: { atol?: number; rtol?: number };
  /** Check at most this many coordinates per input by finite differences (default 24). */
  fdCoords?: number;
}

/**
 * Checks an op's value against the float64 reference, and the gradient of Σ w ⊙ op(inputs) (w random)
 * from the tape against central differences of the same float64 reference.
 */
export async function checkOp(c: OpCase, rng: Rng): Promise<void> {
  await gpu();
  const ts = c.inputs.map(up);
  const out = c.gpu(...ts);
  const expected = c.ref(...c.inputs);
  expect(out.shape, `${c.name}: shape`).toEqual(expected.shape);
  expectClose(await out.data(), expected.data, c.tol, `${c.name} value`);
  const gradIdx = c.grad ?? c.inputs.map((_, i) => i);
  if (gradIdx.length) {
    const w = rand(expected.shape, rng, 0.5, 1.5);
    const wt = up(w);
    const params = gradIdx.map((i) => ts[i]!);
    const { value, grads } = valueAndGrad(() => sum(mul(c.gpu(...ts), wt)), params);
    const loss = (xs: Ref[]) => c.ref(...xs).data.reduce((acc, v, i) => acc + v * w.data[i]!, 0);
    expect(await value.item(), `${c.name}: loss`).toBeCloseTo(loss(c.inputs), 1);
    for (let j = 0; j < gradIdx.length; j++) {
      const i = gradIdx[j]!;
      const x = c.inputs[i]!;
      const n = x.data.length;
      const k = Math.min(n, c.fdCoords ?? 24);
      const coords = k === n ? [...Array(n).keys()] : [...rng.permutation(n).slice(0, k)];
      const fd = finiteDiff((xd) => loss(c.inputs.map((r, q) => (q === i ? new Ref(r.shape, xd) : r))), Float64Array.from(x.data), coords);
      const got = await grads[j]!.data();
      expect(grads[j]!.shape, `${c.name}: grad ${i} shape`).toEqual(x.shape);
      expectClose(coords.map((q) => got[q]!), coords.map((q) => fd[q]!), c.gradTol ?? { atol: 2e-4, rtol: 2e-3 }, `${c.name} grad of input ${i}`);
      grads[j]!.dispose();
    }
    value.dispose();
    wt.dispose();
  }
  out.dispose();
  ts.forEach((t) => t.dispose());
  getBackend().flush();
}

/**
 * Runs `bin/wgflow.js ARGS` in a child Node from the project root (the built-in jobs: WGFLOW_JOBS
 * cleared) and collects its exit code and output.
 */
export function runWgflow(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const root = path.resolve(__dirname, '..');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'wgflow.js'), ...args], { cwd: root, env: { ...process.env, WGFLOW_JOBS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
