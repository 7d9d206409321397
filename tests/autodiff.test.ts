/**
 * The tape (engine/autodiff.ts) and tensor ownership (engine/tensor.ts): reused nodes and gradient
 * accumulation against closed forms, noGrad, unused parameters, disposal of intermediates (memory
 * counters back to their baseline, buffers reused from the pool), scope()/keep(), and disposing
 * tensors inside valueAndGrad while backward still needs them.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine';
import type { Tensor } from '../engine';
import { Rng } from '../engine/philox';
import type { WebGPUBackend } from '../engine/webgpu-backend';
import { expectClose, gpu, rand, up } from './helpers';

let b: WebGPUBackend;
beforeAll(async () => {
  b = await gpu();
});

const rng = new Rng(77);
const TOL = { atol: 1e-5, rtol: 1e-5 };

async function settle(): Promise<void> {
  await b.sync();
}

describe('tape', () => {
  it('a node used three times: y = x·x + exp(x)·x, dy/dx = 2x + eˣ(1 + x)', async () => {
    const xr = rand([7, 13], rng, -2, 2);
    const x = up(xr);
    const { value, grads } = E.valueAndGrad(() => E.sum(E.add(E.mul(x, x), E.mul(E.exp(x), x))), [x]);
    const xs = Array.from(xr.data);
    expect(await value.item()).toBeCloseTo(xs.reduce((a, v) => a + v * v + Math.exp(v) * v, 0), 3);
    expectClose(await grads[0]!.data(), xs.map((v) => 2 * v + Math.exp(v) * (1 + v)), TOL, 'reused x');
    [x, value, ...grads].forEach((t) => t.dispose());
  });

  it('accumulates gradients over paths, through broadcasting and into several parameters', async () => {
    // L = Σ (x + M)·W + Σ x² + Σ (x·c) with x [4], M [3,4], W [3,4], c [4] (not a parameter):
    // dL/dx = Σ_rows W + 2x + c,  dL/dM = W,  dL/dW = x + M.
    const [xr, mr, wr, cr] = [rand([4], rng), rand([3, 4], rng), rand([3, 4], rng), rand([4], rng)];
    const [x, m, w, c] = [xr, mr, wr, cr].map(up) as [Tensor, Tensor, Tensor, Tensor];
    const { value, grads } = E.valueAndGrad(() => E.add(E.add(E.sum(E.mul(E.add(x, m), w)), E.sum(E.square(x))), E.sum(E.mul(x, c))), [x, m, w]);
    const X = xr.data, M = mr.data, W = wr.data, C = cr.data;
    const gx = [0, 1, 2, 3].map((j) => W[j]! + W[4 + j]! + W[8 + j]! + 2 * X[j]! + C[j]!);
    let L = 0;
    for (let i = 0; i < 12; i++) L += (X[i % 4]! + M[i]!) * W[i]!;
    for (let j = 0; j < 4; j++) L += X[j]! * X[j]! + X[j]! * C[j]!;
    expect(await value.item()).toBeCloseTo(L, 4);
    expectClose(await grads[0]!.data(), gx, TOL, 'dx');
    expectClose(await grads[1]!.data(), W, TOL, 'dM');
    expectClose(await grads[2]!.data(), Array.from(M, (v, i) => v + X[i % 4]!), TOL, 'dW');
    expect(grads.map((g) => g.shape)).toEqual([[4], [3, 4], [3, 4]]);
    [x, m, w, c, value, ...grads].forEach((t) => t.dispose());
  });

  it('noGrad records nothing: a branch under noGrad contributes no gradient', async () => {
    const xr = rand([5], rng);
    const x = up(xr);
    // L = Σ 2x + stop(Σ 3x²): only the first term is differentiated.
    const { value, grads } = E.valueAndGrad(() => E.add(E.sum(E.mul(x, 2)), E.noGrad(() => E.sum(E.mul(E.square(x), 3)))), [x]);
    expectClose(await grads[0]!.data(), [2, 2, 2, 2, 2], TOL, 'noGrad branch');
    expect(await value.item()).toBeCloseTo(xr.data.reduce((a, v) => a + 2 * v + 3 * v * v, 0), 4);
    // the whole function under noGrad: the value is not on the tape, so every gradient is 0
    const r = E.valueAndGrad(() => E.noGrad(() => E.sum(E.exp(x))), [x]);
    expect(Array.from(await r.grads[0]!.data())).toEqual([0, 0, 0, 0, 0]);
    // noGrad restores recording afterwards (also when its function throws)
    expect(() => E.noGrad(() => { throw new Error('boom'); })).toThrow('boom');
    const r2 = E.valueAndGrad(() => E.sum(E.mul(x, 4)), [x]);
    expectClose(await r2.grads[0]!.data(), [4, 4, 4, 4, 4], TOL, 'after noGrad');
    [x, value, ...grads, r.value, ...r.grads, r2.value, ...r2.grads].forEach((t) => t.dispose());
  });

  it('a parameter the function does not use gets a zero gradient of its shape', async () => {
    const x = up(rand([3], rng));
    const unused = up(rand([2, 5], rng));
    const { value, grads } = E.valueAndGrad(() => E.sum(E.square(x)), [x, unused]);
    expect(grads[1]!.shape).toEqual([2, 5]);
    expect(Array.from(await grads[1]!.data())).toEqual(new Array(10).fill(0));
    expect(grads[1]!.sharesStorageWith(unused)).toBe(false);
    [x, unused, value, ...grads].forEach((t) => t.dispose());
  });

  it('the gradient of the parameter itself (L = Σ x) is ones, in a fresh tensor', async () => {
    const x = up(rand([2, 3], rng));
    const { value, grads } = E.valueAndGrad(() => E.sum(x), [x]);
    expect(Array.from(await grads[0]!.data())).toEqual([1, 1, 1, 1, 1, 1]);
    expect(grads[0]!.sharesStorageWith(x)).toBe(false);
    [x, value, ...grads].forEach((t) => t.dispose());
  });
});

describe('memory', () => {
  /** A small two-layer loss with many intermediates. */
  const mlpLoss = (x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) => () =>
    E.mean(E.square(E.linear(E.linear(x, w1, b1, 'tanh'), w2, b2)));

  it('valueAndGrad disposes its intermediates: bytesLive returns to the baseline; buffers come from the pool', async () => {
    const params = [rand([16, 3], rng), rand([3, 32], rng), rand([32], rng), rand([32, 2], rng), rand([2], rng)].map(up);
    const [x, w1, b1, w2, b2] = params as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const f = mlpLoss(x, w1, b1, w2, b2);
    await settle();
    const base = b.counters.bytesLive;
    const r1 = E.valueAndGrad(f, [w1, b1, w2, b2]);
    // live now: the value and four gradients, nothing else
    const held = [r1.value, ...r1.grads];
    expect(b.counters.bytesLive).toBeGreaterThan(base);
    expect(b.counters.bytesLive - base).toBeLessThanOrEqual(held.reduce((a, t) => a + Math.max(256, 2 ** Math.ceil(Math.log2(t.size * 4))), 0));
    const g1 = await Promise.all(r1.grads.map((g) => g.data()));
    held.forEach((t) => t.dispose());
    expect(b.counters.bytesLive).toBe(base);
    // the same computation again allocates no new GPU buffer: everything comes from the pool
    const created = b.counters.buffersCreated;
    const r2 = E.valueAndGrad(f, [w1, b1, w2, b2]);
    expect(b.counters.buffersCreated).toBe(created);
    const g2 = await Promise.all(r2.grads.map((g) => g.data()));
    g1.forEach((g, i) => expect(Array.from(g2[i]!)).toEqual(Array.from(g)));
    [r2.value, ...r2.grads].forEach((t) => t.dispose());
    expect(b.counters.bytesLive).toBe(base);
    params.forEach((t) => t.dispose());
  });

  it('fused and unfused dense layers leak nothing either', async () => {
    const params = [rand([9, 3], rng), rand([3, 5], rng), rand([5], rng), rand([5, 2], rng), rand([2], rng)].map(up);
    const [x, w1, b1, w2, b2] = params as [Tensor, Tensor, Tensor, Tensor, Tensor];
    for (const fusion of [true, false]) {
      E.setFusion(fusion);
      try {
        const base = b.counters.bytesLive;
        const r = E.valueAndGrad(mlpLoss(x, w1, b1, w2, b2), [x, w1, b1, w2, b2]);
        [r.value, ...r.grads].forEach((t) => t.dispose());
        expect(b.counters.bytesLive, `fusion ${fusion}`).toBe(base);
      } finally {
        E.setFusion(true);
      }
    }
    params.forEach((t) => t.dispose());
  });

  it('an error inside valueAndGrad releases the tape and leaves no tensors behind', async () => {
    const x = up(rand([4], rng));
    const base = b.counters.bytesLive;
    expect(() => E.valueAndGrad(() => E.exp(E.mul(x, 2)), [x])).toThrow(/one-element/);
    expect(b.counters.bytesLive).toBe(base);
    // and the next call records on a fresh tape
    const r = E.valueAndGrad(() => E.sum(E.mul(x, 3)), [x]);
    expectClose(await r.grads[0]!.data(), [3, 3, 3, 3], TOL, 'after error');
    [x, r.value, ...r.grads].forEach((t) => t.dispose());
  });
});

describe('scope and keep', () => {
  it('disposes what was made inside except the returned tensors (arrays, objects, Maps)', async () => {
    const outside = E.tensor([1, 2]);
    const made: Tensor[] = [];
    const result = E.scope(() => {
      const a = E.exp(outside);
      const c = E.mul(a, 2);
      const d = E.neg(c);
      const e = E.sum(d);
      made.push(a, c, d, e);
      return { list: [c], map: new Map([['d', d]]) };
    });
    expect(made.map((t) => t.disposed)).toEqual([true, false, false, true]);
    expect(outside.disposed).toBe(false); // made outside: not the scope's to dispose
    expect(() => E.neg(made[0]!)).toThrow(/disposed/);
    expectClose(await result.list[0]!.data(), [2 * Math.E, 2 * Math.exp(2)], TOL, 'kept');
    [outside, result.list[0]!, result.map.get('d')!].forEach((t) => t.dispose());
  });

  it('nested scopes: a tensor returned from the inner scope belongs to the outer one', () => {
    const x = E.tensor([1, 2, 3]);
    let inner: Tensor | null = null;
    let innerTemp: Tensor | null = null;
    const outer = E.scope(() => {
      inner = E.scope(() => {
        innerTemp = E.exp(x);
        return E.mul(innerTemp, 2);
      });
      expect(innerTemp!.disposed).toBe(true); // inner scope ended
      expect(inner.disposed).toBe(false);
      return E.add(inner, 1);
    });
    expect(inner!.disposed).toBe(true); // the outer scope did not return it
    expect(outer.disposed).toBe(false);
    [x, outer].forEach((t) => t.dispose());
  });

  it('keep() lets a tensor outlive every enclosing scope', () => {
    const x = E.tensor([1, 2, 3]);
    let kept: Tensor | null = null;
    let dropped: Tensor | null = null;
    E.scope(() => {
      E.scope(() => {
        kept = E.keep(E.exp(x));
        dropped = E.exp(x);
      });
    });
    expect(kept!.disposed).toBe(false);
    expect(dropped!.disposed).toBe(true);
    [x, kept!].forEach((t) => t.dispose());
  });

  it('a throwing scope disposes everything made inside and rethrows', () => {
    const x = E.tensor([1, 2, 3]);
    let made: Tensor | null = null;
    expect(() =>
      E.scope(() => {
        made = E.exp(x);
        throw new Error('inside');
      }),
    ).toThrow('inside');
    expect(made!.disposed).toBe(true);
    // the scope stack is intact: a later scope behaves normally
    const y = E.scope(() => E.neg(x));
    expect(y.disposed).toBe(false);
    [x, y].forEach((t) => t.dispose());
  });

  it('memory is back at the baseline after a scope, and dispose() is idempotent', async () => {
    const x = E.tensor(new Float32Array(1000).fill(1));
    await settle();
    const base = b.counters.bytesLive;
    const t = E.scope(() => E.sum(E.exp(E.mul(x, 0.5))));
    t.dispose();
    t.dispose();
    expect(b.counters.bytesLive).toBe(base);
    x.dispose();
  });

  it('a view keeps its storage alive after the base is disposed', async () => {
    const x = E.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const v = E.reshape(x, [3, 2]);
    x.dispose();
    expect(() => E.neg(x)).toThrow(/disposed/);
    expect(Array.from(await v.data())).toEqual([1, 2, 3, 4, 5, 6]);
    v.dispose();
  });
});

describe('disposing inside valueAndGrad', () => {
  it('an intermediate and an outside input disposed inside fn: backward still has them', async () => {
    const xr = rand([6], rng);
    const cr = rand([6], rng);
    const x = up(xr);
    const c = up(cr);
    const base = b.counters.bytesLive;
    const { value, grads } = E.valueAndGrad(() => {
      const h = E.exp(x); // L = Σ (eˣ)² · c  → dL/dx = 2·e²ˣ·c
      const h2 = E.mul(h, h);
      h.dispose(); // the mul's VJP needs h
      const y = E.sum(E.mul(h2, c));
      c.dispose(); // the mul's VJP needs c
      return y;
    }, [x]);
    expect(c.disposed).toBe(true);
    expect(() => E.neg(c)).toThrow(/disposed/);
    expectClose(await grads[0]!.data(), Array.from(xr.data, (v, i) => 2 * Math.exp(2 * v) * cr.data[i]!), { atol: 1e-5, rtol: 1e-5 }, 'grad');
    expect(await value.item()).toBeCloseTo(xr.data.reduce((a, v, i) => a + Math.exp(2 * v) * cr.data[i]!, 0), 4);
    [value, ...grads].forEach((t) => t.dispose());
    // c's buffer went back to the pool once the tape released it
    expect(b.counters.bytesLive).toBe(base - 256);
    x.dispose();
  });

  it('disposing the parameter itself inside fn still yields its gradient', async () => {
    const xr = rand([3], rng);
    const x = up(xr);
    const { value, grads } = E.valueAndGrad(() => {
      const y = E.sum(E.square(x));
      x.dispose();
      return y;
    }, [x]);
    expectClose(await grads[0]!.data(), Array.from(xr.data, (v) => 2 * v), TOL, 'grad of a disposed param');
    [value, ...grads].forEach((t) => t.dispose());
  });
});
