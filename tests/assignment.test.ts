/**
 * Exact OT solver (cfm/ot/assignment.ts) and the W2 metric (cfm/metrics/w2.ts).
 *
 * Optimality is proved three independent ways: brute force over all permutations (n ≤ 7), an
 * independent O(n³) Hungarian algorithm written here (n = 60–100), and the LP dual certificate
 * returned by the solver (u_i + v_j ≤ c_ij everywhere, equality on the matching, and
 * Σu + Σv = primal cost ⇒ optimal by weak duality), which scales to n = 1000.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../engine/philox';
import { assignPoints, otPlanExact, solveAssignment, squaredEuclideanCost, type AssignmentResult } from '../cfm/ot/assignment';
import { wassersteinW2 } from '../cfm/metrics/w2';

const METHODS = ['auto', 'jv', 'auction'] as const;

// ---------------------------------------------------------------- helpers

function randomCost(rng: Rng, n: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let k = 0; k < c.length; k++) c[k] = rng.uniform() * 10 - 3;
  return c;
}

/** Integer costs in [0, levels): many ties and many optimal matchings. */
function integerCost(rng: Rng, n: number, levels: number): Float64Array {
  const c = new Float64Array(n * n);
  for (let k = 0; k < c.length; k++) c[k] = rng.int(levels);
  return c;
}

function gaussian(rng: Rng, n: number, d = 2): Float32Array {
  const a = new Float32Array(n * d);
  for (let k = 0; k < a.length; k++) a[k] = rng.normal();
  return a;
}

/** torchcfm's sample_moons: make_moons(n, noise = 0.2) · 3 − 1, shuffled. */
function moons(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(2 * n);
  const half = n >> 1;
  for (let i = 0; i < n; i++) {
    let px: number, py: number;
    if (i < half) {
      const t = (Math.PI * i) / Math.max(1, half - 1);
      px = Math.cos(t);
      py = Math.sin(t);
    } else {
      const t = (Math.PI * (i - half)) / Math.max(1, n - half - 1);
      px = 1 - Math.cos(t);
      py = 0.5 - Math.sin(t);
    }
    a[2 * i] = (px + 0.2 * rng.normal()) * 3 - 1;
    a[2 * i + 1] = (py + 0.2 * rng.normal()) * 3 - 1;
  }
  const p = rng.permutation(n);
  const b = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    b[2 * i] = a[2 * p[i]!]!;
    b[2 * i + 1] = a[2 * p[i]! + 1]!;
  }
  return b;
}

/** Minimum over all n! permutations (Heap's algorithm). */
function bruteForce(c: Float64Array, n: number): number {
  const p = Array.from({ length: n }, (_, i) => i);
  const cnt = new Array<number>(n).fill(0);
  const evalP = (): number => {
    let s = 0;
    for (let i = 0; i < n; i++) s += c[i * n + p[i]!]!;
    return s;
  };
  let best = evalP();
  let i = 0;
  while (i < n) {
    if (cnt[i]! < i) {
      const k = i % 2 === 0 ? 0 : cnt[i]!;
      const t = p[k]!;
      p[k] = p[i]!;
      p[i] = t;
      best = Math.min(best, evalP());
      cnt[i]!++;
      i = 0;
    } else {
      cnt[i] = 0;
      i++;
    }
  }
  return best;
}

/**
 * Independent O(n³) Hungarian algorithm with potentials (Kuhn–Munkres in the form of the e-maxx
 * notes: rows are added one at a time, each by a Dijkstra-like sweep over all columns).
 * Deliberately written from scratch with plain arrays and 1-based indexing.
 */
function hungarian(c: Float64Array, n: number): number {
  const INF = Number.POSITIVE_INFINITY;
  const u = new Array<number>(n + 1).fill(0);
  const v = new Array<number>(n + 1).fill(0);
  const p = new Array<number>(n + 1).fill(0); // p[j] = row matched to column j (1-based), 0 = none
  const way = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Array<number>(n + 1).fill(INF);
    const used = new Array<boolean>(n + 1).fill(false);
    do {
      used[j0] = true;
      const i0 = p[j0]!;
      let delta = INF;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (!used[j]) {
          const cur = c[(i0 - 1) * n + (j - 1)]! - u[i0]! - v[j]!;
          if (cur < minv[j]!) {
            minv[j] = cur;
            way[j] = j0;
          }
          if (minv[j]! < delta) {
            delta = minv[j]!;
            j1 = j;
          }
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]!]! += delta;
          v[j]! -= delta;
        } else {
          minv[j]! -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0 !== 0);
  }
  let total = 0;
  for (let j = 1; j <= n; j++) total += c[(p[j]! - 1) * n + (j - 1)]!;
  return total;
}

function isPermutation(r: AssignmentResult, n: number): boolean {
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const j = r.rowToCol[i]!;
    if (j < 0 || j >= n || seen[j] || r.colToRow[j] !== i) return false;
    seen[j] = 1;
  }
  return true;
}

/** Asserts the LP dual certificate of optimality; returns the worst violation / scale seen. */
function expectCertificate(c: Float64Array, n: number, r: AssignmentResult): void {
  expect(isPermutation(r, n)).toBe(true);
  let scale = 0;
  for (let k = 0; k < c.length; k++) scale = Math.max(scale, Math.abs(c[k]!));
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(r.u[i]!), Math.abs(r.v[i]!));
  const tol = 1e-9 * Math.max(scale, 1);
  let worst = -Infinity; // max over (i, j) of u_i + v_j − c_ij
  for (let i = 0; i < n; i++) {
    const ui = r.u[i]!;
    const row = i * n;
    for (let j = 0; j < n; j++) {
      const s = ui + r.v[j]! - c[row + j]!;
      if (s > worst) worst = s;
    }
  }
  expect(worst).toBeLessThanOrEqual(tol);
  let primal = 0, dual = 0, tight = 0;
  for (let i = 0; i < n; i++) {
    const j = r.rowToCol[i]!;
    primal += c[i * n + j]!;
    dual += r.u[i]! + r.v[i]!;
    tight = Math.max(tight, Math.abs(r.u[i]! + r.v[j]! - c[i * n + j]!));
  }
  expect(tight).toBeLessThanOrEqual(tol);
  expect(Math.abs(r.cost - primal)).toBeLessThanOrEqual(tol * n);
  expect(Math.abs(dual - primal)).toBeLessThanOrEqual(tol * n);
}

// ---------------------------------------------------------------- solveAssignment

describe('solveAssignment: optimal against brute force (n = 1..7)', () => {
  for (const method of METHODS) {
    it(`random real costs, method ${method}`, () => {
      const rng = new Rng(101);
      for (let n = 1; n <= 7; n++) {
        for (let rep = 0; rep < 30; rep++) {
          const c = randomCost(rng, n);
          const r = solveAssignment(c, n, { method });
          expect(r.cost).toBeCloseTo(bruteForce(c, n), 10);
          expectCertificate(c, n, r);
        }
      }
    });

    it(`integer costs with many ties, method ${method}`, () => {
      const rng = new Rng(202);
      for (let n = 1; n <= 7; n++) {
        for (const levels of [1, 2, 3, 5]) {
          for (let rep = 0; rep < 15; rep++) {
            const c = integerCost(rng, n, levels);
            const r = solveAssignment(c, n, { method });
            expect(r.cost).toBe(bruteForce(c, n)); // integer sums are exact
            expectCertificate(c, n, r);
          }
        }
      }
    });
  }

  it('small squared-Euclidean costs (the OT-CFM case)', () => {
    const rng = new Rng(303);
    for (let n = 2; n <= 7; n++) {
      for (let rep = 0; rep < 20; rep++) {
        const c = squaredEuclideanCost(gaussian(rng, n), moons(rng, n), n, n, 2);
        for (const method of METHODS) expect(solveAssignment(c, n, { method }).cost).toBeCloseTo(bruteForce(c, n), 10);
      }
    }
  });
});

describe('solveAssignment: dual certificate on larger problems', () => {
  const cases: [string, (rng: Rng, n: number) => Float64Array][] = [
    ['uniform random costs', randomCost],
    ['integer costs 0..9 (ties)', (rng, n) => integerCost(rng, n, 10)],
    ['squared Euclidean, N(0, I) → moons', (rng, n) => squaredEuclideanCost(gaussian(rng, n), moons(rng, n), n, n, 2)],
    ['squared Euclidean, N(0, I) → N(0, I) in 5-D', (rng, n) => squaredEuclideanCost(gaussian(rng, n, 5), gaussian(rng, n, 5), n, n, 5)],
  ];
  for (const n of [50, 257, 1000]) {
    for (const [name, make] of cases) {
      it(`n = ${n}: ${name}`, () => {
        const rng = new Rng(n * 7 + name.length);
        const c = make(rng, n);
        const r = solveAssignment(c, n);
        expectCertificate(c, n, r);
        if (n <= 257) {
          // The plain LAPJV path reaches the same optimum (possibly another matching on ties).
          const rj = solveAssignment(c, n, { method: 'jv' });
          expectCertificate(c, n, rj);
          expect(rj.cost).toBeCloseTo(r.cost, 8);
        }
      });
    }
  }

  it('n = 100 random: equals an independent O(n³) Hungarian algorithm', () => {
    const rng = new Rng(404);
    for (let rep = 0; rep < 3; rep++) {
      const c = randomCost(rng, 100);
      const ref = hungarian(c, 100);
      for (const method of METHODS) expect(solveAssignment(c, 100, { method }).cost).toBeCloseTo(ref, 9);
    }
    const e = squaredEuclideanCost(gaussian(rng, 100), moons(rng, 100), 100, 100, 2);
    const ref = hungarian(e, 100);
    for (const method of METHODS) expect(solveAssignment(e, 100, { method }).cost).toBeCloseTo(ref, 9);
  });

  it('Float32 input is solved as its Float64 widening', () => {
    const rng = new Rng(505);
    const n = 120;
    const c32 = new Float32Array(n * n);
    for (let k = 0; k < c32.length; k++) c32[k] = rng.uniform() * 5;
    const c64 = Float64Array.from(c32);
    const a = solveAssignment(c32, n);
    const b = solveAssignment(c64, n);
    expect(a.cost).toBe(b.cost);
    expect(Array.from(a.rowToCol)).toEqual(Array.from(b.rowToCol));
    expectCertificate(c64, n, a);
  });
});

describe('solveAssignment: degenerate inputs terminate and stay optimal', () => {
  it('n = 1', () => {
    for (const method of METHODS) {
      const r = solveAssignment(new Float64Array([4.5]), 1, { method });
      expect(Array.from(r.rowToCol)).toEqual([0]);
      expect(Array.from(r.colToRow)).toEqual([0]);
      expect(r.cost).toBe(4.5);
      expect(r.u[0]! + r.v[0]!).toBe(4.5);
    }
    expect(solveAssignment(new Float32Array([-2]), 1).cost).toBe(-2);
  });

  it('all costs equal', () => {
    for (const n of [2, 40, 300]) {
      const c = new Float64Array(n * n).fill(3);
      for (const method of METHODS) {
        const r = solveAssignment(c, n, { method });
        expect(r.cost).toBe(3 * n);
        expectCertificate(c, n, r);
      }
    }
  });

  it('identical rows (all source points duplicated)', () => {
    const rng = new Rng(606);
    for (const n of [7, 60, 300]) {
      const x = new Float32Array(2 * n).fill(0.25);
      const c = squaredEuclideanCost(x, gaussian(rng, n), n, n, 2);
      let colSum = 0;
      for (let j = 0; j < n; j++) colSum += c[j]!;
      for (const method of METHODS) {
        const r = solveAssignment(c, n, { method });
        expect(r.cost).toBeCloseTo(colSum, 9); // every perfect matching costs the same
        expectCertificate(c, n, r);
      }
    }
  });

  it('duplicate points: a few distinct locations with many copies on both sides', () => {
    const n = 60;
    const x = new Float32Array(2 * n), y = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      const a = i % 4, b = (i * 7) % 5;
      x[2 * i] = a;
      x[2 * i + 1] = a * a;
      y[2 * i] = b;
      y[2 * i + 1] = -b;
    }
    const c = squaredEuclideanCost(x, y, n, n, 2);
    const ref = hungarian(c, n);
    for (const method of METHODS) {
      const r = solveAssignment(c, n, { method });
      expect(r.cost).toBe(ref); // small integers: exact
      expectCertificate(c, n, r);
    }
    const big = 400;
    const xb = new Float32Array(2 * big), yb = new Float32Array(2 * big);
    for (let i = 0; i < big; i++) {
      xb[2 * i] = i % 3;
      yb[2 * i] = (i % 5) * 0.5;
      yb[2 * i + 1] = 1;
    }
    const cb = squaredEuclideanCost(xb, yb, big, big, 2);
    expectCertificate(cb, big, solveAssignment(cb, big));
  });

  it('a cloud against itself: identity-cost optimum 0', () => {
    const rng = new Rng(707);
    for (const n of [5, 200]) {
      const x = gaussian(rng, n);
      for (const method of METHODS) {
        const r = solveAssignment(squaredEuclideanCost(x, x, n, n, 2), n, { method });
        expect(r.cost).toBe(0);
      }
    }
  });

  it('costs with a huge common offset (rounding far above the spread)', () => {
    const rng = new Rng(808);
    const n = 150;
    const c = new Float64Array(n * n);
    for (let k = 0; k < c.length; k++) c[k] = 1e10 + rng.int(1000) / 1000;
    const r = solveAssignment(c, n);
    const rj = solveAssignment(c, n, { method: 'jv' });
    expect(r.cost).toBe(rj.cost);
    expect(isPermutation(r, n)).toBe(true);
  });

  it('negative and mixed-sign costs', () => {
    const rng = new Rng(909);
    const n = 130;
    const c = new Float64Array(n * n);
    for (let k = 0; k < c.length; k++) c[k] = (rng.uniform() - 0.7) * 1e3;
    const r = solveAssignment(c, n);
    expectCertificate(c, n, r);
    expect(r.cost).toBeCloseTo(hungarian(c, n), 6);
  });
});

describe('solveAssignment: bad input', () => {
  it('rejects non-square, wrong-length, bad n, non-finite and wrong types with clear messages', () => {
    expect(() => solveAssignment(new Float64Array(6), 2)).toThrow(/length 6, expected n·n = 4/);
    expect(() => solveAssignment(new Float64Array(6), 3)).toThrow(/square 3×3/);
    expect(() => solveAssignment(new Float64Array(0), 0)).toThrow(/n must be a positive integer, got 0/);
    expect(() => solveAssignment(new Float64Array(4), 2.5)).toThrow(/positive integer, got 2.5/);
    expect(() => solveAssignment(new Float64Array(4), NaN)).toThrow(/positive integer/);
    expect(() => solveAssignment(new Float64Array([0, 1, NaN, 2]), 2)).toThrow(/cost\[2\] \(row 1, column 0\) is NaN; all entries must be finite/);
    expect(() => solveAssignment(new Float32Array([0, Infinity, 1, 2]), 2)).toThrow(/is Infinity/);
    expect(() => solveAssignment(new Float64Array([0, 1, 2, -Infinity]), 2)).toThrow(/is -Infinity/);
    expect(() => solveAssignment([1, 2, 3, 4] as unknown as Float64Array, 2)).toThrow(/Float64Array or Float32Array/);
    expect(() => solveAssignment(new Float64Array(4), 2, { method: 'simplex' as 'jv' })).toThrow(/method must be/);
  });

  it('squaredEuclideanCost and otPlanExact check their shapes', () => {
    expect(() => squaredEuclideanCost(new Float32Array(5), new Float32Array(6), 3, 3, 2)).toThrow(/x has length 5, expected n·d = 3·2 = 6/);
    expect(() => squaredEuclideanCost(new Float32Array(6), new Float32Array(5), 3, 3, 2)).toThrow(/y has length 5/);
    expect(() => squaredEuclideanCost(new Float32Array(6), new Float32Array(6), 3, 3, 0)).toThrow(/d must be a positive integer/);
    expect(() => squaredEuclideanCost(new Float32Array(6), new Float32Array(6), 3, 3, 2, new Float64Array(8))).toThrow(/out has length 8/);
    expect(() => otPlanExact(new Float32Array(6), new Float32Array(8), 3, 2)).toThrow(/y has length 8/);
    expect(() => otPlanExact(new Float32Array([0, NaN]), new Float32Array([1, 1]), 1, 2)).toThrow(/finite/);
  });
});

// ---------------------------------------------------------------- points, OT plan

describe('squaredEuclideanCost / otPlanExact', () => {
  it('cost entries are ‖x_i − y_j‖² (d = 2 fast path and general d)', () => {
    const rng = new Rng(1001);
    for (const d of [1, 2, 3]) {
      const n = 4, m = 5;
      const x = gaussian(rng, n, d), y = gaussian(rng, m, d);
      const c = squaredEuclideanCost(x, y, n, m, d);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < m; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += (x[i * d + k]! - y[j * d + k]!) ** 2;
          expect(c[i * m + j]).toBeCloseTo(s, 12);
        }
      }
    }
  });

  it('otPlanExact is an optimal permutation of the batch', () => {
    const rng = new Rng(1002);
    const n = 256;
    const x0 = gaussian(rng, n), x1 = moons(rng, n);
    const perm = otPlanExact(x0, x1, n, 2);
    const C = squaredEuclideanCost(x0, x1, n, n, 2);
    const r = solveAssignment(C, n);
    expect(new Set(Array.from(perm)).size).toBe(n);
    let cost = 0;
    for (let i = 0; i < n; i++) cost += C[i * n + perm[i]!]!;
    expect(cost).toBeCloseTo(r.cost, 9);
    const full = assignPoints(x0, x1, n, 2);
    expectCertificate(C, n, full);
    // 1-D sanity: the optimal plan of sorted-vs-sorted points is monotone.
    const a = new Float32Array([3, 1, 2, 0]), b = new Float32Array([10, 40, 20, 30]);
    expect(Array.from(otPlanExact(a, b, 4, 1))).toEqual([1, 2, 3, 0]);
  });
});

// ---------------------------------------------------------------- W2

describe('wassersteinW2', () => {
  it('W2 of a point cloud with itself is 0', () => {
    const rng = new Rng(2001);
    const a = moons(rng, 512);
    expect(wassersteinW2(a, a, 512, 2)).toBe(0);
  });

  it('W2 between a cloud and the same cloud shifted by s is |s| (exactly representable data)', () => {
    const rng = new Rng(2002);
    const n = 2048;
    const a = new Float32Array(2 * n);
    // Points on a 2^-8 grid so that a + s is exact in float32 and all differences exact in float64.
    for (let k = 0; k < a.length; k++) a[k] = Math.round(rng.normal() * 256) / 256;
    const s = [0.75, -1.25];
    const b = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      b[2 * i] = a[2 * i]! + s[0]!;
      b[2 * i + 1] = a[2 * i + 1]! + s[1]!;
    }
    // Shuffle b: the solver must find the translation matching itself.
    const p = rng.permutation(n);
    const bs = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      bs[2 * i] = b[2 * p[i]!]!;
      bs[2 * i + 1] = b[2 * p[i]! + 1]!;
    }
    expect(wassersteinW2(a, bs, n, 2)).toBe(Math.sqrt(0.75 * 0.75 + 1.25 * 1.25));
    // Generic float data and d = 3: equal up to float32 rounding of the shifted copy.
    const c = gaussian(rng, 300, 3);
    const t = [0.3, -0.2, 1.1];
    const cs = c.map((val, k) => val + t[k % 3]!);
    expect(wassersteinW2(c, cs, 300, 3)).toBeCloseTo(Math.hypot(0.3, -0.2, 1.1), 6);
  });

  it('two independent 2048-point samples of N(0, I) in 2-D are close, and W2 is symmetric', () => {
    const rng = new Rng(2003);
    const n = 2048;
    const a = gaussian(rng, n), b = gaussian(rng, n);
    const ab = wassersteinW2(a, b, n, 2);
    const ba = wassersteinW2(b, a, n, 2);
    expect(ab).toBeGreaterThan(0);
    expect(ab).toBeLessThan(0.2);
    expect(ba).toBeCloseTo(ab, 12);
  });

  it('separates different distributions', () => {
    const rng = new Rng(2004);
    const n = 1024;
    expect(wassersteinW2(gaussian(rng, n), moons(rng, n), n, 2)).toBeGreaterThan(1);
  });

  it('requires equal sizes and consistent shapes', () => {
    expect(() => wassersteinW2(new Float32Array(8), new Float32Array(6), 4, 2)).toThrow(/equal sizes required/);
    expect(() => wassersteinW2(new Float32Array(8), new Float32Array(8), 3, 2)).toThrow(/expected n·d = 3·2 = 6/);
    expect(() => wassersteinW2(new Float32Array(8), new Float32Array(8), 0, 2)).toThrow(/positive integer/);
    expect(() => wassersteinW2(new Float32Array(8), new Float32Array(8), 4, 0)).toThrow(/positive integer/);
  });
});
