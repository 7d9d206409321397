/**
 * Every matmul kernel variant against a float64 reference at awkward shapes (1×1×1, 7×13×5,
 * 257×129×65, multiples of 4 for the vec4 paths, …), all four transpose combinations, operands at
 * aligned and unaligned element offsets (the padding before them poisoned with NaN), with and
 * without the bias + activation epilogue. Runs on Node's Dawn (SwiftShader here).
 */
import { describe, expect, it } from 'vitest';
import { matmulKernel, MATMUL_VARIANTS, vecPlan, chooseMatmul, regConfigFor } from '../kernels/matmul';
import { caseArgs, caseData, caseLabel, matmulCases, matmulReference, matmulTolerance, runMatmulCase } from './fixtures/matmul-cases';
import { expectClose, gpu } from './helpers';

const cases = matmulCases();
// Workgroup-memory kernels take ~0.8 s each to compile on SwiftShader (barriers): they get the three
// most telling shapes (every transpose combination, offsets and epilogues still rotate through).
const wgmemCases = cases.filter((c) => [[7, 13, 5], [257, 129, 65], [64, 32, 48]].some(([m, k, n]) => c.m === m && c.k === k && c.n === n));

describe('matmul variants (Node)', () => {
  for (const variant of MATMUL_VARIANTS) {
    const mine = variant.startsWith('wgmem') ? wgmemCases : cases;
    it(`${variant}: ${mine.length} cases match float64`, async () => {
      const b = await gpu();
      for (const c of mine) {
        const i = cases.indexOf(c);
        const d = caseData(c, i);
        const got = await runMatmulCase(b, variant, c, d);
        expectClose(got, matmulReference(c, d), matmulTolerance(c.k), `${variant} ${caseLabel(c)}`);
      }
    });
  }

  it('uses vec4 only where offsets and row lengths allow it', () => {
    const base = { m: 8, n: 12, k: 16, transA: false, transB: false, offsetA: 0, offsetB: 0 };
    expect(vecPlan(base)).toEqual({ a4: true, b4: true, c4: true });
    expect(vecPlan({ ...base, offsetA: 2 })).toMatchObject({ a4: false, b4: true });
    expect(vecPlan({ ...base, k: 13 })).toMatchObject({ a4: false, b4: true });
    expect(vecPlan({ ...base, n: 10 })).toEqual({ a4: true, b4: false, c4: false });
    // Transposed operands are contiguous along M (A) and K (B).
    expect(vecPlan({ ...base, transA: true, m: 6 })).toMatchObject({ a4: false });
    expect(vecPlan({ ...base, transB: true, k: 14 })).toMatchObject({ b4: false });
    expect(vecPlan(base, false)).toEqual({ a4: false, b4: false, c4: false });
    // The binding types follow the plan.
    const k = matmulKernel(base, 'reg4x4');
    expect(k.source).toMatch(/var<storage, read> A: array<vec4<f32>>/);
    const s = matmulKernel({ ...base, offsetB: 3 }, 'reg4x4');
    expect(s.source).toMatch(/var<storage, read> B: array<f32>/);
    expect(matmulKernel(base, 'reg-scalar').source).not.toMatch(/array<vec4<f32>>/);
  });

  it('keeps register tiles out of private arrays', () => {
    for (const v of MATMUL_VARIANTS) {
      for (const c of cases.slice(0, 8)) expect(matmulKernel(caseArgs(c), v).source).not.toMatch(/var\s+\w+\s*:\s*array</);
    }
  });

  it('chooses register tiling on software adapters and workgroup memory on large hardware problems', () => {
    const big = { m: 1024, n: 1024, k: 1024, transA: false, transB: false, offsetA: 0, offsetB: 0 };
    expect(chooseMatmul(big, 'software')).toBe('reg');
    expect(chooseMatmul(big, 'hardware')).toBe('wgmem');
    expect(chooseMatmul({ ...big, m: 8, n: 8, k: 8 }, 'hardware')).toBe('reg4x4');
  });

  it('sizes the register tile by shape and keeps enough workgroups', () => {
    const sq = (m: number, k: number, n: number) => regConfigFor({ m, n, k, transA: false, transB: false, offsetA: 0, offsetB: 0 });
    expect(sq(1024, 1024, 1024)).toMatchObject({ tm: 16, nv: 4, wgx: 8, wgy: 8 });
    // 64×64 output (a weight gradient): 4×4 threads of 16×16, split into 2×2 workgroups.
    expect(sq(64, 4096, 64)).toMatchObject({ tm: 16, nv: 4, wgx: 2, wgy: 2 });
    // Thin operands get thin tiles: no rows computed twice.
    expect(sq(3, 4096, 64)).toMatchObject({ tm: 4 });
    expect(sq(3, 65536, 64)).toMatchObject({ tm: 4, nv: 4 });
    expect(sq(65536, 64, 2)).toMatchObject({ tm: 16, nv: 1 });
    // Small problems keep tiles of at most 8×8 (much quicker to compile).
    expect(sq(256, 64, 64)).toMatchObject({ tm: 8, nv: 2 });
    for (const [m, n] of [[1, 1], [7, 5], [257, 65], [4096, 64]]) {
      const c = sq(m!, 8, n!);
      expect(c.wgx * c.wgy).toBeGreaterThanOrEqual(1);
      expect(c.wgx * c.wgy).toBeLessThanOrEqual(64);
    }
  });

  it('rejects bad sizes and unknown variants', () => {
    const base = { m: 8, n: 12, k: 16, transA: false, transB: false, offsetA: 0, offsetB: 0 };
    expect(() => matmulKernel({ ...base, k: 0 }, 'reg4x4')).toThrow(/k must be a positive integer/);
    expect(() => matmulKernel(base, 'nope' as never)).toThrow(/unknown variant "nope"/);
  });
});
