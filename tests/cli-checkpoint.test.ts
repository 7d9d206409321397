/**
 * The checkpoint format of cli/checkpoint.ts: written byte for byte as specified (safetensors with
 * params + optimizer tensors and string metadata), and files produced independently by the
 * format's rules (by Python's standard library, and by hand) read back.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ADAM_M, ADAM_V, CHECKPOINT_FORMAT, decodeCheckpoint, encodeCheckpoint, readCheckpoint, writeCheckpoint } from '../train/checkpoint';
import type { TrainState } from '../train/contract';
import { encodeSafetensors } from '../io/safetensors';

const dir = mkdtempSync(join(tmpdir(), 'wgflow-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const f32 = (xs: number[]) => Float32Array.from(xs);

function sampleState(): TrainState {
  return {
    step: 2,
    params: {
      'net.0.weight': { data: f32([1, -2, 0.5, 3, 0.25, -1]), shape: [2, 3] },
      'net.0.bias': { data: f32([0.125, -0.5, 2]), shape: [3] },
    },
    adam: { t: 2, m: f32([1, 2, 3, 4, 5, 6, 7, 8, 9]), v: f32([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]) },
    extra: { draws: 4 },
    losses: [
      { step: 1, loss: 0.75 },
      { step: 2, loss: NaN },
    ],
  };
}

/** Little-endian float32 bytes of `xs`. */
function le(xs: number[]): number[] {
  const b = new Uint8Array(xs.length * 4);
  const v = new DataView(b.buffer);
  xs.forEach((x, i) => v.setFloat32(4 * i, x, true));
  return [...b];
}

describe('encodeCheckpoint', () => {
  test('byte for byte: 8-byte LE header size, sorted metadata first, tensors sorted by name, space padding to 8, LE float32 data', () => {
    const bytes = encodeCheckpoint({
      config: { method: 'otcfm', hidden: [64, 64] },
      trainConfig: { method: 'otcfm', steps: 2 },
      state: sampleState(),
      runtime: 'node',
      adapter: 'google swiftshader (software, node)',
    });
    const meta =
      '"__metadata__":{' +
      '"adam_t":"2",' +
      '"adapter":"google swiftshader (software, node)",' +
      '"config":"{\\"method\\":\\"otcfm\\",\\"hidden\\":[64,64]}",' +
      '"extra":"{\\"draws\\":4}",' +
      '"format":"wgflow.checkpoint/1",' +
      '"losses":"[{\\"step\\":1,\\"loss\\":0.75},{\\"step\\":2,\\"loss\\":null}]",' +
      '"param_order":"[\\"net.0.weight\\",\\"net.0.bias\\"]",' +
      '"runtime":"node",' +
      '"step":"2",' +
      '"train_config":"{\\"method\\":\\"otcfm\\",\\"steps\\":2}"}';
    const tensors =
      '"net.0.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},' +
      '"net.0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[12,36]},' +
      '"optimizer.adam.m":{"dtype":"F32","shape":[9],"data_offsets":[36,72]},' +
      '"optimizer.adam.v":{"dtype":"F32","shape":[9],"data_offsets":[72,108]}';
    const header = `{${meta},${tensors}}`;
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    expect(padded.length % 8).toBe(0);
    const n = padded.length;
    const expected = Uint8Array.from([
      n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24, 0, 0, 0, 0,
      ...Array.from(padded, (c) => c.charCodeAt(0)),
      ...le([0.125, -0.5, 2]),
      ...le([1, -2, 0.5, 3, 0.25, -1]),
      ...le([1, 2, 3, 4, 5, 6, 7, 8, 9]),
      ...le(Array(9).fill(0.5)),
    ]);
    expect([...bytes]).toEqual([...expected]);
  });

  test('round trip keeps parameter order, shapes, optimizer state, losses (NaN as null → NaN) and extra', () => {
    const s = sampleState();
    const d = decodeCheckpoint(encodeCheckpoint({ config: { a: 1 }, trainConfig: { b: 2 }, state: s }));
    expect(Object.keys(d.state.params)).toEqual(['net.0.weight', 'net.0.bias']);
    expect(d.state.params['net.0.weight']).toEqual(s.params['net.0.weight']);
    expect(d.state.adam).toEqual(s.adam);
    expect(d.state.step).toBe(2);
    expect(d.state.extra).toEqual({ draws: 4 });
    expect(d.state.losses[0]).toEqual({ step: 1, loss: 0.75 });
    expect(Number.isNaN(d.state.losses[1]!.loss)).toBe(true);
    expect(d.config).toEqual({ a: 1 });
    expect(d.trainConfig).toEqual({ b: 2 });
  });

  test('a parameter may not take an optimizer tensor name', () => {
    const s = sampleState();
    s.params[ADAM_M] = { data: f32([1]), shape: [1] };
    expect(() => encodeCheckpoint({ config: {}, trainConfig: {}, state: s })).toThrow(/reserved for the optimizer/);
  });
});

describe('reading', () => {
  test('writeCheckpoint replaces the file atomically and leaves no temporary files', () => {
    const p = join(dir, 'model.safetensors');
    writeCheckpoint(p, { config: { k: 1 }, trainConfig: {}, state: sampleState() });
    const s2 = { ...sampleState(), step: 5 };
    writeCheckpoint(p, { config: { k: 1 }, trainConfig: {}, state: s2 });
    expect(readCheckpoint(p).state.step).toBe(5);
    expect(readdirSync(dir).filter((f) => f.startsWith('model.safetensors'))).toEqual(['model.safetensors']);
  });

  test('a file assembled by hand by the format rules (metadata last, unsorted tensors, no padding, no optional keys)', () => {
    const header = JSON.stringify({
      [ADAM_V]: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
      w: { dtype: 'F32', shape: [1, 2], data_offsets: [16, 24] },
      [ADAM_M]: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      __metadata__: { format: CHECKPOINT_FORMAT, config: '{"method":"icfm"}', step: '10', adam_t: '10' },
    });
    const n = header.length;
    const bytes = Uint8Array.from([n & 0xff, n >> 8, 0, 0, 0, 0, 0, 0, ...Array.from(header, (c) => c.charCodeAt(0)), ...le([0.1, 0.2]), ...le([0.3, 0.4]), ...le([5, 6])]);
    const d = decodeCheckpoint(bytes);
    expect(d.config).toEqual({ method: 'icfm' });
    expect(d.trainConfig).toEqual({ method: 'icfm' });
    expect(d.state.step).toBe(10);
    expect(d.state.params.w).toEqual({ data: f32([5, 6]), shape: [1, 2] });
    expect(d.state.adam).toEqual({ t: 10, m: f32([0.1, 0.2]), v: f32([0.3, 0.4]) });
    expect(d.state.losses).toEqual([]);
    expect(d.state.extra).toEqual({});
  });

  const python = spawnSync('python3', ['-c', 'import json, struct'], { encoding: 'utf8' }).status === 0;
  test.skipIf(!python)('a file written by Python (json + struct only) reads back', () => {
    const out = join(dir, 'py.safetensors');
    const script = String.raw`
import json, struct, sys
tensors = {"layer.w": ([2, 2], [1.0, 2.0, 3.0, 4.0]), "layer.b": ([2], [-1.0, 0.5]),
           "optimizer.adam.m": ([6], [0.0] * 6), "optimizer.adam.v": ([6], [1e-8] * 6)}
header, data, off = {}, b"", 0
for name in ["layer.w", "layer.b", "optimizer.adam.m", "optimizer.adam.v"]:
    shape, vals = tensors[name]
    raw = struct.pack("<%df" % len(vals), *vals)
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(raw)]}
    data += raw; off += len(raw)
header["__metadata__"] = {"format": "wgflow.checkpoint/1", "step": "40", "adam_t": "40",
    "config": json.dumps({"method": "otcfm", "sigma": 0.1}),
    "losses": json.dumps([{"step": 20, "loss": 1.5}, {"step": 40, "loss": 1.25}]),
    "extra": json.dumps({"rng": 7}), "param_order": json.dumps(["layer.w", "layer.b"])}
h = json.dumps(header).encode("utf-8")
h += b" " * (-len(h) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + data)
`;
    execFileSync('python3', ['-c', script, out]);
    const d = readCheckpoint(out);
    expect(d.config).toEqual({ method: 'otcfm', sigma: 0.1 });
    expect(Object.keys(d.state.params)).toEqual(['layer.w', 'layer.b']);
    expect(d.state.params['layer.w']).toEqual({ data: f32([1, 2, 3, 4]), shape: [2, 2] });
    expect(d.state.params['layer.b']).toEqual({ data: f32([-1, 0.5]), shape: [2] });
    expect(d.state.adam.t).toBe(40);
    expect(d.state.adam.v).toEqual(f32(Array(6).fill(1e-8)));
    expect(d.state.losses).toEqual([{ step: 20, loss: 1.5 }, { step: 40, loss: 1.25 }]);
    expect(d.state.extra).toEqual({ rng: 7 });
  });

  test('errors say what is wrong and name the file', () => {
    const plain = join(dir, 'plain.safetensors');
    writeFileSync(plain, encodeSafetensors({ w: { data: f32([1]), shape: [1] } }));
    expect(() => readCheckpoint(plain)).toThrow(/plain\.safetensors: not a wgflow checkpoint: __metadata__ has no "format"/);
    const other = join(dir, 'other.safetensors');
    writeFileSync(other, encodeSafetensors({ w: { data: f32([1]), shape: [1] } }, { format: 'pt' }));
    expect(() => readCheckpoint(other)).toThrow(/unsupported checkpoint format "pt"/);
    const noAdam = join(dir, 'noadam.safetensors');
    writeFileSync(noAdam, encodeSafetensors({ w: { data: f32([1]), shape: [1] } }, { format: CHECKPOINT_FORMAT, config: '{}', step: '1', adam_t: '1' }));
    expect(() => readCheckpoint(noAdam)).toThrow(/optimizer state\) are missing/);
    expect(() => readCheckpoint(join(dir, 'missing.safetensors'))).toThrow(/missing\.safetensors: no such file/);
    const badStep = join(dir, 'badstep.safetensors');
    writeFileSync(
      badStep,
      encodeSafetensors({ [ADAM_M]: { data: f32([0]), shape: [1] }, [ADAM_V]: { data: f32([0]), shape: [1] }, w: { data: f32([1]), shape: [1] } }, { format: CHECKPOINT_FORMAT, config: '{}', step: 'ten', adam_t: '1' }),
    );
    expect(() => readCheckpoint(badStep)).toThrow(/metadata "step" must be a non-negative integer, got "ten"/);
    expect(readFileSync(badStep).length).toBeGreaterThan(8);
  });
});
