/**
 * The safetensors container (huggingface/safetensors): an 8-byte little-endian u64 header length N,
 * N bytes of UTF-8 JSON (padded with spaces to a multiple of 8 so the data section is 8-aligned),
 * then the raw little-endian tensor bytes. The header maps each tensor name to
 * {dtype, shape, data_offsets: [begin, end]} relative to the data section, plus an optional
 * "__metadata__" string→string map (wgflow stores the model config there, SPEC §4).
 *
 * wgflow writes F32 only, tensors packed contiguously in sorted-name order and "__metadata__"
 * first, so equal inputs give equal bytes. The decoder checks what the reference implementation
 * checks (header inside the file, offsets contiguous and covering the data section exactly, byte
 * length = shape product × 4) and rejects any dtype but F32 by name.
 */
import { nodeFs, writeFileAtomic } from './atomic';
import { quote } from './quote';

/** Largest JSON header accepted (bytes), the reference implementation's limit (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface Tensor {
  data: Float32Array;
  shape: number[];
}

export interface Safetensors {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

const META = '__metadata__';

/** Code-unit order, the same for every locale (localeCompare is not). */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function shapeSize(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Serialises `tensors` (F32) and optional string `metadata` into safetensors bytes. */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors).sort(byName);
  const entries: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const keys = Object.keys(metadata).sort(byName);
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') {
        throw new Error(`safetensors metadata "${k}" must be a string, got ${typeof metadata[k]}`);
      }
    }
    entries.push(`${JSON.stringify(META)}:{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const name of names) {
    if (name === '' || name === META) throw new Error(`safetensors tensor name "${name}" is reserved or empty`);
    const { data, shape } = tensors[name]!;
    if (!(data instanceof Float32Array)) throw new Error(`safetensors tensor "${name}": data must be a Float32Array`);
    if (!Array.isArray(shape) || shape.some((s) => !Number.isSafeInteger(s) || s < 0)) {
      throw new Error(`safetensors tensor "${name}": shape ${JSON.stringify(shape)} must be non-negative integers`);
    }
    if (shapeSize(shape) !== data.length) {
      throw new Error(`safetensors tensor "${name}": shape [${shape.join(', ')}] holds ${shapeSize(shape)} values but data has ${data.length}`);
    }
    const end = offset + data.length * 4;
    entries.push(`${JSON.stringify(name)}:{"dtype":"F32","shape":[${shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${entries.join(',')}}`);
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerLen, true);
  view.setUint32(4, Math.floor(headerLen / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const name of names) {
    const d = tensors[name]!.data;
    for (let i = 0; i < d.length; i++, pos += 4) view.setFloat32(pos, d[i]!, true);
  }
  return out;
}

function fail(msg: string): never {
  throw new Error(`invalid safetensors: ${msg}`);
}

/** Parses and validates safetensors bytes holding F32 tensors. */
export function decodeSafetensors(bytes: Uint8Array): Safetensors {
  if (bytes.length < 8) fail(`${bytes.length} bytes is shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = view.getUint32(0, true), hi = view.getUint32(4, true);
  const headerLen = hi * 2 ** 32 + lo;
  if (headerLen > bytes.length - 8) fail(`header length ${headerLen} exceeds the ${bytes.length - 8} bytes after it`);
  if (headerLen > MAX_HEADER_BYTES) fail(`header length ${headerLen} is more than the ${MAX_HEADER_BYTES} bytes accepted`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (err) {
    // The parser's message quotes the header: escaped and cut like any file content.
    fail(`header is not valid UTF-8 JSON (${quote((err as Error).message, 120)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + headerLen, dataLen = bytes.length - dataStart;

  // Null-prototype maps: a tensor or key named "__proto__" or "toString" is data, not a property of Object.
  const metadata: Record<string, string> = Object.create(null);
  const spans: { name: string; begin: number; end: number; shape: number[] }[] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === META) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail('"__metadata__" is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`metadata ${quote(k)} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const q = quote(name);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(`tensor ${q} entry is not an object`);
    const { dtype, shape, data_offsets: offs } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (dtype !== 'F32') fail(`tensor ${q} has dtype ${quote(dtype, 20)}; only F32 is supported`);
    if (!Array.isArray(shape) || shape.some((s) => !Number.isSafeInteger(s) || (s as number) < 0)) {
      fail(`tensor ${q} shape ${quote(shape, 40)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((o) => !Number.isSafeInteger(o) || (o as number) < 0)) {
      fail(`tensor ${q} data_offsets ${quote(offs, 40)} is not [begin, end]`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin || end > dataLen) fail(`tensor ${q} data_offsets [${begin}, ${end}] lie outside the ${dataLen}-byte data section`);
    const expected = shapeSize(shape as number[]) * 4;
    if (end - begin !== expected) {
      const dims = shape as number[];
      fail(`tensor ${q} spans ${end - begin} bytes but shape [${dims.slice(0, 8).join(', ')}${dims.length > 8 ? `, … ${dims.length} dimensions` : ''}] of F32 needs ${expected}`);
    }
    spans.push({ name, begin, end, shape: (shape as number[]).slice() });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const s of spans) {
    if (s.begin !== cursor) fail(`tensor ${quote(s.name)} starts at ${s.begin}, expected ${cursor} (offsets must be contiguous, without gaps or overlaps)`);
    cursor = s.end;
  }
  if (cursor !== dataLen) fail(`tensors cover ${cursor} bytes but the data section has ${dataLen}`);

  const tensors: Record<string, Tensor> = Object.create(null);
  for (const s of spans) {
    const count = (s.end - s.begin) / 4;
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(dataStart + s.begin + 4 * i, true);
    tensors[s.name] = { data, shape: s.shape };
  }
  return { tensors, metadata };
}

/** Reads and decodes a .safetensors file. Node only. */
export function readSafetensorsFile(path: string): Safetensors {
  const bytes = nodeFs().readFileSync(path);
  try {
    return decodeSafetensors(bytes);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
}

/** Encodes and writes a .safetensors file atomically (see writeFileAtomic). Node only. */
export function writeSafetensorsFile(path: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export { writeFileAtomic };
