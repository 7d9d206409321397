import { beforeAll, describe, expect, test } from 'vitest';
import { tensor } from '../engine';
import { Rng } from '../engine/philox';
import { costMatrix, exactPairs, gatherPaired, gatherRowsCpu, GpuSinkhorn, pairLabels, sinkhornClassicF64, sinkhornLogF64, sinkhornPlan, type SinkhornReport } from '../cfm/ot';
import { otPlanExact, squaredEuclideanCost } from '../cfm/ot/assignment';
import { gpu } from './helpers';

beforeAll(async () => {
  await gpu();
});

function points(n: number, d: number, rng: Rng, scale = 1, shift = 0): Float32Array {
  return Float32Array.from({ length: n * d }, () => Math.fround(rng.normal() * scale + shift));
}

function marginals(plan: ArrayLike<number>, n: number, m: number): { rows: Float64Array; cols: Float64Array } {
  const rows = new Float64Array(n);
  const cols = new Float64Array(m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) {
    rows[i] += plan[i * m + j]!;
    cols[j] += plan[i * m + j]!;
  }
  return { rows, cols };
}

/** L1 distances of the plan's row and column sums from the uniform marginals 1/n and 1/m. */
function marginalL1(plan: ArrayLike<number>, n: number, m: number): { rowErr: number; colErr: number } {
  const { rows, cols } = marginals(plan, n, m);
  let rowErr = 0, colErr = 0;
  rows.forEach((r) => (rowErr += Math.abs(r - 1 / n)));
  cols.forEach((r) => (colErr += Math.abs(r - 1 / m)));
  return { rowErr, colErr };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let k = 0; k < a.length; k++) worst = Math.max(worst, Math.abs(a[k]! - b[k]!));
  return worst;
}

/** Rows of K = exp(−C/ε) that underflow to 0 in float32 (where classical Sinkhorn divides 0 by 0). */
function underflowingRows(C: ArrayLike<number>, n: number, m: number, reg: number): number {
  let zeroRows = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < m; j++) s += Math.fround(Math.exp(-C[i * m + j]! / reg));
    if (s === 0) zeroRows++;
  }
  return zeroRows;
}

describe('cost matrix', () => {
  test('squared Euclidean through the inner-product kernel matches float64', async () => {
    const rng = new Rng(3);
    for (const [n, m, d] of [[17, 9, 2], [8, 13, 5]] as const) {
      const a = points(n, d, rng), b = points(m, d, rng, 2, 1);
      const C = costMatrix(tensor(a, [n, d]), tensor(b, [m, d]));
      const got = await C.data();
      const ref = squaredEuclideanCost(a, b, n, m, d);
      for (let k = 0; k < n * m; k++) expect(Math.abs(got[k]! - ref[k]!)).toBeLessThan(1e-4 * (1 + ref[k]!));
    }
  });
});

describe('log-domain Sinkhorn kernel', () => {
  const cases = [
    { name: 'square, reg 0.5', n: 24, m: 24, reg: 0.5, normalize: false, scale: 1 },
    { name: 'rectangular, reg 0.2', n: 20, m: 33, reg: 0.2, normalize: false, scale: 1 },
    { name: 'normalised cost, reg 0.05', n: 32, m: 32, reg: 0.05, normalize: true, scale: 2 },
    // Clouds 4 apart with ε = 0.05: whole rows of exp(−C/ε) underflow in float32 (κC > 104).
    { name: 'reg 0.05 on raw costs (non-log form underflows)', n: 24, m: 24, reg: 0.05, normalize: false, scale: 1, shift: 4, tol: 2e-5, planTol: 3e-5, epsScaling: 20 },
  ];
  for (const c of cases) {
    test(`${c.name}: marginals and plan vs float64 log-domain reference`, async () => {
      const rng = new Rng(11 + c.n + c.m);
      const a = points(c.n, 2, rng, c.scale), b = points(c.m, 2, rng, c.scale, c.shift ?? 1.5);
      const rep = await sinkhornPlan(tensor(a, [c.n, 2]), tensor(b, [c.m, 2]), { reg: c.reg, normalize: c.normalize, tol: c.tol ?? 1e-5, maxIter: 20000, sampling: 'none', epsScaling: c.epsScaling ?? 0 });
      expect(rep.converged, `converged after ${rep.iterations} iterations (err ${rep.err})`).toBe(true);
      const { rowErr, colErr } = marginalL1(rep.plan, c.n, c.m);
      expect(rowErr).toBeLessThan(2 * (c.tol ?? 1e-5));
      expect(colErr).toBeLessThan(2 * (c.tol ?? 1e-5));
      const C = squaredEuclideanCost(a, b, c.n, c.m, 2);
      const ref = sinkhornLogF64(C, c.n, c.m, c.reg, { tol: 1e-12, maxIter: 200000, normalize: c.normalize });
      const worst = maxAbsDiff(rep.plan, ref.plan);
      // Entries are at most 1/n; both plans are converged (the GPU to tol in L1, float32 potentials).
      expect(worst, 'max |P_gpu − P_ref|').toBeLessThan(c.planTol ?? 3e-5);
      if (c.name.includes('underflows')) {
        expect(underflowingRows(C, c.n, c.m, c.reg), 'rows of K = exp(−C/ε) that underflow to 0 in float32').toBeGreaterThan(0);
        const classic = sinkhornClassicF64(C, c.n, c.m, c.reg, 50, true);
        expect(classic.some((v) => !Number.isFinite(v)), 'classical Sinkhorn breaks (0/0)').toBe(true);
      }
    }, 600_000);
  }

  test.each(['auto', 'multi'] as const)('unconverged runs stop at maxIter and report it (style %s)', async (style) => {
    const rng = new Rng(5);
    const a = points(16, 2, rng, 3), b = points(16, 2, rng, 3, 2);
    const rep = await sinkhornPlan(tensor(a, [16, 2]), tensor(b, [16, 2]), { reg: 0.01, tol: 1e-9, maxIter: 30, checkEvery: 10, epsScaling: 0, sampling: 'none', style });
    expect(rep.iterations).toBe(30);
    expect(rep.converged).toBe(false);
    // Columns are exact after every column update, whatever the row error.
    const { cols } = marginals(rep.plan, 16, 16);
    cols.forEach((s) => expect(Math.abs(s - 1 / 16)).toBeLessThan(1e-5));
  });
});

describe('kernel variants', () => {
  test('loop and unrolled kernels, thread counts and ε-scaling reach the same plan', async () => {
    const rng = new Rng(31);
    const n = 40, m = 40;
    const a = points(n, 2, rng, 1.5), b = points(m, 2, rng, 1, 2);
    const C = squaredEuclideanCost(a, b, n, m, 2);
    const ref = sinkhornLogF64(C, n, m, 0.5, { tol: 1e-12, maxIter: 100000 });
    const variants = [
      { style: 'loop' as const },
      { style: 'unrolled' as const, threads: 16 },
      { style: 'unrolled' as const, threads: 64 },
      { style: 'auto' as const, epsScaling: 10 },
      { style: 'loop' as const, epsScaling: 5, threads: 32 },
    ];
    for (const v of variants) {
      const rep = await sinkhornPlan(tensor(a, [n, 2]), tensor(b, [m, 2]), { reg: 0.5, tol: 1e-5, maxIter: 20000, sampling: 'none', ...v });
      expect(rep.converged, JSON.stringify(v)).toBe(true);
      let worst = 0;
      for (let k = 0; k < n * m; k++) worst = Math.max(worst, Math.abs(rep.plan[k]! - ref.plan[k]!));
      expect(worst, JSON.stringify(v)).toBeLessThan(3e-5);
    }
  }, 600_000);

  test('ε-scaling reaches a small-ε plan in fewer iterations', async () => {
    const rng = new Rng(33);
    const n = 48;
    const a = points(n, 2, rng, 1.5), b = points(n, 2, rng, 1, 2);
    const runs = [];
    for (const epsScaling of [0, 10]) {
      runs.push(await sinkhornPlan(tensor(a, [n, 2]), tensor(b, [n, 2]), { reg: 0.02, tol: 1e-4, maxIter: 20000, sampling: 'none', epsScaling }));
    }
    expect(runs.every((r) => r.converged)).toBe(true);
    expect(runs[1]!.iterations).toBeLessThan(runs[0]!.iterations / 2);
    let worst = 0;
    for (let k = 0; k < n * n; k++) worst = Math.max(worst, Math.abs(runs[0]!.plan[k]! - runs[1]!.plan[k]!));
    expect(worst).toBeLessThan(2e-4);
  }, 600_000);

  test('a 300 × 300 problem on the loop kernel', async () => {
    const rng = new Rng(32);
    const n = 300;
    const a = points(n, 2, rng), b = points(n, 2, rng, 1, 1);
    const rep = await sinkhornPlan(tensor(a, [n, 2]), tensor(b, [n, 2]), { reg: 1, tol: 1e-3, maxIter: 2000, sampling: 'replacement', style: 'loop' });
    expect(rep.converged).toBe(true);
    const { rows, cols } = marginals(rep.plan, n, n);
    let e = 0;
    rows.forEach((r) => (e += Math.abs(r - 1 / n)));
    expect(e).toBeLessThan(2e-3);
    cols.forEach((c) => expect(Math.abs(c - 1 / n)).toBeLessThan(1e-5));
    expect(rep.pairs.i.length).toBe(n);
  }, 600_000);
});

describe('multi-workgroup Sinkhorn (auto above 256 points per side)', () => {
  // Clouds 4 apart at small ε: whole rows of exp(−C/ε) underflow in float32, so only the log form works.
  const cases = [
    { n: 257, m: 257, reg: 0.1, epsScaling: 0, sampling: 'permutation' as const },
    { n: 257, m: 257, reg: 0.1, epsScaling: 20, sampling: 'replacement' as const },
    { n: 300, m: 263, reg: 0.05, epsScaling: 0, sampling: 'replacement' as const },
    { n: 300, m: 263, reg: 0.05, epsScaling: 20, sampling: 'replacement' as const },
  ];
  for (const c of cases) {
    test(`${c.n} × ${c.m}, reg ${c.reg}, ε-scaling ${c.epsScaling}: plan, marginals, stats and pairs vs float64 reference`, async () => {
      const rng = new Rng(11 + c.n + c.m);
      const a = points(c.n, 2, rng), b = points(c.m, 2, rng, 1, 4);
      const tol = 1e-5, pairs = c.sampling === 'permutation' ? c.n : 512;
      const rep = await sinkhornPlan(tensor(a, [c.n, 2]), tensor(b, [c.m, 2]), { reg: c.reg, tol, maxIter: 5000, checkEvery: 10, sampling: c.sampling, pairs, seed: 3, epsScaling: c.epsScaling });
      expect(rep.converged, `converged after ${rep.iterations} iterations (err ${rep.err})`).toBe(true);
      expect(rep.iterations % 10, 'stops at a check').toBe(0);
      expect(rep.iterations).toBeLessThan(5000);
      expect(rep.err).toBeLessThanOrEqual(tol);
      const { rowErr, colErr } = marginalL1(rep.plan, c.n, c.m);
      expect(rowErr).toBeLessThan(2 * tol);
      expect(colErr).toBeLessThan(2 * tol);
      const C = squaredEuclideanCost(a, b, c.n, c.m, 2);
      const ref = sinkhornLogF64(C, c.n, c.m, c.reg, { tol: 1e-9, maxIter: 20000 });
      const worst = maxAbsDiff(rep.plan, ref.plan);
      expect(worst, 'max |P_gpu − P_ref|').toBeLessThan(3e-5);
      expect(underflowingRows(C, c.n, c.m, c.reg), 'rows of K = exp(−C/ε) that underflow to 0 in float32').toBeGreaterThan(0);
      // Pairs: valid indices on cells the plan gives mass to.
      expect(rep.pairs.i.length).toBe(pairs);
      for (let k = 0; k < pairs; k++) {
        const i = rep.pairs.i[k]!, j = rep.pairs.j[k]!;
        expect(i >= 0 && i < c.n && j >= 0 && j < c.m, `pair ${k}: (${i}, ${j})`).toBe(true);
        if (c.sampling === 'replacement') expect(rep.plan[i * c.m + j]!, `pair ${k}: (${i}, ${j})`).toBeGreaterThan(1e-12);
      }
      if (c.sampling === 'permutation') {
        expect([...rep.pairs.i]).toEqual([...Array(c.n).keys()]);
        expect(new Set(rep.pairs.j).size).toBe(c.n);
      }
    }, 600_000);
  }

  test('same iterates, stats and pairs as the single-workgroup loop kernel', async () => {
    const rng = new Rng(35);
    const n = 40, m = 33;
    const a = points(n, 2, rng, 1.5), b = points(m, 2, rng, 1, 2);
    const reps = [];
    for (const style of ['loop', 'multi'] as const) reps.push(await sinkhornPlan(tensor(a, [n, 2]), tensor(b, [m, 2]), { reg: 0.1, tol: 1e-5, maxIter: 3000, sampling: 'replacement', pairs: 64, seed: 5, epsScaling: 5, style }));
    const [loop, multi] = reps as [SinkhornReport, SinkhornReport];
    expect(multi.converged).toBe(true);
    expect(multi.iterations).toBe(loop.iterations);
    expect(Math.abs(multi.err - loop.err)).toBeLessThan(1e-7);
    let worst = 0;
    for (let k = 0; k < n * m; k++) worst = Math.max(worst, Math.abs(multi.plan[k]! - loop.plan[k]!));
    expect(worst).toBeLessThan(1e-6);
    expect([...multi.pairs.i]).toEqual([...loop.pairs.i]);
    expect([...multi.pairs.j]).toEqual([...loop.pairs.j]);
  }, 600_000);
});

describe('pair sampling from the plan', () => {
  test('with replacement: pair frequencies follow the plan', async () => {
    const rng = new Rng(9);
    const n = 6, m = 6, pairs = 12000;
    const a = points(n, 2, rng), b = points(m, 2, rng, 1, 0.5);
    const rep = await sinkhornPlan(tensor(a, [n, 2]), tensor(b, [m, 2]), { reg: 0.5, tol: 1e-6, maxIter: 5000, sampling: 'replacement', pairs, seed: 4 });
    const freq = new Float64Array(n * m);
    for (let k = 0; k < pairs; k++) freq[rep.pairs.i[k]! * m + rep.pairs.j[k]!]! += 1 / pairs;
    for (let k = 0; k < n * m; k++) {
      const p = rep.plan[k]!;
      expect(Math.abs(freq[k]! - p), `cell ${k}: ${freq[k]} vs ${p}`).toBeLessThan(5 * Math.sqrt(p / pairs) + 1e-3);
    }
  });

  test('as a permutation: every row once, every column once, mass-weighted', async () => {
    const rng = new Rng(10);
    const n = 64;
    const a = points(n, 2, rng), b = points(n, 2, rng, 1, 3);
    const rep = await sinkhornPlan(tensor(a, [n, 2]), tensor(b, [n, 2]), { reg: 0.01, tol: 1e-4, maxIter: 3000, sampling: 'permutation', seed: 1, epsScaling: 10 });
    expect([...rep.pairs.i]).toEqual([...Array(n).keys()]);
    expect(new Set(rep.pairs.j).size).toBe(n);
    // Small ε: the sampled permutation is close to the optimal assignment in cost.
    const C = squaredEuclideanCost(a, b, n, n, 2);
    const opt = otPlanExact(a, b, n, 2);
    let cs = 0, co = 0;
    for (let i = 0; i < n; i++) {
      cs += C[i * n + rep.pairs.j[i]!]!;
      co += C[i * n + opt[i]!]!;
    }
    expect(cs / co).toBeLessThan(1.1);
  });
});

describe('exact OT pairs (CPU, torchcfm OTPlanSampler parity)', () => {
  test('permutation pairs are the optimal assignment; replacement draws rows uniformly with j = σ(i)', () => {
    const rng = new Rng(2);
    const n = 128;
    const a = points(n, 2, rng), b = points(n, 2, rng, 2, 1);
    const sigma = otPlanExact(a, b, n, 2);
    const perm = exactPairs(a, b, n, 2, 'permutation', new Rng(1));
    expect([...perm.j]).toEqual([...sigma]);
    const rep = exactPairs(a, b, n, 2, 'replacement', new Rng(1));
    for (let k = 0; k < n; k++) expect(rep.j[k]).toBe(sigma[rep.i[k]!]);
    // With replacement about 1 − 1/e of the rows appear.
    const distinct = new Set(rep.i).size / n;
    expect(distinct).toBeGreaterThan(0.5);
    expect(distinct).toBeLessThan(0.75);
    const x0p = gatherRowsCpu(a, rep.i, 2);
    expect(x0p[2 * 5]).toBe(a[2 * rep.i[5]!]);
  });

  test('GPU pairs carry points and labels (gatherPaired)', async () => {
    const rng = new Rng(4);
    const n = 32;
    const a = points(n, 2, rng), b = points(n, 2, rng, 1, 2);
    const x0 = tensor(a, [n, 2]), x1 = tensor(b, [n, 2]);
    const y1 = tensor(Float32Array.from({ length: n }, (_, k) => 100 + k), [n]);
    const sk = new GpuSinkhorn(n, n, n, { reg: 0.3, tol: 1e-4 }, 2);
    const { out, pairs } = sk.run(costMatrix(x0, x1), 'replacement');
    const p = await pairs.data();
    const g0 = await gatherPaired(x0, pairs, 0, n).data();
    const lab = await gatherPaired(y1, pairs, 1, n).data();
    for (let k = 0; k < n; k++) {
      expect(g0[2 * k]).toBe(a[2 * p[k]!]);
      expect(lab[k]).toBe(100 + p[n + k]!);
    }
    out.dispose();
  });

  test('labels are carried through the coupling', () => {
    const rng = new Rng(3);
    const n = 40;
    const a = points(n, 2, rng), b = points(n, 2, rng, 1, 4);
    const y0 = Float64Array.from({ length: n }, (_, k) => k % 3);
    const y1 = Float64Array.from({ length: n }, (_, k) => 10 + (k % 5));
    const p = exactPairs(a, b, n, 2, 'replacement', new Rng(8));
    const lab = pairLabels(p, y0, y1);
    for (let k = 0; k < n; k++) {
      expect(lab.y0![k]).toBe(y0[p.i[k]!]);
      expect(lab.y1![k]).toBe(y1[p.j[k]!]);
    }
  });
});
