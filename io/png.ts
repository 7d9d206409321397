/**
 * Minimal PNG writer (RGBA8, non-interlaced, filter 0 on every row) per the PNG spec (ISO/IEC
 * 15948, RFC 2083): signature, IHDR, one IDAT holding a zlib stream (RFC 1950) of the scanlines,
 * IEND; every chunk closed by the CRC-32 of its type and data.
 *
 * The zlib compressor is a parameter so the module stays browser-safe: in Node the default uses
 * node:zlib's deflateSync (found at call time through process.getBuiltinModule, no static import);
 * elsewhere it falls back to `storedDeflate`, a valid zlib stream of uncompressed "stored" blocks
 * (RFC 1951 §3.2.4) that every PNG reader accepts.
 */

export type Deflate = (data: Uint8Array) => Uint8Array;

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

let crcTable: Uint32Array | null = null;

/** CRC-32 (ISO 3309 / ITU-T V.42, reflected polynomial 0xEDB88320), as PNG chunks use. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Adler-32 (RFC 1950 §8.2), the zlib stream trailer; sums reduced every 5552 bytes, the most that cannot overflow 2^32. */
export function adler32(bytes: Uint8Array): number {
  let a = 1, b = 0;
  for (let i = 0; i < bytes.length;) {
    const end = Math.min(i + 5552, bytes.length);
    for (; i < end; i++) {
      a += bytes[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** A zlib stream of uncompressed deflate blocks (≤ 65 535 bytes each): header 0x78 0x01, blocks, Adler-32. */
export function storedDeflate(data: Uint8Array): Uint8Array {
  const blocks = Math.max(1, Math.ceil(data.length / 65535));
  const out = new Uint8Array(2 + blocks * 5 + data.length + 4);
  out[0] = 0x78; // CM 8 (deflate), CINFO 7 (32 KiB window)
  out[1] = 0x01; // FLEVEL 0, no dictionary; (0x78·256 + 0x01) % 31 == 0
  let pos = 2;
  for (let b = 0; b < blocks; b++) {
    const start = b * 65535, len = Math.min(65535, data.length - start);
    out[pos++] = b === blocks - 1 ? 1 : 0; // BFINAL, BTYPE 00
    out[pos++] = len & 0xff;
    out[pos++] = len >>> 8;
    out[pos++] = ~len & 0xff;
    out[pos++] = (~len >>> 8) & 0xff;
    out.set(data.subarray(start, start + len), pos);
    pos += len;
  }
  const a = adler32(data);
  out[pos++] = a >>> 24;
  out[pos++] = (a >>> 16) & 0xff;
  out[pos++] = (a >>> 8) & 0xff;
  out[pos++] = a & 0xff;
  return out;
}

/** node:zlib deflateSync where available (Node ≥ 20.16), else storedDeflate. */
export const defaultDeflate: Deflate = (data) => {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const zlib = proc?.getBuiltinModule?.('node:zlib') as typeof import('node:zlib') | undefined;
  if (!zlib) return storedDeflate(data);
  const z = zlib.deflateSync(data);
  return new Uint8Array(z.buffer, z.byteOffset, z.byteLength);
};

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** PNG bytes of a width×height RGBA8 image (rows top to bottom, 4 bytes per pixel). */
export function encodePng(width: number, height: number, rgba: Uint8Array, deflate: Deflate = defaultDeflate): Uint8Array {
  for (const [k, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 0x7fffffff) throw new Error(`encodePng: ${k} must be an integer in [1, 2^31 − 1], got ${v}`);
  }
  if (rgba.length !== width * height * 4) {
    throw new Error(`encodePng: rgba has ${rgba.length} bytes, expected width·height·4 = ${width * height * 4}`);
  }
  const stride = width * 4;
  const raw = new Uint8Array(height * (stride + 1));
  for (let y = 0; y < height; y++) {
    raw[y * (stride + 1)] = 0; // filter type None
    raw.set(rgba.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  }
  const ihdr = new Uint8Array(13);
  const iv = new DataView(ihdr.buffer);
  iv.setUint32(0, width);
  iv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type RGBA
  ihdr[10] = 0; // compression: deflate
  ihdr[11] = 0; // filter method 0
  ihdr[12] = 0; // no interlace
  const parts = [Uint8Array.from(SIGNATURE), chunk('IHDR', ihdr), chunk('IDAT', deflate(raw)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** The chunks of a PNG, each CRC-checked. */
export function readPngChunks(bytes: Uint8Array): { type: string; data: Uint8Array }[] {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error('not a PNG: bad signature');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: { type: string; data: Uint8Array }[] = [];
  let pos = 8;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) throw new Error(`PNG truncated at byte ${pos}`);
    const len = view.getUint32(pos);
    if (pos + 12 + len > bytes.length) throw new Error(`PNG chunk at byte ${pos} (length ${len}) runs past the end`);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const crc = view.getUint32(pos + 8 + len);
    if (crc !== crc32(bytes.subarray(pos + 4, pos + 8 + len))) throw new Error(`PNG chunk ${type} at byte ${pos} has a bad CRC`);
    chunks.push({ type, data: bytes.subarray(pos + 8, pos + 8 + len) });
    pos += 12 + len;
    if (type === 'IEND') break;
  }
  return chunks;
}

/** Width and height from a PNG's IHDR. */
export function decodePngSize(bytes: Uint8Array): { width: number; height: number } {
  if (bytes.length < 24 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error('not a PNG: bad signature');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = String.fromCharCode(...bytes.subarray(12, 16));
  if (type !== 'IHDR') throw new Error(`not a PNG: first chunk is "${type}", expected IHDR`);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}
