/**
 * Bad input raises a clear error, one test each: the message names the op, the offending shapes or
 * values and, where it helps, what is accepted. Failed calls leave no tensor behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as E from '../engine';
import type { Tensor } from '../engine';
import type { WebGPUBackend } from '../engine/webgpu-backend';
import { gpu } from './helpers';

let b: WebGPUBackend;
beforeAll(async () => {
  b = await gpu();
});

/** Runs fn, expecting it to throw; returns the error. Also checks that no GPU memory was left allocated. */
function thrown(fn: () => unknown): Error {
  const before = b.counters.bytesLive;
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(Error);
  expect(b.counters.bytesLive, `memory left behind by: ${(err as Error).message}`).toBe(before);
  return err as Error;
}

const t = (shape: number[], v = 1) => E.full(shape, v);

describe('shape mismatches name the op and both shapes', () => {
  it('matmul inner dimensions', () => {
    const a = t([3, 4]);
    const c = t([5, 2]);
    const e = thrown(() => E.matmul(a, c));
    expect(e.message).toMatch(/^matmul:/);
    expect(e.message).toContain('[3, 4]');
    expect(e.message).toContain('[5, 2]');
    expect(e.message).toContain('4 vs 5');
    // with transposes the message says which operand is transposed
    expect(thrown(() => E.matmul(a, c, { transA: true })).message).toMatch(/matmul: .*\[3, 4\]ᵀ · \[5, 2\]/);
    const v = t([3]);
    expect(thrown(() => E.matmul(v, c)).message).toMatch(/matmul: operands must be 2-D, got \[3\] and \[5, 2\]/);
    [a, c, v].forEach((x) => x.dispose());
  });

  it('elementwise broadcasting failure (add, mul, where, compare)', () => {
    const a = t([3, 4]);
    const c = t([5]);
    const e = thrown(() => E.add(a, c));
    expect(e.message).toMatch(/^add: shapes \[3, 4\] and \[5\] cannot be broadcast together/);
    expect(thrown(() => E.mul(c, a)).message).toMatch(/^mul: shapes \[5\] and \[3, 4\]/);
    expect(thrown(() => E.lt(a, c)).message).toMatch(/^lt: shapes \[3, 4\] and \[5\]/);
    expect(thrown(() => E.where(a, a, c)).message).toMatch(/^where: shapes \[3, 4\] and \[3, 4\] and \[5\]/);
    [a, c].forEach((x) => x.dispose());
  });

  it('broadcastTo a shape that does not contain the input', () => {
    const a = t([3, 4]);
    expect(thrown(() => E.broadcastTo(a, [4, 3])).message).toMatch(/^broadcastTo: .*\[3, 4\].*\[4, 3\]/);
    expect(thrown(() => E.broadcastTo(a, [4])).message).toMatch(/^broadcastTo: \[3, 4\] cannot be broadcast to \[4\]/);
    a.dispose();
  });

  it('linear with layers that do not chain, or a wrong bias', () => {
    const x = t([8, 3]);
    const w = t([4, 5]);
    const bias = t([5]);
    expect(thrown(() => E.linear(x, w, bias)).message).toMatch(/^linear: x \[8, 3\] and W \[4, 5\] do not chain/);
    const w2 = t([3, 5]);
    const b4 = t([4]);
    expect(thrown(() => E.linear(x, w2, b4)).message).toMatch(/^linear: bias \[4\] must be \[5\]/);
    [x, w, bias, w2, b4].forEach((v) => v.dispose());
  });

  it('concat of shapes that differ outside the axis', () => {
    const a = t([2, 3]);
    const c = t([2, 4]);
    expect(thrown(() => E.concat([a, c], 0)).message).toMatch(/^concat: shapes \[2, 3\], \[2, 4\] differ outside axis 0/);
    expect(thrown(() => E.concat([], 0)).message).toMatch(/^concat: needs a non-empty array/);
    [a, c].forEach((x) => x.dispose());
  });

  it('tensor(data, shape) with the wrong number of values or a bad shape', () => {
    expect(thrown(() => E.tensor([1, 2, 3, 4, 5], [2, 3])).message).toBe('tensor: 5 values do not fill shape [2, 3] (6 elements)');
    expect(thrown(() => E.tensor([1, 2], [2, 0])).message).toMatch(/^tensor: shape must be an array of positive integers, got \[2,0\]/);
    expect(thrown(() => E.tensor([1, 2], [1.5, 2] as number[])).message).toMatch(/^tensor: shape must be/);
    expect(thrown(() => E.zeros([-1])).message).toMatch(/^full: shape must be/);
  });

  it('reshape to a different size', () => {
    const a = t([3, 4]);
    expect(thrown(() => E.reshape(a, [5, 2])).message).toBe('reshape: cannot reshape [3, 4] (12 elements) to [5, 2]');
    expect(thrown(() => E.reshape(a, [5, -1])).message).toMatch(/^reshape: shape must be an array of positive integers/); // 12/5
    expect(thrown(() => E.reshape(a, [-1, -1])).message).toMatch(/^reshape:/);
    a.dispose();
  });

  it('slice out of range', () => {
    const a = t([3, 4]);
    expect(thrown(() => E.slice(a, [2, 0], [2, 4])).message).toBe('slice: block at [2, 0] of size [2, 4] is outside [3, 4] (axis 0)');
    expect(thrown(() => E.slice(a, [0, -1], [1, 1])).message).toMatch(/^slice: .* outside \[3, 4\] \(axis 1\)/);
    expect(thrown(() => E.slice(a, [0], [1])).message).toMatch(/^slice: starts \[0\] and sizes \[1\] must both have 2 entries/);
    a.dispose();
  });

  it('gather/scatter with bad index shapes', () => {
    const x = t([4, 2]);
    const idx2 = t([2, 2], 0);
    expect(thrown(() => E.gatherRows(x, idx2)).message).toMatch(/^gatherRows: indices must be 1-D, got \[2, 2\]/);
    const idx = t([3], 0);
    expect(thrown(() => E.scatterAddRows(x, idx, 4)).message).toMatch(/^scatterAddRows: indices \[3\] must be 1-D with one entry per row of \[4, 2\]/);
    const idx4 = t([4], 0);
    expect(thrown(() => E.scatterAddRows(x, idx4, 0)).message).toMatch(/^scatterAddRows: rows must be a positive integer, got 0/);
    [x, idx2, idx, idx4].forEach((v) => v.dispose());
  });
});

describe('bad axes and permutations', () => {
  it('an axis out of range names the op, the axis and the accepted range', () => {
    const a = t([2, 3, 4]);
    const e = thrown(() => E.sum(a, 3));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toBe('sum: axis 3 out of range for a tensor of rank 3 (accepted: -3..2)');
    expect(thrown(() => E.max(a, -4)).message).toMatch(/^max: axis -4 out of range/);
    expect(thrown(() => E.mean(a, [0, 1.5])).message).toMatch(/^mean: axis 1.5 out of range/);
    expect(thrown(() => E.concat([a, a], 5)).message).toMatch(/^concat: axis 5 out of range/);
    a.dispose();
  });

  it('transpose with a perm that is not a permutation', () => {
    const a = t([2, 3, 4]);
    expect(thrown(() => E.transpose(a, [0, 0, 1])).message).toBe('transpose: perm [0, 0, 1] is not a permutation of the 3 axes of [2, 3, 4]');
    expect(thrown(() => E.transpose(a, [1, 0])).message).toMatch(/^transpose: perm \[1, 0\]/);
    a.dispose();
  });
});

describe('non-finite or invalid scalars', () => {
  it('NaN and ±Infinity are rejected where a scalar operand is expected', () => {
    const a = t([2]);
    for (const [name, fn] of [
      ['mul', () => E.mul(a, NaN)],
      ['add', () => E.add(a, Infinity)],
      ['sub', () => E.sub(-Infinity, a)],
      ['div', () => E.div(a, NaN)],
      ['maximum', () => E.maximum(a, NaN)],
      ['lt', () => E.lt(a, NaN)],
      ['where', () => E.where(a, NaN, a)],
      ['affine', () => E.affine(a, NaN)],
      ['affine', () => E.affine(a, 1, Infinity)],
      ['pow', () => E.pow(a, NaN)],
      ['full', () => E.full([2], Infinity)],
    ] as const) {
      const e = thrown(fn);
      expect(e, name).toBeInstanceOf(RangeError);
      expect(e.message, name).toMatch(new RegExp(`^${name}: .* must be a finite number, got (NaN|-?Infinity)$`));
    }
    expect(thrown(() => E.div(a, 0)).message).toBe('div: division by the scalar 0');
    a.dispose();
  });
});

describe('use after dispose', () => {
  it('any op on a disposed tensor says it was disposed', async () => {
    const a = t([2, 3]);
    a.dispose();
    expect(a.disposed).toBe(true);
    const e = thrown(() => E.exp(a));
    expect(e.message).toMatch(/^exp: argument tensor #\d+ \[2, 3\] was disposed and can no longer be used$/);
    const other = t([2, 3]);
    expect(thrown(() => E.add(other, a)).message).toMatch(/^add: second argument tensor #\d+ \[2, 3\] was disposed/);
    expect(thrown(() => E.valueAndGrad(() => E.sum(other), [a])).message).toMatch(/disposed/);
    await expect(a.data()).rejects.toThrow(/disposed/);
    other.dispose();
  });

  it('a tensor disposed by the end of its scope is unusable afterwards', () => {
    let inner: Tensor | null = null;
    E.scope(() => {
      inner = t([2]);
    });
    expect(thrown(() => E.neg(inner!)).message).toMatch(/was disposed/);
  });
});

describe('wrong argument types', () => {
  it('an array, a typed array, a number or null where a Tensor is needed', () => {
    const a = t([2]);
    const t5 = E.full([5], 0);
    t5.dispose(); // a disposed operand, refused after the constant would have been made
    const arr = [1, 2] as unknown as Tensor;
    expect(thrown(() => E.exp(arr)).message).toBe('exp: argument must be a Tensor, got an array (wrap it with tensor(data, shape))');
    expect(thrown(() => E.add(arr, a)).message).toMatch(/^add: first argument must be a Tensor, got an array/);
    expect(thrown(() => E.matmul(a, new Float32Array(4) as unknown as Tensor)).message).toMatch(/^matmul: b must be a Tensor, got a typed array/);
    expect(thrown(() => E.sum(3 as unknown as Tensor)).message).toBe('sum: argument must be a Tensor, got the number 3');
    expect(thrown(() => E.linear(a, null as unknown as Tensor, a)).message).toMatch(/^linear: W must be a Tensor, got null/);
    expect(thrown(() => E.gatherRows(a, 'x' as unknown as Tensor)).message).toMatch(/^gatherRows: indices must be a Tensor, got string/);
    // a number operand is turned into a constant tensor only once both operands are valid: nothing leaks
    expect(thrown(() => E.maximum(3, arr)).message).toMatch(/^maximum: second argument must be a Tensor, got an array/);
    expect(thrown(() => E.eq(3, arr)).message).toMatch(/^eq: second argument must be a Tensor, got an array/);
    expect(thrown(() => E.where(a, 3, arr)).message).toMatch(/^where: b must be a Tensor, got an array/);
    const wide = t([3, 4]);
    expect(thrown(() => E.div(2, t5)).message).toMatch(/^div: second argument tensor #\d+ \[5\] was disposed/);
    expect(thrown(() => E.where(wide, 1, t5)).message).toMatch(/^where: b tensor #\d+ \[5\] was disposed/);
    const five = t([5]);
    expect(thrown(() => E.where(wide, 1, five)).message).toMatch(/^where: shapes \[3, 4\] and \[1\] and \[5\]/);
    five.dispose();
    wide.dispose();
    for (const e of [thrown(() => E.exp(arr)), thrown(() => E.sum(3 as unknown as Tensor))]) expect(e).toBeInstanceOf(TypeError);
    a.dispose();
  });

  it('linear with an unknown activation lists the accepted ones', () => {
    const [x, w, c] = [t([2, 3]), t([3, 4]), t([4])];
    expect(thrown(() => E.linear(x, w, c, 'gelu' as 'relu')).message).toBe('linear: unknown activation "gelu"; accepted: none, relu, selu, tanh, sigmoid, silu');
    [x, w, c].forEach((v) => v.dispose());
  });

  it('item() of a tensor with more than one element', async () => {
    const a = t([2, 2]);
    await expect(a.item()).rejects.toThrow('item() needs a one-element tensor, got shape [2, 2]');
    a.dispose();
  });
});

describe('valueAndGrad and scope misuse', () => {
  it('valueAndGrad with a non-scalar output, a non-tensor output or non-tensor params', async () => {
    const x = t([3]);
    expect(thrown(() => E.valueAndGrad(() => E.exp(x), [x])).message).toBe('valueAndGrad: fn must return a one-element tensor, got shape [3]');
    expect(thrown(() => E.valueAndGrad(() => 3 as unknown as Tensor, [x])).message).toBe('valueAndGrad: fn must return a Tensor, got number');
    expect(thrown(() => E.valueAndGrad(() => E.sum(x), [[1, 2] as unknown as Tensor])).message).toMatch(/^valueAndGrad: params must be Tensors/);
    // the tape is clean afterwards
    const r = E.valueAndGrad(() => E.sum(E.mul(x, 2)), [x]);
    expect(Array.from(await r.grads[0]!.data())).toEqual([2, 2, 2]);
    [x, r.value, ...r.grads].forEach((v) => v.dispose());
  });

  it('scope with an async function is refused, and its tensors are not leaked', () => {
    const e = thrown(() => E.scope((async () => t([4])) as unknown as () => Tensor));
    expect(e.message).toMatch(/^scope\(fn\): fn returned a Promise; scopes must be synchronous/);
  });
});

describe('optimizer and parameter misuse', () => {
  it('Adam rejects a bad learning rate or betas', () => {
    const ps = new E.ParamSet([{ name: 'w', shape: [2], init: [1, 2] }]);
    for (const [opts, msg] of [
      [{ lr: -1 }, 'Adam: lr = -1 is out of range'],
      [{ lr: 0 }, 'Adam: lr = 0 is out of range'],
      [{ lr: NaN }, 'Adam: lr = NaN is out of range'],
      [{ lr: Infinity }, 'Adam: lr = Infinity is out of range'],
      [{ beta1: 1 }, 'Adam: beta1 = 1 is out of range'],
      [{ beta2: -0.1 }, 'Adam: beta2 = -0.1 is out of range'],
      [{ eps: 0 }, 'Adam: eps = 0 is out of range'],
      [{ weightDecay: -1 }, 'Adam: weightDecay = -1 is out of range'],
    ] as const) {
      const e = thrown(() => new E.Adam(ps, opts));
      expect(e).toBeInstanceOf(RangeError);
      expect(e.message).toBe(msg);
    }
    ps.dispose();
  });

  it('Adam.step with the wrong number or shapes of gradients', () => {
    const ps = new E.ParamSet([{ name: 'w', shape: [2, 2], init: [1, 2, 3, 4] }, { name: 'b', shape: [2], init: [0, 0] }]);
    const opt = new E.Adam(ps);
    const g1 = t([2, 2]);
    const g2 = t([3]);
    expect(thrown(() => opt.step([g1])).message).toBe('Adam.step: 1 gradients for 2 parameters');
    expect(thrown(() => opt.step([g1, g2])).message).toBe('Adam.step: gradient 1 [3] does not match parameter b [2]');
    expect(opt.t).toBe(0); // a refused step does not count
    [g1, g2].forEach((v) => v.dispose());
    opt.dispose();
    ps.dispose();
  });

  it('ParamSet rejects duplicate names, mis-sized initial values and unknown names', () => {
    expect(thrown(() => new E.ParamSet([{ name: 'a', shape: [1], init: [0] }, { name: 'a', shape: [1], init: [0] }])).message).toMatch(/^ParamSet: duplicate parameter names/);
    expect(thrown(() => new E.ParamSet([{ name: 'a', shape: [2, 2], init: [0, 1, 2] }])).message).toBe('ParamSet: a has 3 initial values for shape [2, 2]');
    expect(thrown(() => new E.ParamSet([])).message).toMatch(/^ParamSet: needs at least one parameter/);
    const ps = new E.ParamSet([{ name: 'a', shape: [1], init: [0] }]);
    expect(thrown(() => ps.get('b')).message).toBe('ParamSet: no parameter "b"; have a');
    ps.dispose();
  });

  it('GpuRng rejects a non-integer seed and a bad shape', () => {
    expect(thrown(() => new E.GpuRng(1.5)).message).toBe('seed must be a safe integer, got 1.5');
    const g = new E.GpuRng(1);
    expect(thrown(() => g.uniform([3, 0])).message).toMatch(/^GpuRng.uniform: shape must be an array of positive integers/);
  });
});
