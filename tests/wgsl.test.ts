/**
 * Every kernel generator in kernels/, over the options that change its source, is parsed with
 * wgsl_reflect (no GPU needed), and checked against the KernelSpec the dispatching code relies on:
 *  - exactly one entry point, `main`, a compute shader;
 *  - its bindings (group 0, binding i) are spec.bindings one for one, in count, order and kind
 *    (storage read / read_write / uniform), and main uses every one of them;
 *  - uniform structs have the size the dispatching code uploads;
 *  - workgroup size within the adapter limits, and workgroup size × spec.workgroups covers the work
 *    (with the index arithmetic of the source consistent with the launch grid, folds included).
 */
import { describe, expect, it } from 'vitest';
import type { KernelSpec } from '../engine/backend';
import { ADAM_UNIFORM_FLOATS, adamKernel } from '../kernels/adam';
import { BINARY_OPS, broadcastView, elementwiseKernel, UNARY_OPS, type Expr, type InputView } from '../kernels/elementwise';
import { MATMUL_VARIANTS, matmulKernel, type MatmulArgs } from '../kernels/matmul';
import { concatKernel, gatherRowsKernel, padKernel, scatterAddRowsKernel } from '../kernels/movement';
import { randomKernel } from '../kernels/random';
import { reduceKernel, reduceStrategy, SERIAL_REDUCE_MAX } from '../kernels/reduce';
import { MAX_WORKGROUPS_PER_DIM, stridesOf } from '../kernels/wgsl';

// wgsl_reflect's "main" entry is CommonJS inside a "type": "module" package, which Node refuses to
// load; its ES module build works, typed by the package's own declarations.
const { WgslReflect } = (await import('wgsl_reflect/wgsl_reflect.module.js' as string)) as typeof import('wgsl_reflect');

/** How the work is laid out over invocations, per generator family. */
type Work =
  | { kind: '1d'; count: number } // `let index = gid.x + gid.y * S` with `index >= count` guarded
  | { kind: 'serial'; outputs: number } // reduce, one invocation per output
  | { kind: 'tree'; outputs: number } // reduce, one workgroup per output
  | { kind: 'matmul'; m: number; n: number };

/** Invocation limits every adapter we target guarantees (WebGPU defaults). */
const LIMITS = { invocations: 256, x: 256, y: 256, z: 64 };

function int(src: string, re: RegExp, what: string): number {
  const m = re.exec(src);
  expect(m, `${what} not found`).not.toBeNull();
  return Number(m![1]);
}

function check(spec: KernelSpec, work: Work, uniformBytes?: number): void {
  const label = spec.name;
  const r = new WgslReflect(spec.source);
  // one compute entry point named main
  expect(r.entry.compute.map((f) => f.name), label).toEqual(['main']);
  expect(r.entry.vertex.length + r.entry.fragment.length, label).toBe(0);
  const main = r.entry.compute[0]!;
  expect(main.stage, label).toBe('compute');
  // declared bindings, in binding order, against spec.bindings
  const declared = [...r.uniforms, ...r.storage, ...r.textures, ...r.samplers].sort((a, b) => a.binding - b.binding);
  const kindOf = (v: (typeof declared)[number]) => (v.resourceType === 0 ? 'uniform' : v.resourceType === 1 ? v.access : `other:${v.resourceType}`);
  expect(declared.map((v) => `${v.group}:${v.binding}:${kindOf(v)}`), label).toEqual(spec.bindings.map((k, i) => `0:${i}:${k}`));
  // every binding is used by main (an unused one would be a buffer bound for nothing)
  expect(main.resources.map((v) => v.binding).sort((a, b) => a - b), label).toEqual(spec.bindings.map((_, i) => i));
  // a uniform struct is as large as what the dispatching code uploads
  const u = r.uniforms[0];
  if (uniformBytes !== undefined) expect(u?.size, `${label} uniform size`).toBe(uniformBytes);
  else expect(u, `${label} has an unexpected uniform`).toBeUndefined();
  // launch shape within limits
  const wg = main.workgroupSize!;
  expect(wg, label).not.toBeNull();
  expect(wg[0] * wg[1] * wg[2], label).toBeLessThanOrEqual(LIMITS.invocations);
  expect(wg[0] <= LIMITS.x && wg[1] <= LIMITS.y && wg[2] <= LIMITS.z, label).toBe(true);
  const [gx, gy, gz] = spec.workgroups;
  for (const g of spec.workgroups) {
    expect(Number.isInteger(g) && g >= 1 && g <= MAX_WORKGROUPS_PER_DIM, `${label} workgroups ${spec.workgroups}`).toBe(true);
  }
  expect(gz, label).toBe(1);
  const src = spec.source;
  switch (work.kind) {
    case '1d': {
      const stride = int(src, /let index = gid\.x \+ gid\.y \* (\d+)u;/, `${label}: index`);
      const count = int(src, /if \(index >= (\d+)u\) \{ return; \}/, `${label}: guard`);
      expect(wg[1] * wg[2], label).toBe(1);
      expect(count, `${label}: guarded count`).toBe(work.count);
      expect(stride, `${label}: row stride of the folded grid`).toBe(gx * wg[0]); // no gap, no overlap
      expect(gx * wg[0] * gy, `${label}: invocations cover the work`).toBeGreaterThanOrEqual(work.count);
      expect(gx * wg[0] * (gy - 1), `${label}: no idle row of workgroups`).toBeLessThan(work.count);
      break;
    }
    case 'serial': {
      const stride = int(src, /let o = gid\.x \+ gid\.y \* (\d+)u;/, `${label}: o`);
      const count = int(src, /if \(o >= (\d+)u\) \{ return; \}/, `${label}: guard`);
      expect(count, label).toBe(work.outputs);
      expect(stride, label).toBe(gx * wg[0]);
      expect(gx * wg[0] * gy, label).toBeGreaterThanOrEqual(work.outputs);
      break;
    }
    case 'tree': {
      const stride = int(src, /let o = wid\.x \+ wid\.y \* (\d+)u;/, `${label}: o`);
      const count = int(src, /let live = o < (\d+)u;/, `${label}: live`);
      expect(count, label).toBe(work.outputs);
      expect(stride, label).toBe(gx);
      expect(gx * gy, label).toBeGreaterThanOrEqual(work.outputs);
      // the tree halves a power-of-two workgroup
      expect(Math.log2(wg[0] * wg[1]) % 1, label).toBe(0);
      break;
    }
    case 'matmul': {
      // each invocation (register tiling) or each workgroup (workgroup-memory tiles) owns a block of C
      const reg = /let row0 = gid\.y \* (\d+)u;/.exec(src);
      let rowsPerGroup: number;
      let colsPerGroup: number;
      if (reg) {
        rowsPerGroup = Number(reg[1]) * wg[1];
        colsPerGroup = int(src, /let col0 = gid\.x \* (\d+)u;/, `${label}: col0`) * wg[0];
      } else {
        rowsPerGroup = int(src, /let tileRow = wid\.y \* (\d+)u;/, `${label}: tileRow`);
        colsPerGroup = int(src, /let tileCol = wid\.x \* (\d+)u;/, `${label}: tileCol`);
        expect(rowsPerGroup, label).toBe(wg[1] * int(src, /let row0 = tileRow \+ lid\.y \* (\d+)u;/, 'row0'));
        expect(colsPerGroup, label).toBe(wg[0] * int(src, /let col0 = tileCol \+ lid\.x \* (\d+)u;/, 'col0'));
      }
      expect(gx * colsPerGroup, `${label}: columns covered`).toBeGreaterThanOrEqual(work.n);
      expect(gy * rowsPerGroup, `${label}: rows covered`).toBeGreaterThanOrEqual(work.m);
      expect((gx - 1) * colsPerGroup, `${label}: no idle column of workgroups`).toBeLessThan(work.n);
      expect((gy - 1) * rowsPerGroup, `${label}: no idle row of workgroups`).toBeLessThan(work.m);
      break;
    }
  }
}

const contiguous = (shape: number[], offset = 0): InputView => ({ offset, strides: stridesOf(shape) });
const IN = (i: number): Expr => ({ op: 'in', i });
const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

describe('elementwise', () => {
  it('every unary op', () => {
    for (const op of UNARY_OPS) check(elementwiseKernel(op, { op, a: IN(0) }, [contiguous([7, 13])], [7, 13]), { kind: '1d', count: 91 });
  });
  it('every binary op, broadcast both ways, at offsets', () => {
    for (const op of BINARY_OPS) {
      const views = [broadcastView([3, 1], [3, 4], 5), broadcastView([4], [3, 4], 0)];
      check(elementwiseKernel(op, { op, a: IN(0), b: IN(1) }, views, [3, 4]), { kind: '1d', count: 12 });
      check(elementwiseKernel(op, { op, a: IN(1), b: IN(0) }, [broadcastView([1], [5, 4]), contiguous([5, 4], 3)], [5, 4]), { kind: '1d', count: 20 });
    }
  });
  it('pow, affine, where, constants, shared subexpressions', () => {
    for (const p of [0, 1, 2, 3, 4, 5, -1, -2, -3, 0.5, 1.5, -0.5]) check(elementwiseKernel('pow', { op: 'powc', a: IN(0), p }, [contiguous([9])], [9]), { kind: '1d', count: 9 });
    check(elementwiseKernel('affine', { op: 'affine', a: IN(0), scale: -2.5, shift: 1e-3 }, [contiguous([1])], [1]), { kind: '1d', count: 1 });
    const w: Expr = { op: 'where', c: IN(0), a: { op: 'exp', a: IN(1) }, b: { op: 'mul', a: { op: 'exp', a: IN(1) }, b: IN(2) } };
    check(elementwiseKernel('where', w, [contiguous([2, 3]), broadcastView([3], [2, 3]), broadcastView([2, 1], [2, 3])], [2, 3]), { kind: '1d', count: 6 });
    check(elementwiseKernel('fill', { op: 'const', v: 0.25 }, [], [4, 4]), { kind: '1d', count: 16 });
  });
  it('strided views: transpose and slice', () => {
    const s = stridesOf([2, 3, 5]);
    check(elementwiseKernel('transpose', IN(0), [{ offset: 0, strides: [s[2]!, s[0]!, s[1]!] }], [5, 2, 3]), { kind: '1d', count: 30 });
    check(elementwiseKernel('slice', IN(0), [{ offset: 17, strides: stridesOf([7, 13]) }], [4, 10]), { kind: '1d', count: 40 });
  });
  it('a size that folds the grid into y (n > 65535 · 256)', () => {
    const n = 4097 * 4097;
    const k = elementwiseKernel('add', { op: 'add', a: IN(0), b: IN(1) }, [contiguous([4097, 4097]), broadcastView([4097], [4097, 4097])], [4097, 4097]);
    expect(k.workgroups[1]).toBeGreaterThan(1);
    check(k, { kind: '1d', count: n });
  });
});

describe('reduce', () => {
  const sumIn: Expr = IN(0);
  const cases: { name: string; full: number[]; axes: number[]; op: 'sum' | 'max'; expr?: Expr; views?: InputView[]; scale?: number }[] = [
    { name: 'sum last axis, serial', full: [7, 13], axes: [1], op: 'sum' },
    { name: 'mean axes [0,2]', full: [7, 13, 5], axes: [0, 2], op: 'sum', scale: 1 / 35 },
    { name: 'sum all, tree', full: [7, 13, 5], axes: [0, 1, 2], op: 'sum' },
    { name: 'max serial', full: [7, 13, 5], axes: [1], op: 'max' },
    { name: 'at the serial limit', full: [3, SERIAL_REDUCE_MAX], axes: [1], op: 'sum' },
    { name: 'just past the serial limit', full: [3, SERIAL_REDUCE_MAX + 1], axes: [1], op: 'max' },
    { name: 'tree over a strided axis', full: [300, 3], axes: [0], op: 'sum' },
    { name: 'fused prologue over broadcast inputs', full: [256, 64], axes: [0], op: 'sum', expr: { op: 'mul', a: IN(0), b: IN(1) }, views: [contiguous([256, 64]), broadcastView([64], [256, 64], 7)] },
    { name: 'serial, folded grid', full: [2, 4_194_400], axes: [0], op: 'sum' },
    { name: 'many long rows stay serial', full: [70_000, 129], axes: [1], op: 'max' },
    { name: 'few long rows use a tree', full: [63, 129], axes: [1], op: 'max' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const redCount = prod(c.axes.map((a) => c.full[a]!));
      const outputs = prod(c.full.filter((_, i) => !c.axes.includes(i)));
      const spec = reduceKernel(c.op, { op: c.op, expr: c.expr ?? sumIn, views: c.views ?? [contiguous(c.full)], fullShape: c.full, axes: c.axes, scale: c.scale ?? 1 });
      check(spec, { kind: reduceStrategy(outputs, redCount), outputs });
      if (c.name.includes('folded')) expect(spec.workgroups[1]).toBeGreaterThan(1);
    });
  }
});

describe('matmul', () => {
  const ACTS = [undefined, 'relu', 'selu', 'tanh', 'sigmoid'] as const;
  // aligned (vec4 paths), ragged (scalar fallbacks), tiny, and big enough for the largest register tile
  const SHAPES: { m: number; k: number; n: number; off: number }[] = [
    { m: 1, k: 1, n: 1, off: 0 },
    { m: 7, k: 13, n: 5, off: 3 },
    { m: 33, k: 17, n: 40, off: 0 },
    { m: 64, k: 64, n: 64, off: 0 },
    { m: 64, k: 64, n: 64, off: 2 },
    { m: 256, k: 64, n: 256, off: 0 },
  ];
  for (const variant of MATMUL_VARIANTS) {
    it(`${variant}: all transposes, every shape, plain and with bias + each activation`, () => {
      for (const { m, k, n, off } of SHAPES) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const base: MatmulArgs = { m, n, k, transA, transB, offsetA: off, offsetB: off * 3 };
            check(matmulKernel(base, variant), { kind: 'matmul', m, n });
            check(matmulKernel({ ...base, bias: { offset: off + 1 } }, variant), { kind: 'matmul', m, n });
            // activations only on one layout each (they change the epilogue, not the tiling)
            if (!transA && !transB) for (const activation of ACTS) check(matmulKernel({ ...base, bias: { offset: off }, activation }, variant), { kind: 'matmul', m, n });
          }
        }
      }
    });
  }
});

describe('movement', () => {
  it('concat: 2 inputs, 3 at offsets along axis 1, and the most one dispatch binds (11)', () => {
    check(concatKernel([[2, 5], [3, 5]], [0, 0], 0), { kind: '1d', count: 25 });
    check(concatKernel([[4, 2], [4, 3], [4, 1]], [3, 0, 17], 1), { kind: '1d', count: 24 });
    const shapes = [...Array(11).keys()].map((i) => [1 + (i % 4), 3]);
    check(concatKernel(shapes, shapes.map((_, i) => i), 0), { kind: '1d', count: 3 * shapes.reduce((a, s) => a + s[0]!, 0) });
  });
  it('gatherRows and scatterAddRows (the gradient of gather)', () => {
    check(gatherRowsKernel(6, 5, 8, 0, 0), { kind: '1d', count: 40 });
    check(gatherRowsKernel(10, 1, 4, 3, 7), { kind: '1d', count: 4 });
    check(scatterAddRowsKernel(7, 5, 8, 0, 0), { kind: '1d', count: 35 });
    check(scatterAddRowsKernel(4, 1, 5, 2, 9), { kind: '1d', count: 4 });
  });
  it('pad (the gradient of slice)', () => {
    check(padKernel([7, 13], [2, 3], [4, 10], 0), { kind: '1d', count: 91 });
    check(padKernel([5, 6, 7], [1, 0, 2], [3, 6, 4], 11), { kind: '1d', count: 210 });
  });
});

describe('optimizer and random numbers', () => {
  it('adam: one uniform of the size Adam.step uploads, then p, g, m, v', () => {
    for (const n of [1, 17, 8706, 20_000_000]) {
      const spec = adamKernel(n);
      expect(spec.bindings).toEqual(['uniform', 'read_write', 'read', 'read_write', 'read_write']);
      check(spec, { kind: '1d', count: n }, ADAM_UNIFORM_FLOATS * 4);
    }
  });
  it('random uniform and normal: the uniform is GpuRng’s 4 words (key, key, draw, pad)', () => {
    for (const dist of ['uniform', 'normal'] as const) {
      for (const n of [1, 3, 10007, 1 << 20, 4097 * 4097]) check(randomKernel(dist, n), { kind: '1d', count: n }, 16);
    }
  });
});
