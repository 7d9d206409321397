/**
 * The engine's kernels in headless Chromium (SwiftShader here) through runInBrowser: matmul variants
 * at awkward shapes, reductions, and an MLP's value and gradients via valueAndGrad. Each value is
 * checked against a float64 reference AND against the same computation in Node (Dawn), so the two
 * runtimes are known to compute the same numbers (up to float32 rounding).
 */
import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_CANDIDATES } from '../browser/chromium';
import { runInBrowser } from '../browser/run-in-page';
import { SELU_ALPHA, SELU_LAMBDA } from '../kernels/elementwise';
import { caseData, caseLabel, matmulReference, matmulTolerance } from './fixtures/matmul-cases';
import { mlpInputs, reduceInput, runKernelChecks, type KernelCheckArgs, type KernelCheckResult } from './fixtures/page-kernels';
import { expectClose, gpu } from './helpers';

const TIMEOUT = 120_000;
const haveChromium = CHROMIUM_CANDIDATES.some((p) => existsSync(p)) || !!process.env.WGFLOW_CHROMIUM;

const AWKWARD: [number, number, number][] = [[1, 1, 1], [7, 13, 5], [257, 129, 65], [64, 32, 48]];
const ARGS: KernelCheckArgs = {
  matmul: [
    { variant: 'reg', shapes: AWKWARD },
    { variant: 'reg4x4', shapes: AWKWARD },
    // Workgroup-memory kernels compile slowly on SwiftShader (~1 s each): one shape, 4 combinations.
    { variant: 'wgmem', shapes: [[7, 13, 5]] },
  ],
  reduce: { rows: 257, cols: 33 },
  mlp: { batch: 37, sizes: [3, 16, 16, 2] },
};

/** Browser and Node run the same kernels on the same SwiftShader: they must agree to float32 rounding. */
const AGREE = { atol: 1e-6, rtol: 1e-6 };

// ---- float64 references ----

function reduceRef(rows: number, cols: number) {
  const x = reduceInput(rows, cols);
  const sum0 = new Float64Array(cols);
  const max1 = new Float64Array(rows).fill(-Infinity);
  let total = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = x[r * cols + c]!;
      sum0[c] += v;
      max1[r] = Math.max(max1[r]!, v);
      total += v;
    }
  }
  return { sum0, meanAll: Float64Array.of(total / (rows * cols)), max1 };
}

const selu = (z: number) => (z > 0 ? SELU_LAMBDA * z : SELU_LAMBDA * SELU_ALPHA * (Math.exp(z) - 1));
const seluDeriv = (z: number) => (z > 0 ? SELU_LAMBDA : SELU_LAMBDA * SELU_ALPHA * Math.exp(z));

/** Loss and gradients (W0, b0, W1, b1, …) of mean((mlp(x) − y)²) by hand-written float64 backprop. */
function mlpRef(batch: number, sizes: number[]): { loss: number; grads: Float64Array[] } {
  const { x, y, params } = mlpInputs(batch, sizes);
  const L = sizes.length - 1;
  const zs: Float64Array[] = [];
  const hs: Float64Array[] = [Float64Array.from(x)];
  for (let l = 0; l < L; l++) {
    const [ni, no] = [sizes[l]!, sizes[l + 1]!];
    const W = params[2 * l]!.init;
    const bias = params[2 * l + 1]!.init;
    const h = hs[l]!;
    const z = new Float64Array(batch * no);
    for (let r = 0; r < batch; r++) {
      for (let o = 0; o < no; o++) {
        let s = bias[o]!;
        for (let i = 0; i < ni; i++) s += h[r * ni + i]! * W[i * no + o]!;
        z[r * no + o] = s;
      }
    }
    zs.push(z);
    hs.push(l + 1 < L ? z.map(selu) : z);
  }
  const out = hs[L]!;
  let loss = 0;
  let g = new Float64Array(out.length);
  for (let i = 0; i < out.length; i++) {
    const d = out[i]! - y[i]!;
    loss += d * d;
    g[i] = (2 * d) / out.length;
  }
  loss /= out.length;
  const grads: Float64Array[] = new Array(2 * L);
  for (let l = L - 1; l >= 0; l--) {
    const [ni, no] = [sizes[l]!, sizes[l + 1]!];
    const dz = l + 1 < L ? g.map((v, i) => v * seluDeriv(zs[l]![i]!)) : g;
    const h = hs[l]!;
    const W = params[2 * l]!.init;
    const dW = new Float64Array(ni * no);
    const db = new Float64Array(no);
    const dh = new Float64Array(batch * ni);
    for (let r = 0; r < batch; r++) {
      for (let o = 0; o < no; o++) {
        const d = dz[r * no + o]!;
        db[o] += d;
        for (let i = 0; i < ni; i++) {
          dW[i * no + o] += h[r * ni + i]! * d;
          dh[r * ni + i] += d * W[i * no + o]!;
        }
      }
    }
    grads[2 * l] = dW;
    grads[2 * l + 1] = db;
    g = dh;
  }
  return { loss, grads };
}

function checkAgainstReference(r: KernelCheckResult, where: string): void {
  expect(r.matmul.length).toBe(ARGS.matmul.reduce((n, m) => n + 4 * m.shapes.length, 0));
  for (const mm of r.matmul) {
    const ref = matmulReference(mm.case, caseData(mm.case, mm.index));
    expectClose(mm.out, ref, matmulTolerance(mm.case.k), `${where} ${mm.variant} ${caseLabel(mm.case)}`);
  }
  const red = reduceRef(ARGS.reduce.rows, ARGS.reduce.cols);
  expectClose(r.reduce.sum0, red.sum0, { atol: 1e-5, rtol: 1e-5 }, `${where} sum over axis 0`);
  expectClose(r.reduce.meanAll, red.meanAll, { atol: 1e-6, rtol: 1e-5 }, `${where} mean`);
  expectClose(r.reduce.max1, red.max1, { atol: 0, rtol: 0 }, `${where} max over axis 1`);
  const mlp = mlpRef(ARGS.mlp.batch, ARGS.mlp.sizes);
  expect(r.mlp.map((m) => m.fused)).toEqual([true, false]);
  for (const m of r.mlp) {
    expect(m.loss, `${where} MLP loss (fused ${m.fused})`).toBeCloseTo(mlp.loss, 5);
    expect(m.grads.length).toBe(mlp.grads.length);
    m.grads.forEach((g, i) => expectClose(g, mlp.grads[i]!, { atol: 1e-5, rtol: 1e-4 }, `${where} MLP grad ${i} (fused ${m.fused})`));
  }
}

describe.skipIf(!haveChromium)('kernels in Chromium agree with float64 and with Node', () => {
  let node: KernelCheckResult;
  let browser: KernelCheckResult;
  let adapter: unknown;

  beforeAll(async () => {
    // One after the other: both runtimes share the same two cores.
    node = await runKernelChecks(await gpu(), ARGS);
    ({ result: browser, adapter } = await runInBrowser<KernelCheckResult>('tests/fixtures/page-kernels.ts', { args: ARGS, timeoutMs: TIMEOUT }));
  }, 2 * TIMEOUT);

  it('ran in the page on a WebGPU adapter', () => {
    expect(browser.adapter).toMatch(/\(\w+, browser\)$/);
    expect(node.adapter).toMatch(/\(\w+, node\)$/);
    expect(adapter).toBeTruthy();
  });

  it('Chromium values match the float64 references', () => checkAgainstReference(browser, 'browser'));

  it('Node values match the float64 references', () => checkAgainstReference(node, 'node'));

  it('Chromium and Node agree within float32 rounding', () => {
    expect(browser.matmul.length).toBe(node.matmul.length);
    browser.matmul.forEach((mm, i) => {
      const nm = node.matmul[i]!;
      expect(mm.variant).toBe(nm.variant);
      expectClose(mm.out, nm.out, AGREE, `browser vs node ${mm.variant} ${caseLabel(mm.case)}`);
    });
    for (const k of ['sum0', 'meanAll', 'max1'] as const) expectClose(browser.reduce[k], node.reduce[k], AGREE, `browser vs node ${k}`);
    browser.mlp.forEach((m, i) => {
      expect(m.loss).toBeCloseTo(node.mlp[i]!.loss, 6);
      m.grads.forEach((g, j) => expectClose(g, node.mlp[i]!.grads[j]!, AGREE, `browser vs node MLP grad ${j} (fused ${m.fused})`));
    });
  });
});
