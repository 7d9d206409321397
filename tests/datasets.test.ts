import { describe, expect, test } from 'vitest';
import { Rng } from '../engine/philox';
import { DATASETS, getDataset } from '../datasets/toy2d';

const N = 20000;
const sample = (name: string, n = N, seed = 1): Float32Array => getDataset(name).sample(n, new Rng(seed));

function mean(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s / a.length;
}
function std(a: ArrayLike<number>): number {
  const m = mean(a);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - m) ** 2;
  return Math.sqrt(s / a.length);
}
function col(p: Float32Array, c: number): Float64Array {
  const out = new Float64Array(p.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = p[2 * i + c]!;
  return out;
}
function sqNorms(p: Float32Array): Float64Array {
  const out = new Float64Array(p.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = p[2 * i]! ** 2 + p[2 * i + 1]! ** 2;
  return out;
}
/** numpy.linspace(0, stop, m) with endpoint. */
function lin(stop: number, m: number, endpoint = true): number[] {
  const d = endpoint ? m - 1 : m;
  return Array.from({ length: m }, (_, i) => (d > 0 ? (i * stop) / d : 0));
}

const S2 = Math.SQRT1_2;
const DIRS = [[1, 0], [-1, 0], [0, 1], [0, -1], [S2, S2], [S2, -S2], [-S2, S2], [-S2, -S2]];

/** Residuals to the nearest of the 8 centres at `radius`, per coordinate, and the per-centre counts. */
function eightModeStats(p: Float32Array, radius: number) {
  const res: number[] = [];
  const counts = new Array(8).fill(0);
  for (let i = 0; i < p.length / 2; i++) {
    let best = 0, bd = Infinity;
    for (let k = 0; k < 8; k++) {
      const d = (p[2 * i]! - radius * DIRS[k]![0]!) ** 2 + (p[2 * i + 1]! - radius * DIRS[k]![1]!) ** 2;
      if (d < bd) [bd, best] = [d, k];
    }
    counts[best]++;
    res.push(p[2 * i]! - radius * DIRS[best]![0]!, p[2 * i + 1]! - radius * DIRS[best]![1]!);
  }
  const radii = Array.from({ length: p.length / 2 }, (_, i) => Math.hypot(p[2 * i]!, p[2 * i + 1]!));
  return { residualStd: std(res), residualMean: mean(res), counts, meanRadius: mean(radii) };
}

/** Exact means/variances of sklearn make_moons' noise-free arcs for n points, plus noise². */
function moonsMoments(n: number, noise: number) {
  const nOut = Math.floor(n / 2), nIn = n - nOut;
  const xs: number[] = [], ys: number[] = [];
  for (const a of lin(Math.PI, nOut)) { xs.push(Math.cos(a)); ys.push(Math.sin(a)); }
  for (const a of lin(Math.PI, nIn)) { xs.push(1 - Math.cos(a)); ys.push(1 - Math.sin(a) - 0.5); }
  return { mx: mean(xs), my: mean(ys), vx: std(xs) ** 2 + noise ** 2, vy: std(ys) ** 2 + noise ** 2 };
}

describe('every dataset', () => {
  for (const name of Object.keys(DATASETS)) {
    test(`${name}: shape, finite, reproducible, seed-dependent`, () => {
      for (const n of [0, 1, 7, 257]) {
        const a = sample(name, n, 3);
        expect(a).toBeInstanceOf(Float32Array);
        expect(a.length).toBe(2 * n);
        expect(a.every(Number.isFinite)).toBe(true);
      }
      expect(sample(name, 300, 5)).toEqual(sample(name, 300, 5));
      expect(sample(name, 300, 5)).not.toEqual(sample(name, 300, 6));
      expect(DATASETS[name]!.dim).toBe(2);
      expect(DATASETS[name]!.description.length).toBeGreaterThan(0);
    });
  }

  test('bad names and sizes are rejected with the accepted values', () => {
    expect(() => getDataset('nope')).toThrow(/unknown dataset "nope"; accepted: gaussian, 8gaussians, moons/);
    expect(() => getDataset('toString')).toThrow(/unknown dataset/);
    expect(() => sample('moons', -1)).toThrow(/non-negative integer, got -1/);
    expect(() => sample('gaussian', 2.5)).toThrow(/got 2.5/);
  });

  test('entropies of SPEC §2', () => {
    expect(DATASETS['checkerboard']!.entropy).toBeCloseTo(3.466, 3);
    expect(DATASETS['ffjord-8gaussians']!.entropy).toBe(2.834);
    expect(DATASETS['rings']!.entropy).toBe(2.632);
    expect(DATASETS['circles']!.entropy).toBe(3.266);
    expect(DATASETS['ffjord-moons']!.entropy).toBe(2.388);
    expect(DATASETS['swissroll']!.entropy).toBe(2.669);
    expect(DATASETS['gaussian']!.entropy).toBeCloseTo(2.8379, 4);
  });
});

describe('torchcfm set', () => {
  test('gaussian: N(0, I)', () => {
    const p = sample('gaussian');
    for (const c of [0, 1]) {
      expect(Math.abs(mean(col(p, c)))).toBeLessThan(0.03);
      expect(std(col(p, c))).toBeCloseTo(1, 1);
    }
  });

  test('8gaussians: radius 5, per-coordinate std 0.1^0.25 ≈ 0.562 (sqrt(var) passed as covariance)', () => {
    const s = eightModeStats(sample('8gaussians'), 5);
    expect(Math.abs(s.residualStd - 0.5623)).toBeLessThan(0.01);
    expect(Math.abs(s.residualMean)).toBeLessThan(0.02);
    expect(Math.abs(s.meanRadius - 5)).toBeLessThan(0.1);
    for (const c of s.counts) expect(Math.abs(c - N / 8)).toBeLessThan(250);
  });

  test('moons: n//2 on the outer arc at linspace angles, ONE U[0,0.2) offset shared by x and y', () => {
    const n = 101, nOut = 50, nIn = 51;
    const p = sample('moons', n, 11);
    // Slots: outer arc points then inner arc points, exactly as torchdyn lays them out.
    const slots: [number, number][] = [
      ...lin(Math.PI, nOut).map((a) => [Math.cos(a), Math.sin(a)] as [number, number]),
      ...lin(Math.PI, nIn).map((a) => [1 - Math.cos(a), 1 - Math.sin(a) - 0.5] as [number, number]),
    ];
    const cand: number[][] = [];
    const offsets = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const rx = (p[2 * i]! + 1) / 3, ry = (p[2 * i + 1]! + 1) / 3;
      cand.push([]);
      slots.forEach(([sx, sy], k) => {
        const ux = rx - sx, uy = ry - sy;
        if (Math.abs(ux - uy) < 2e-6 && ux > -2e-6 && ux < 0.2) {
          cand[i]!.push(k);
          offsets.set(`${i},${k}`, ux);
        }
      });
    }
    // Perfect matching points → slots (Kuhn's augmenting paths): every slot used exactly once.
    const owner = new Array<number>(slots.length).fill(-1);
    const tryAssign = (i: number, seen: boolean[]): boolean => {
      for (const k of cand[i]!) {
        if (seen[k]) continue;
        seen[k] = true;
        if (owner[k] === -1 || tryAssign(owner[k]!, seen)) {
          owner[k] = i;
          return true;
        }
      }
      return false;
    };
    for (let i = 0; i < n; i++) expect(tryAssign(i, new Array(slots.length).fill(false))).toBe(true);
    expect(owner.slice(0, nOut).every((i) => i >= 0)).toBe(true);
    const u = owner.map((i, k) => offsets.get(`${i},${k}`)!);
    expect(Math.abs(mean(u) - 0.1)).toBeLessThan(0.025);
    expect(Math.max(...u)).toBeLessThan(0.2);
    // Rows are shuffled: the first half is not all outer arc.
    const firstHalfOuter = owner.slice(0, nOut).filter((i) => i < nOut).length;
    expect(firstHalfOuter).toBeLessThan(nOut);
  });
});

describe('FFJORD set', () => {
  test('ffjord-8gaussians: centres 4/1.414, std 0.5/1.414', () => {
    const s = eightModeStats(sample('ffjord-8gaussians'), 4 / 1.414);
    expect(Math.abs(s.residualStd - 0.5 / 1.414)).toBeLessThan(0.008);
    expect(Math.abs(s.meanRadius - 4 / 1.414)).toBeLessThan(0.05);
  });

  test('ffjord-moons: make_moons(noise 0.1)·2 + (−1, −0.2), exact arc moments', () => {
    const p = sample('ffjord-moons');
    const m = moonsMoments(N, 0.1);
    expect(mean(col(p, 0))).toBeCloseTo(2 * m.mx - 1, 2);
    expect(mean(col(p, 1))).toBeCloseTo(2 * m.my - 0.2, 2);
    expect(std(col(p, 0)) ** 2 / (4 * m.vx)).toBeCloseTo(1, 2);
    expect(std(col(p, 1)) ** 2 / (4 * m.vy)).toBeCloseTo(1, 2);
  });

  test('checkerboard: every point in a dark square of [−4, 4)², 8 squares equally used', () => {
    const p = sample('checkerboard');
    const counts = new Map<string, number>();
    let outside = 0, light = 0;
    for (let i = 0; i < N; i++) {
      const x = p[2 * i]!, y = p[2 * i + 1]!;
      if (!(x >= -4 && x < 4 && y >= -4 && y < 4)) outside++;
      const cx = Math.floor(x / 2), cy = Math.floor(y / 2);
      if ((((cx + cy) % 2) + 2) % 2 !== 0) light++;
      counts.set(`${cx},${cy}`, (counts.get(`${cx},${cy}`) ?? 0) + 1);
    }
    expect([outside, light]).toEqual([0, 0]);
    expect(counts.size).toBe(8);
    for (const c of counts.values()) expect(Math.abs(c - N / 8)).toBeLessThan(250);
  });

  test('2spirals: E|x|² from the FFJORD formula (t = 3π√U, /3, noise 0.1)', () => {
    // E|d|² = E t² + 0.5·(E[t sin t] − E[t cos t]) + 2·E[(U/2)²], integrated over U by the midpoint rule.
    const K = 200000;
    let et2 = 0, etsin = 0, etcos = 0;
    for (let k = 0; k < K; k++) {
      const t = 3 * Math.PI * Math.sqrt((k + 0.5) / K);
      et2 += t * t / K;
      etsin += (t * Math.sin(t)) / K;
      etcos += (t * Math.cos(t)) / K;
    }
    const expected = (et2 + 0.5 * (etsin - etcos) + 2 * (0.25 / 3)) / 9 + 2 * 0.01;
    const p = sample('2spirals');
    expect(mean(sqNorms(p)) / expected).toBeCloseTo(1, 1);
    expect(Math.abs(mean(sqNorms(p)) / expected - 1)).toBeLessThan(0.02);
    expect(sample('2spirals', 7).length).toBe(14);
  });

  test('pinwheel: E|x|² = 4·(1 + 0.3² + 0.1²) and arms curled by −0.25·exp(r/2)', () => {
    const p = sample('pinwheel');
    expect(Math.abs(mean(sqNorms(p)) / 4.4 - 1)).toBeLessThan(0.02);
    const sp = (2 * Math.PI) / 5;
    let ok = 0;
    for (let i = 0; i < N; i++) {
      const r = Math.hypot(p[2 * i]!, p[2 * i + 1]!);
      let res = (-Math.atan2(p[2 * i + 1]!, p[2 * i]!) - 0.25 * Math.exp(r / 2)) % sp;
      res = ((res % sp) + sp) % sp;
      if (res > sp / 2) res -= sp;
      if (Math.abs(res) < 0.3) ok++;
    }
    expect(ok / N).toBeGreaterThan(0.9);
  });

  test('circles: radii 3 and 1.5, noise std 0.24, n//2 outer', () => {
    const p = sample('circles');
    const outer: number[] = [], inner: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = Math.hypot(p[2 * i]!, p[2 * i + 1]!);
      (r > 2.25 ? outer : inner).push(r);
    }
    expect(Math.abs(outer.length - N / 2)).toBeLessThan(0.005 * N);
    expect(Math.abs(mean(outer) - 3)).toBeLessThan(0.03);
    expect(Math.abs(mean(inner) - 1.5)).toBeLessThan(0.04);
    expect(Math.abs(std(outer) - 0.24)).toBeLessThan(0.015);
  });

  test('rings: radii 3, 2.25, 1.5, 0.75 with n//4 on the outer three, noise 0.08', () => {
    const n = 20002;
    const p = sample('rings', n);
    const radii = [3, 2.25, 1.5, 0.75];
    const counts = [0, 0, 0, 0];
    const res: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = Math.hypot(p[2 * i]!, p[2 * i + 1]!);
      const k = radii.map((R) => Math.abs(r - R)).reduce((b, d, j, a) => (d < a[b]! ? j : b), 0);
      counts[k]++;
      res.push(r - radii[k]!);
    }
    expect(counts).toEqual([5000, 5000, 5000, 5002]);
    expect(Math.abs(std(res) - 0.08)).toBeLessThan(0.005);
  });

  test('swissroll: E|x|² = (E t² + 2·1²)/25 with t = 1.5π(1 + 2U)', () => {
    const expected = ((1.5 * Math.PI) ** 2 * (13 / 3) + 2) / 25;
    expect(Math.abs(mean(sqNorms(sample('swissroll'))) / expected - 1)).toBeLessThan(0.02);
  });
});

describe('OT-CFM paper set', () => {
  test('paper-moons: make_moons(noise 0.05)·2, x − 1', () => {
    const p = sample('paper-moons');
    const m = moonsMoments(N, 0.05);
    expect(mean(col(p, 0))).toBeCloseTo(2 * m.mx - 1, 2);
    expect(mean(col(p, 1))).toBeCloseTo(2 * m.my, 2);
    expect(std(col(p, 0)) ** 2 / (4 * m.vx)).toBeCloseTo(1, 2);
    expect(std(col(p, 1)) ** 2 / (4 * m.vy)).toBeCloseTo(1, 2);
  });

  test('paper-scurve: make_s_curve(noise 0.05) columns (0, 2) ·1.5', () => {
    const p = sample('paper-scurve');
    const ex2 = 2.25 * (0.5 + 0.0025);
    const ecos = -1 / (1.5 * Math.PI);
    const ey2 = 2.25 * (0.5 - 2 * ecos + 1 + 0.0025);
    expect(Math.abs(mean(col(p, 0).map((v) => v * v)) / ex2 - 1)).toBeLessThan(0.02);
    expect(Math.abs(mean(col(p, 1).map((v) => v * v)) / ey2 - 1)).toBeLessThan(0.02);
    expect(Math.max(...col(p, 1).map(Math.abs))).toBeLessThan(3.5);
  });

  test('paper-8gaussians: radius 5, std 1 (E|x|² = 25 + 2)', () => {
    const p = sample('paper-8gaussians');
    expect(Math.abs(mean(sqNorms(p)) / 27 - 1)).toBeLessThan(0.015);
    expect(Math.abs(std(col(p, 0)) ** 2 / 13.5 - 1)).toBeLessThan(0.03);
  });

  test('paper-moons-std7: scalar mean 0, scalar std 7, moon shape kept', () => {
    const p = sample('paper-moons-std7');
    const all = Array.from(p);
    expect(Math.abs(mean(all))).toBeLessThan(1e-4);
    expect(std(all) * Math.sqrt(all.length / (all.length - 1))).toBeCloseTo(7, 3);
    const m = moonsMoments(N, 0.1);
    const mu = (m.mx + m.my) / 2;
    const sd = Math.sqrt((m.vx + m.vy) / 2 + ((m.mx - mu) ** 2 + (m.my - mu) ** 2) / 2);
    expect(mean(col(p, 0))).toBeCloseTo(((m.mx - mu) / sd) * 7, 1);
    expect(mean(col(p, 1))).toBeCloseTo(((m.my - mu) / sd) * 7, 1);
  });

  test('paper-8gaussians-r12: radius 12, std 1.5', () => {
    const s = eightModeStats(sample('paper-8gaussians-r12'), 12);
    expect(Math.abs(s.residualStd - 1.5)).toBeLessThan(0.03);
    expect(Math.abs(s.meanRadius - 12)).toBeLessThan(0.15);
  });
});
