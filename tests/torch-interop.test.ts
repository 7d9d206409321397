/**
 * Issue 11 item 6: a torchcfm MLP written by PyTorch (tests/fixtures/torchcfm-mlp, copied from
 * shared/fixtures) loads into wgflow and reproduces PyTorch's own outputs; wgflow's parameters go
 * back to the same state dict bit for bit.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { tensor } from '../engine';
import { mlpForwardF64, mlpLayout, mlpShapes, offsetOf, paramCount, VectorField, type MlpConfig } from '../cfm/mlp';
import { odeSolve } from '../cfm/ode';
import { fromTorchStateDict, toTorchStateDict, type NamedTensor } from '../cfm/torch';
import { parseNpy } from '../datasets/files';
import { decodeSafetensors } from '../io/safetensors';
import { CHROMIUM_CANDIDATES } from '../browser/chromium';
import { gpu, runWgflow } from './helpers';

const haveChromium = CHROMIUM_CANDIDATES.some((p) => existsSync(p)) || !!process.env.WGFLOW_CHROMIUM;

const FIX = path.join(__dirname, 'fixtures', 'torchcfm-mlp');
const npy = (name: string) => parseNpy(readFileSync(path.join(FIX, name)));
const torchDict = () => decodeSafetensors(readFileSync(path.join(FIX, 'model.safetensors'))).tensors as Record<string, NamedTensor>;

function flatOf(cfg: MlpConfig, params: Record<string, NamedTensor>): Float32Array {
  const flat = new Float32Array(paramCount(cfg));
  const layout = mlpLayout(cfg);
  mlpShapes(cfg).forEach((s, i) => flat.set(params[s.name]!.data, offsetOf(layout, i)));
  return flat;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

beforeAll(async () => {
  await gpu();
});

describe('torchcfm MLP state dict', () => {
  test('reads as torchcfm MLP(dim=2, w=64): [x, t] → 64 → 64 → 64 → 2, SELU', () => {
    const { cfg, params } = fromTorchStateDict(torchDict());
    expect(cfg).toEqual({ dim: 2, hidden: [64, 64, 64], activation: 'selu' });
    expect(params['l0.W']!.shape).toEqual([3, 64]);
    expect(params['l3.W']!.shape).toEqual([64, 2]);
    expect(paramCount(cfg)).toBe(8706);
  });

  test('round-trips to the same state dict, bit for bit', () => {
    const t = torchDict();
    const { cfg, params } = fromTorchStateDict(t);
    const back = toTorchStateDict(cfg, params);
    expect(Object.keys(back).sort()).toEqual(Object.keys(t).sort());
    for (const k of Object.keys(t)) {
      expect(back[k]!.shape).toEqual(t[k]!.shape);
      expect(Buffer.from(back[k]!.data.buffer).equals(Buffer.from(t[k]!.data.buffer, t[k]!.data.byteOffset, t[k]!.data.byteLength))).toBe(true);
    }
  });

  test("reproduces PyTorch's v(x, t) within 1e-5 (float64 reference and the GPU)", async () => {
    const { cfg, params } = fromTorchStateDict(torchDict());
    const flat = flatOf(cfg, params);
    const inp = npy('field_inputs.npy');
    const want = npy('field_outputs.npy');
    expect([inp.n, inp.dim, want.n, want.dim]).toEqual([64, 3, 64, 2]);
    const layout = mlpLayout(cfg);
    const ref = new Float64Array(want.data.length);
    for (let i = 0; i < inp.n; i++) ref.set(mlpForwardF64(layout, flat, inp.data.subarray(i * 3, i * 3 + 2), inp.data[i * 3 + 2]!), i * 2);
    expect(maxAbsDiff(ref, want.data)).toBeLessThan(1e-5);
    const vf = new VectorField(cfg, flat);
    const x = tensor(inp.data, [64, 3]);
    const v = vf.forward(x);
    expect(maxAbsDiff(await v.data(), want.data)).toBeLessThan(1e-5);
    v.dispose();
    x.dispose();
    vf.dispose();
  });

  test("reproduces PyTorch's RK4 samples (100 steps, 256 points) within 1e-5", async () => {
    const { cfg, params } = fromTorchStateDict(torchDict());
    const src = npy('rk4_sources.npy');
    const want = npy('rk4_samples.npy');
    const vf = new VectorField(cfg, flatOf(cfg, params));
    const x0 = tensor(src.data, [src.n, 2]);
    const sol = await odeSolve(vf, x0, { solver: 'rk4', steps: 100 });
    expect(maxAbsDiff(await sol.x.data(), want.data)).toBeLessThan(1e-5);
    sol.x.dispose();
    x0.dispose();
    vf.dispose();
  });

  test('refuses state dicts of another shape, naming what is wrong', () => {
    const t = torchDict();
    const without = (key: string) => Object.fromEntries(Object.entries(t).filter(([k]) => k !== key));
    expect(() => fromTorchStateDict(without('net.2.bias'))).toThrow(/net.2.bias is missing/);
    expect(() => fromTorchStateDict({ ...t, 'net.1.weight': t['net.0.bias']! })).toThrow(/unexpected tensors.*net.1.weight/);
    expect(() => fromTorchStateDict({ 'net.0.weight': t['net.0.weight']!, 'net.0.bias': t['net.0.bias']! })).toThrow(/at least two/);
    const w2 = t['net.2.weight']!;
    expect(() => fromTorchStateDict({ ...t, 'net.2.weight': { data: w2.data.subarray(0, 64 * 63), shape: [64, 63] } })).toThrow(/net.2.weight takes 63 inputs but net.0.weight gives 64/);
    const w6 = t['net.6.weight']!, b6 = t['net.6.bias']!;
    expect(() => fromTorchStateDict({ ...t, 'net.6.weight': { data: w6.data.subarray(0, 64), shape: [1, 64] }, 'net.6.bias': { data: b6.data.subarray(0, 1), shape: [1] } })).toThrow(/expected dim \+ 1/);
    expect(() => toTorchStateDict({ dim: 2, hidden: [64, 64, 64], activation: 'selu' }, {})).toThrow(/l0.W is missing/);
  });
});

describe('wgflow import / export', () => {
  const run = runWgflow;

  test(
    'import a PyTorch model, sample it in the browser, export it back unchanged',
    async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'wgflow-torch-'));
      try {
        const ckpt = path.join(dir, 'model.safetensors');
        const imp = await run(['import', '--torch', path.join(FIX, 'model.safetensors'), '--source', '8gaussians', '--target', 'moons', '--out', ckpt]);
        expect(imp.code, imp.stderr).toBe(0);
        expect(imp.stdout).toMatch(/icfm vector field \[x, t\] → 64 → 64 → 64 → 2 \(selu\)/);
        const runtime = haveChromium ? 'browser' : 'node';
        const samples = path.join(dir, 'samples.npy');
        const smp = await run(['sample', '--checkpoint', ckpt, '--n', '256', '--runtime', runtime, '--out', samples]);
        expect(smp.code, smp.stderr).toBe(0);
        const s = parseNpy(readFileSync(samples));
        expect([s.n, s.dim]).toEqual([256, 2]);
        expect(s.data.every(Number.isFinite)).toBe(true);
        const back = path.join(dir, 'back.safetensors');
        const exp = await run(['export', '--checkpoint', ckpt, '--format', 'torch', '--out', back]);
        expect(exp.code, exp.stderr).toBe(0);
        expect(exp.stdout).toMatch(/torchcfm MLP\(dim=2, time_varying=True, w=64\)/);
        const a = torchDict();
        const b = decodeSafetensors(readFileSync(back));
        expect(b.metadata).toMatchObject({ format: 'torchcfm.MLP', dim: '2', w: '64', activation: 'selu' });
        for (const k of Object.keys(a)) expect(Array.from(b.tensors[k]!.data)).toEqual(Array.from(a[k]!.data));
        expect(Object.keys(b.tensors).sort()).toEqual(Object.keys(a).sort());
        // Input problems are exit 2 with the flag named.
        const bad = await run(['import', '--torch', samples, '--out', path.join(dir, 'x.safetensors')]);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/^wgflow import: --torch: /);
        const notCfm = await run(['export', '--checkpoint', path.join(FIX, 'model.safetensors'), '--out', path.join(dir, 'y.safetensors')]);
        expect(notCfm.code).toBe(2);
        expect(notCfm.stderr).toMatch(/--checkpoint: .*unsupported checkpoint format "pt".*wgflow import --torch/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    180_000,
  );
});
