/**
 * IDX files (LeCun's MNIST format, also Fashion-MNIST's): a 4-byte magic `0 0 TYPE NDIM`, NDIM
 * big-endian uint32 sizes, then the values in row-major order, big-endian. Debian's
 * `dataset-fashion-mnist` installs them gzip-compressed under /usr/share/datasets/fashion-mnist/.
 *
 * Everything a file claims is checked against what it holds before anything is allocated for it
 * (type, dimension count, sizes, the exact byte length: a truncated or padded file is an error
 * naming the difference), and decompression is capped, so a bad or hostile file ends in a clear
 * error rather than a huge allocation. parseIdx is browser-safe; readIdxFile needs Node.
 */

/** IDX element types: code → name, bytes per value. */
const IDX_TYPES: Record<number, { name: string; bytes: number }> = {
  0x08: { name: 'uint8', bytes: 1 },
  0x09: { name: 'int8', bytes: 1 },
  0x0b: { name: 'int16', bytes: 2 },
  0x0c: { name: 'int32', bytes: 4 },
  0x0d: { name: 'float32', bytes: 4 },
  0x0e: { name: 'float64', bytes: 8 },
};

/** Largest decompressed IDX accepted (Fashion-MNIST's training images are 47 MB). */
export const IDX_MAX_BYTES = 256 * 1024 * 1024;

export interface IdxArray {
  /** Element type name (uint8, int8, int16, int32, float32, float64). */
  type: string;
  /** Sizes, outermost first (e.g. [60000, 28, 28]). */
  shape: number[];
  /** The values as float64 (exact for every IDX type). */
  values: Float64Array;
  /** The raw bytes of uint8 files (images, labels), without a copy into float64; null otherwise. */
  bytes: Uint8Array | null;
}

/** Parses an uncompressed IDX file; `what` names it in errors. */
export function parseIdx(buf: Uint8Array, what = 'IDX data'): IdxArray {
  if (buf.length < 4) throw new Error(`${what}: ${buf.length} bytes is too short for an IDX header (4-byte magic)`);
  if (buf[0] !== 0 || buf[1] !== 0) {
    const gz = buf[0] === 0x1f && buf[1] === 0x8b ? ' (it is gzip-compressed: decompress it first)' : '';
    throw new Error(`${what}: not an IDX file: the magic number must start with two zero bytes, got 0x${hex(buf[0]!)}${hex(buf[1]!)}${gz}`);
  }
  const type = IDX_TYPES[buf[2]!];
  if (!type) throw new Error(`${what}: unknown IDX element type 0x${hex(buf[2]!)}; accepted: ${Object.entries(IDX_TYPES).map(([c, t]) => `0x${hex(Number(c))} ${t.name}`).join(', ')}`);
  const ndim = buf[3]!;
  if (ndim < 1 || ndim > 4) throw new Error(`${what}: ${ndim} dimensions; accepted: 1 to 4`);
  const header = 4 + 4 * ndim;
  if (buf.length < header) throw new Error(`${what}: truncated header: ${buf.length} bytes, the ${ndim} sizes need ${header}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const s = view.getUint32(4 + 4 * i, false);
    if (s === 0) throw new Error(`${what}: size ${i} is 0`);
    shape.push(s);
    count *= s;
  }
  const need = header + count * type.bytes;
  if (!Number.isSafeInteger(need) || need > IDX_MAX_BYTES) throw new Error(`${what}: sizes [${shape.join(', ')}] of ${type.name} need ${need} bytes; at most ${IDX_MAX_BYTES} are accepted`);
  if (buf.length !== need) {
    throw new Error(`${what}: ${buf.length < need ? 'truncated' : 'has trailing bytes'}: sizes [${shape.join(', ')}] of ${type.name} need ${need} bytes, the file has ${buf.length}`);
  }
  const values = new Float64Array(count);
  let bytes: Uint8Array | null = null;
  switch (type.name) {
    case 'uint8':
      bytes = buf.subarray(header, need);
      values.set(bytes);
      break;
    case 'int8':
      for (let i = 0; i < count; i++) values[i] = view.getInt8(header + i);
      break;
    case 'int16':
      for (let i = 0; i < count; i++) values[i] = view.getInt16(header + 2 * i, false);
      break;
    case 'int32':
      for (let i = 0; i < count; i++) values[i] = view.getInt32(header + 4 * i, false);
      break;
    case 'float32':
      for (let i = 0; i < count; i++) values[i] = view.getFloat32(header + 4 * i, false);
      break;
    case 'float64':
      for (let i = 0; i < count; i++) values[i] = view.getFloat64(header + 8 * i, false);
      break;
  }
  return { type: type.name, shape, values, bytes };
}

/** Writes an IDX file (uint8 or float32), e.g. for test fixtures. */
export function encodeIdx(type: 'uint8' | 'float32', shape: number[], values: ArrayLike<number>): Uint8Array {
  const code = type === 'uint8' ? 0x08 : 0x0d;
  const size = type === 'uint8' ? 1 : 4;
  const header = 4 + 4 * shape.length;
  const out = new Uint8Array(header + values.length * size);
  const view = new DataView(out.buffer);
  out.set([0, 0, code, shape.length]);
  shape.forEach((s, i) => view.setUint32(4 + 4 * i, s, false));
  for (let i = 0; i < values.length; i++) {
    if (type === 'uint8') out[header + i] = values[i]!;
    else view.setFloat32(header + 4 * i, values[i]!, false);
  }
  return out;
}

/** Reads an IDX file from disk, gunzipping `.gz` files (capped at IDX_MAX_BYTES). Node only. */
export function readIdxFile(path: string): IdxArray {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined;
  const zlib = proc?.getBuiltinModule?.('node:zlib') as typeof import('node:zlib') | undefined;
  if (!fs || !zlib) throw new Error('readIdxFile: file access needs Node.js >= 20.16');
  let raw: Uint8Array;
  try {
    raw = fs.readFileSync(path);
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === 'ENOENT' ? `${path}: no such file` : `${path}: ${(e as Error).message}`);
  }
  let buf = raw;
  if (raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      buf = zlib.gunzipSync(raw, { maxOutputLength: IDX_MAX_BYTES });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Error(`${path}: ${err.code === 'ERR_BUFFER_TOO_LARGE' ? `decompresses to more than ${IDX_MAX_BYTES} bytes` : `not a valid gzip file (${err.message})`}`);
    }
  }
  return parseIdx(buf, path);
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}
