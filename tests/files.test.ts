import { afterAll, describe, expect, test } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeCsv, encodeNpy, formatFloat32, loadDataFile, parseCsv, parseNpy } from '../datasets/files';

/** A .npy built from the format rules alone: magic, version, header length, padded dict, payload. */
function handNpy(major: number, dict: string, payload: Uint8Array): Uint8Array {
  const pre = major === 1 ? 10 : 12;
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const hlen = total - pre;
  const header = dict + ' '.repeat(hlen - dict.length - 1) + '\n';
  const out = new Uint8Array(total + payload.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  if (major === 1) {
    out[8] = hlen & 0xff;
    out[9] = hlen >> 8;
  } else {
    out[8] = hlen & 0xff;
    out[9] = (hlen >> 8) & 0xff;
    out[10] = (hlen >> 16) & 0xff;
    out[11] = hlen >>> 24;
  }
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  out.set(payload, total);
  return out;
}

function f8(values: number[]): Uint8Array {
  const b = new Uint8Array(8 * values.length);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => v.setFloat64(8 * i, x, true));
  return b;
}

const dir = mkdtempSync(join(tmpdir(), 'wgflow-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npy', () => {
  test('f4 round trip, 2-D and 1-D, header 64-byte aligned as numpy.save writes it', () => {
    const data = Float32Array.from([1.5, -2, 0.1, 3e-8, 1e30, -0]);
    const bytes = encodeNpy(data, [3, 2]);
    const hlen = bytes[8]! | (bytes[9]! << 8);
    expect((10 + hlen) % 64).toBe(0);
    expect(bytes[9 + hlen]).toBe(0x0a);
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + hlen));
    expect(header.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }")).toBe(true);
    expect(bytes.length).toBe(10 + hlen + 24);
    const m = parseNpy(bytes);
    expect([m.n, m.dim]).toEqual([3, 2]);
    expect(m.data).toEqual(data);

    const one = parseNpy(encodeNpy(Float32Array.from([4, 5, 6]), [3]));
    expect([one.n, one.dim, Array.from(one.data)]).toEqual([3, 1, [4, 5, 6]]);
    expect(new TextDecoder().decode(encodeNpy(Float32Array.from([4, 5, 6]), [3]).subarray(10, 70))).toContain("'shape': (3,), }");
  });

  test('hand-built <f8 (v1.0) parses to float32', () => {
    const bytes = handNpy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", f8([1.25, -3, 1 / 3, 1e10]));
    const m = parseNpy(bytes);
    expect([m.n, m.dim]).toEqual([2, 2]);
    expect(Array.from(m.data)).toEqual([1.25, -3, Math.fround(1 / 3), Math.fround(1e10)]);
  });

  test('hand-built <i8 (v2.0, u32 header length) and <i4 (v3.0) parse', () => {
    const p = new Uint8Array(24);
    const v = new DataView(p.buffer);
    v.setBigInt64(0, 7n, true);
    v.setBigInt64(8, -2n, true);
    v.setBigInt64(16, 1n << 40n, true);
    const m = parseNpy(handNpy(2, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", p));
    expect([m.n, m.dim, Array.from(m.data)]).toEqual([3, 1, [7, -2, 2 ** 40]]);

    const q = new Uint8Array(8);
    new DataView(q.buffer).setInt32(0, -5, true);
    new DataView(q.buffer).setInt32(4, 9, true);
    const k = parseNpy(handNpy(3, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }", q));
    expect([k.n, k.dim, Array.from(k.data)]).toEqual([1, 2, [-5, 9]]);
  });

  test('errors name the problem', () => {
    const dict = (d: string, f = 'False', s = '(2, 1)') => `{'descr': '${d}', 'fortran_order': ${f}, 'shape': ${s}, }`;
    expect(() => parseNpy(new Uint8Array(0))).toThrow(/empty/);
    expect(() => parseNpy(new TextEncoder().encode('hello world, not npy'))).toThrow(/magic/);
    expect(() => parseNpy(handNpy(1, dict('<f2'), new Uint8Array(4)))).toThrow(/unsupported .npy dtype "<f2"; accepted: <f4, <f8, <i4, <i8/);
    expect(() => parseNpy(handNpy(1, dict('>f4'), new Uint8Array(8)))).toThrow(/">f4" \(big-endian/);
    expect(() => parseNpy(handNpy(1, dict('<f8', 'True'), f8([1, 2])))).toThrow(/Fortran \(column-major\) order/);
    expect(() => parseNpy(handNpy(1, dict('<f8', 'False', '(1, 1, 2)'), f8([1, 2])))).toThrow(/shape \(1, 1, 2\); accepted: 2-D/);
    expect(() => parseNpy(handNpy(1, dict('<f8', 'False', '()'), f8([1])))).toThrow(/shape \(\)/);
    expect(() => parseNpy(handNpy(1, dict('<f8', 'False', '(0, 2)'), new Uint8Array(0)))).toThrow(/empty: shape \(0, 2\)/);
    expect(() => parseNpy(handNpy(1, dict('<f8'), f8([1])))).toThrow(/truncated.*needs 16 bytes, found 8/);
    expect(() => parseNpy(handNpy(1, dict('<f8'), f8([1, NaN])))).toThrow(/value NaN at row 1, column 0/);
    expect(() => parseNpy(handNpy(1, dict('<f8'), f8([1, 1e300])))).toThrow(/1e\+300 at row 1, column 0 .* not a finite float32/);
    const bad = handNpy(1, dict('<f8'), f8([1, 2]));
    bad[6] = 4;
    expect(() => parseNpy(bad)).toThrow(/version 4.0; accepted: 1.0, 2.0, 3.0/);
  });
});

describe('csv', () => {
  test('header line, blank lines, CRLF, spaces and exponents', () => {
    const m = parseCsv('x, y\r\n\r\n1,2\n  3.5 , -4e-1\n\n.5,+7\n');
    expect([m.n, m.dim]).toEqual([3, 2]);
    expect(Array.from(m.data)).toEqual([1, 2, 3.5, Math.fround(-0.4), 0.5, 7]);
    const noHeader = parseCsv('1\n2\n3');
    expect([noHeader.n, noHeader.dim]).toEqual([3, 1]);
  });

  test('encodeCsv writes the shortest float32 round trip', () => {
    const data = Float32Array.from([0.1, -2, 1e-7, 3.4028234663852886e38, 1 / 3, 0]);
    const text = encodeCsv(data, 3, 2);
    expect(text.split('\n')[0]).toBe('0.1,-2');
    expect(text.endsWith('\n')).toBe(true);
    const back = parseCsv(text);
    expect([back.n, back.dim]).toEqual([3, 2]);
    expect(back.data).toEqual(data);
    expect(encodeCsv(Float32Array.from([1, 2]), 1, 2, ['a', 'b'])).toBe('a,b\n1,2\n');
    expect(formatFloat32(Math.fround(0.3))).toBe('0.3');
    expect(() => encodeCsv(data, 4, 2)).toThrow(/n=4 × dim=2 does not match data length 6/);
  });

  test('errors: empty, header only, ragged (line number), not a number, non-finite (row/column)', () => {
    expect(() => parseCsv('')).toThrow(/empty/);
    expect(() => parseCsv('\n  \n')).toThrow(/empty/);
    expect(() => parseCsv('a,b\n\n')).toThrow(/no data rows/);
    expect(() => parseCsv('1,2\n3,4\n\n5,6,7\n')).toThrow(/CSV line 4 has 3 fields, expected 2/);
    expect(() => parseCsv('a,b\n1\n')).toThrow(/line 2 has 1 fields, expected 2/);
    expect(() => parseCsv('1,2\n3,abc\n')).toThrow(/line 2, column 2: "abc" is not a number/);
    expect(() => parseCsv('1,2\n3,\n')).toThrow(/line 2, column 2: "" is not a number/);
    expect(() => parseCsv('x,y\n1,2\n3,NaN\n')).toThrow(/line 3 \(row 2, column 2\): value "NaN" is not a finite/);
    expect(() => parseCsv('1,-inf\n')).toThrow(/row 1, column 2/);
    expect(() => parseCsv('1e39,0\n')).toThrow(/row 1, column 1\): value "1e39" is not a finite float32/);
  });
});

describe('loadDataFile', () => {
  test('reads .npy and .CSV by extension', () => {
    const npy = join(dir, 'a.npy');
    writeFileSync(npy, encodeNpy(Float32Array.from([1, 2, 3, 4]), [2, 2]));
    expect(loadDataFile(npy)).toEqual({ data: Float32Array.from([1, 2, 3, 4]), n: 2, dim: 2 });
    const csv = join(dir, 'b.CSV');
    writeFileSync(csv, 'u,v,w\n1,2,3\n');
    expect(loadDataFile(csv)).toEqual({ data: Float32Array.from([1, 2, 3]), n: 1, dim: 3 });
  });

  test('errors: unknown extension, missing, empty, bad content names the file', () => {
    expect(() => loadDataFile(join(dir, 'x.txt'))).toThrow(/unknown data file extension ".txt" .*; accepted: .npy, .csv/);
    expect(() => loadDataFile(join(dir, 'noext'))).toThrow(/extension \(none\)/);
    expect(() => loadDataFile(join(dir, 'missing.csv'))).toThrow(/cannot read data file .*missing.csv/);
    const empty = join(dir, 'empty.npy');
    writeFileSync(empty, '');
    expect(() => loadDataFile(empty)).toThrow(/empty.npy" is empty/);
    const ragged = join(dir, 'r.csv');
    writeFileSync(ragged, '1,2\n3\n');
    expect(() => loadDataFile(ragged)).toThrow(/r.csv": CSV line 2 has 1 fields/);
  });
});
