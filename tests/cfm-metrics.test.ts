import { describe, expect, test } from 'vitest';
import { Rng } from '../engine/philox';
import { getDataset } from '../datasets/toy2d';
import { normalizedPathEnergy, w2 } from '../cfm/metrics';

describe('W2 metric', () => {
  test('two independent 2 048-point moons samples sit near the noise floor (SPEC §5.1: 0.076)', () => {
    const moons = getDataset('moons');
    const vals: number[] = [];
    for (let s = 0; s < 3; s++) vals.push(w2(moons.sample(2048, new Rng(100 + s)), moons.sample(2048, new Rng(200 + s)), 2));
    for (const v of vals) {
      expect(v).toBeGreaterThan(0.05);
      expect(v).toBeLessThan(0.11);
    }
  });

  test('different distributions are far apart; a shift by c gives W2 ≈ |c|', () => {
    const g = getDataset('gaussian');
    const a = g.sample(1024, new Rng(1));
    expect(w2(a, getDataset('8gaussians').sample(1024, new Rng(2)), 2)).toBeGreaterThan(3);
    const shifted = a.map((v, k) => (k % 2 === 0 ? v + 3 : v));
    expect(w2(a, shifted, 2)).toBeCloseTo(3, 5);
  });
});

describe('normalized path energy', () => {
  test('|E∫‖v‖² − W2²| / W2²', () => {
    expect(normalizedPathEnergy(1.1, 1)).toBeCloseTo(0.1, 12);
    expect(normalizedPathEnergy(0.5, 2)).toBeCloseTo(0.75, 12);
    expect(Number.isNaN(normalizedPathEnergy(1, 0))).toBe(true);
  });
});
