import { afterAll, describe, expect, test } from 'vitest';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';

const ascii = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));

/** 8-byte LE length, the header padded with spaces to a multiple of 8, then the data bytes. */
function handFile(header: string, data: number[]): Uint8Array {
  const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
  const len = padded.length;
  return Uint8Array.from([len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >>> 24, 0, 0, 0, 0, ...ascii(padded), ...data]);
}

// IEEE-754 single precision, little-endian byte order.
const F_HALF = [0x00, 0x00, 0x00, 0x3f]; // 0.5
const F_ONE = [0x00, 0x00, 0x80, 0x3f]; // 1
const F_MINUS_TWO = [0x00, 0x00, 0x00, 0xc0]; // -2
const F_THREE = [0x00, 0x00, 0x40, 0x40]; // 3

const dir = mkdtempSync(join(tmpdir(), 'wgflow-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('encode', () => {
  test('byte for byte: metadata first, tensors in sorted-name order, header space-padded to 8', () => {
    const bytes = encodeSafetensors(
      { b: { data: Float32Array.from([1, -2]), shape: [2] }, a: { data: Float32Array.from([0.5]), shape: [1, 1] } },
      { format: 'pt', config: '{"x":1}' },
    );
    const header =
      '{"__metadata__":{"config":"{\\"x\\":1}","format":"pt"},' +
      '"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
    // 162 characters of JSON → padded with 6 spaces to 168 = 0xa8.
    expect(header.length).toBe(162);
    const expected = Uint8Array.from([
      0xa8, 0, 0, 0, 0, 0, 0, 0,
      ...ascii(header), 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
      ...F_HALF, ...F_ONE, ...F_MINUS_TWO,
    ]);
    expect(bytes).toEqual(expected);
  });

  test('no metadata, empty tensor, and a header already a multiple of 8 gets no padding', () => {
    const bytes = encodeSafetensors({ e: { data: new Float32Array(0), shape: [0, 3] } });
    const header = '{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}';
    expect(header.length).toBe(56);
    expect(bytes).toEqual(handFile(header, []));
    expect(decodeSafetensors(bytes).tensors['e']).toEqual({ data: new Float32Array(0), shape: [0, 3] });
  });

  test('rejects bad input', () => {
    expect(() => encodeSafetensors({ w: { data: new Float32Array(3), shape: [2, 2] } })).toThrow(/shape \[2, 2\] holds 4 values but data has 3/);
    expect(() => encodeSafetensors({ __metadata__: { data: new Float32Array(1), shape: [1] } })).toThrow(/reserved/);
    expect(() => encodeSafetensors({ w: { data: new Float32Array(1), shape: [1.5] } })).toThrow(/non-negative integers/);
    expect(() => encodeSafetensors({}, { k: 3 as unknown as string })).toThrow(/metadata "k" must be a string/);
  });
});

describe('decode', () => {
  test('a hand-built file with entries out of order and a scalar', () => {
    const header =
      '{"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"__metadata__":{"k":"v"},' +
      '"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}';
    const { tensors, metadata } = decodeSafetensors(handFile(header, [...F_THREE, ...F_ONE, ...F_MINUS_TWO]));
    expect(metadata).toEqual({ k: 'v' });
    expect(tensors['a']).toEqual({ data: Float32Array.from([3]), shape: [] });
    expect(tensors['w']).toEqual({ data: Float32Array.from([1, -2]), shape: [2] });
  });

  test('round trip with metadata, unicode names and an unaligned view', () => {
    const t = {
      'layers.0.weight': { data: Float32Array.from({ length: 12 }, (_, i) => i / 7 - 0.5), shape: [3, 4] },
      'λ': { data: Float32Array.from([Math.PI]), shape: [1] },
    };
    const meta = { config: JSON.stringify({ method: 'otcfm', hidden: [64, 64, 64] }), note: 'ünïcode ✓' };
    const bytes = encodeSafetensors(t, meta);
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const back = decodeSafetensors(shifted.subarray(3));
    expect(back.metadata).toEqual(meta);
    expect(back.tensors).toEqual(t);
    expect(new DataView(bytes.buffer).getUint32(0, true) % 8).toBe(0);
  });

  test('corrupted inputs raise with the reason', () => {
    const ok = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    const data = [...F_ONE, ...F_MINUS_TWO];
    expect(() => decodeSafetensors(new Uint8Array(5))).toThrow(/shorter than the 8-byte header length/);
    const big = handFile(ok, data);
    big[0] = 0xff;
    big[1] = 0xff;
    expect(() => decodeSafetensors(big)).toThrow(/header length 65535 exceeds/);
    const huge = handFile(ok, data);
    huge[5] = 1;
    expect(() => decodeSafetensors(huge)).toThrow(/header length \d+ exceeds/);
    expect(() => decodeSafetensors(handFile('{"w":', data))).toThrow(/not valid UTF-8 JSON/);
    expect(() => decodeSafetensors(handFile('[1,2]', data))).toThrow(/not a JSON object/);
    expect(() => decodeSafetensors(handFile(ok.replace('F32', 'F16'), data))).toThrow(/dtype "F16"; only F32 is supported/);
    expect(() => decodeSafetensors(handFile(ok.replace('[2]', '[3]'), data))).toThrow(/spans 8 bytes but shape \[3\] of F32 needs 12/);
    expect(() => decodeSafetensors(handFile(ok.replace('[0,8]', '[0,12]'), data))).toThrow(/outside the 8-byte data section/);
    expect(() => decodeSafetensors(handFile(ok.replace('[0,8]', '[8,0]'), data))).toThrow(/outside/);
    expect(() => decodeSafetensors(handFile(ok, [...data, 0, 0, 0, 0]))).toThrow(/cover 8 bytes but the data section has 12/);
    const gap = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}';
    expect(() => decodeSafetensors(handFile(gap, [...data, ...F_ONE]))).toThrow(/"b" starts at 8, expected 4/);
    const overlap = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    expect(() => decodeSafetensors(handFile(overlap, data))).toThrow(/starts at 4, expected 8/);
    expect(() => decodeSafetensors(handFile('{"__metadata__":{"k":1}}', []))).toThrow(/metadata "k" is not a string/);
    expect(() => decodeSafetensors(handFile('{"w":{"dtype":"F32","shape":[2]}}', data))).toThrow(/data_offsets undefined/);
  });
});

describe('files', () => {
  test('writeFileAtomic replaces by rename and leaves no temporary file', () => {
    const p = join(dir, 'm.bin');
    writeFileAtomic(p, Uint8Array.from([1, 2, 3]));
    expect(Array.from(readFileSync(p))).toEqual([1, 2, 3]);
    const oldIno = statSync(p).ino;
    const fd = openSync(p, 'r'); // a reader holding the old file keeps seeing it whole
    try {
      writeFileAtomic(p, 'new contents');
      expect(readFileSync(p, 'utf8')).toBe('new contents');
      expect(statSync(p).ino).not.toBe(oldIno);
      const buf = Buffer.alloc(16);
      expect(Array.from(buf.subarray(0, readSync(fd, buf, 0, 16, 0)))).toEqual([1, 2, 3]);
    } finally {
      closeSync(fd);
    }
    expect(readdirSync(dir).filter((f) => f.startsWith('m.bin'))).toEqual(['m.bin']);
  });

  test('writeFileAtomic failure leaves nothing behind', () => {
    expect(() => writeFileAtomic(join(dir, 'no', 'such', 'dir', 'f'), 'x')).toThrow(/ENOENT/);
    // Renaming a file over a non-empty directory fails after the temporary file was written.
    const d = join(dir, 'adir');
    mkdirSync(d);
    writeFileSync(join(d, 'inner'), 'i');
    const before = readdirSync(dir).sort();
    expect(() => writeFileAtomic(d, 'x')).toThrow();
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  test('write/read safetensors file', () => {
    const p = join(dir, 'model.safetensors');
    const t = { w: { data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [2, 3] } };
    writeSafetensorsFile(p, t, { config: '{}' });
    expect(readSafetensorsFile(p)).toEqual({ tensors: t, metadata: { config: '{}' } });
    writeFileSync(join(dir, 'bad.safetensors'), Uint8Array.from([1, 2]));
    expect(() => readSafetensorsFile(join(dir, 'bad.safetensors'))).toThrow(/bad.safetensors: invalid safetensors/);
  });
});
