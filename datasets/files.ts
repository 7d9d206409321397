/**
 * User data files (`--data FILE.npy|.csv`, SPEC §2) as a row-major float32 matrix, and writers for
 * `wgflow sample --out FILE.npy|.csv` (SPEC §4).
 *
 * NPY follows the NumPy format spec (numpy.lib.format, versions 1.0–3.0): magic "\x93NUMPY",
 * version bytes, a little-endian u16 (v1) or u32 (v2, v3) header length, a Python-literal dict
 * with 'descr', 'fortran_order', 'shape', then the raw array. Parsing is pure (browser-safe);
 * only loadDataFile touches the file system.
 */
import { nodeFs } from '../io/atomic';
import { quote } from '../io/quote';

/**
 * The largest magnitude accepted in a data file (`--data`). Why a bound: the trainers work in
 * float32 without standardising CFM targets, so a value like 1e30 trains to NaN or to a W2 of
 * 1e27 without any error; refusing it, naming where it is, is what a user can act on.
 */
export const DATA_MAX_ABS = 1e6;

/** Largest data file read (bytes): beyond it a read would take most of the memory of a small machine. */
export const DATA_MAX_BYTES = 1 << 30;

export interface DataMatrix {
  data: Float32Array;
  n: number;
  dim: number;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const NPY_DTYPES: Record<string, { size: number; read: (v: DataView, o: number) => number }> = {
  '<f4': { size: 4, read: (v, o) => v.getFloat32(o, true) },
  '<f8': { size: 8, read: (v, o) => v.getFloat64(o, true) },
  '<i4': { size: 4, read: (v, o) => v.getInt32(o, true) },
  '<i8': { size: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
};

function headerField(header: string, key: string, valuePattern: string): string | null {
  const m = new RegExp(`['"]${key}['"]\\s*:\\s*${valuePattern}`).exec(header);
  return m ? m[1]! : null;
}

/** Parses a C-order .npy array of dtype <f4, <f8, <i4 or <i8, 2-D (n×d) or 1-D (n×1). */
export function parseNpy(bytes: Uint8Array): DataMatrix {
  if (bytes.length === 0) throw new Error('.npy input is empty (0 bytes)');
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error('not a .npy file: it does not start with the magic "\\x93NUMPY"');
  }
  const major = bytes[6]!, minor = bytes[7]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number, headerLen: number;
  if (major === 1) {
    headerStart = 10;
    headerLen = view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new Error('.npy file is truncated inside its preamble');
    headerStart = 12;
    headerLen = view.getUint32(8, true);
  } else {
    throw new Error(`unsupported .npy format version ${major}.${minor}; accepted: 1.0, 2.0, 3.0`);
  }
  if (headerStart + headerLen > bytes.length) {
    throw new Error(`.npy header length ${headerLen} runs past the end of the file (${bytes.length} bytes)`);
  }
  const raw = bytes.subarray(headerStart, headerStart + headerLen);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(raw);

  const descr = headerField(header, 'descr', `['"]([^'"]*)['"]`);
  if (descr === null) throw new Error(`.npy header has no 'descr': ${quote(header.trim())}`);
  const dtype = NPY_DTYPES[descr];
  if (!dtype) {
    const hint = descr.startsWith('>') ? ' (big-endian data: convert with a.astype(a.dtype.newbyteorder("<")))' : '';
    throw new Error(`unsupported .npy dtype ${quote(descr)}${hint}; accepted: ${Object.keys(NPY_DTYPES).join(', ')}`);
  }
  const fortran = headerField(header, 'fortran_order', '(True|False)');
  if (fortran === null) throw new Error(`.npy header has no 'fortran_order': ${quote(header.trim())}`);
  if (fortran === 'True') {
    throw new Error('.npy array is stored in Fortran (column-major) order, which is not supported; save it with np.save(path, np.ascontiguousarray(a))');
  }
  const shapeText = headerField(header, 'shape', '\\(([^)]*)\\)');
  if (shapeText === null) throw new Error(`.npy header has no 'shape': ${quote(header.trim())}`);
  const shape = shapeText.split(',').map((s) => s.trim().replace(/L$/, '')).filter((s) => s.length > 0).map((s) => {
    const v = Number(s);
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`.npy shape entry ${quote(s)} is not a non-negative integer`);
    return v;
  });
  if (shape.length < 1 || shape.length > 2) {
    throw new Error(`.npy array has shape (${shape.slice(0, 4).join(', ')}${shape.length > 4 ? `, … ${shape.length} entries` : ''}); accepted: 2-D (n, d) or 1-D (n,) read as n×1`);
  }
  const n = shape[0]!, dim = shape.length === 2 ? shape[1]! : 1;
  if (n === 0 || dim === 0) throw new Error(`.npy array is empty: shape (${shape.join(', ')})`);

  const dataStart = headerStart + headerLen;
  const need = n * dim * dtype.size, have = bytes.length - dataStart;
  if (have < need) throw new Error(`.npy data is truncated: shape (${shape.join(', ')}) of ${descr} needs ${need} bytes, found ${have}`);
  if (have > need) throw new Error(`.npy file has ${have - need} unexpected bytes after the array data`);

  const data = new Float32Array(n * dim);
  for (let i = 0; i < n * dim; i++) {
    const v = dtype.read(view, dataStart + i * dtype.size);
    const f = Math.fround(v);
    if (!Number.isFinite(f)) {
      throw new Error(`.npy value ${v} at row ${Math.floor(i / dim)}, column ${i % dim} (0-based) is not a finite float32`);
    }
    data[i] = f;
  }
  return { data, n, dim };
}

// Unambiguous (digits after the point only follow a point): the older \d+\.?\d* split a run of
// digits two ways and backtracked quadratically: a 5 MB field of digits ending in "x" never returned.
const NUMBER_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NONFINITE_RE = /^[+-]?(nan|inf|infinity)$/i;

/** A CSV field as a number, NaN/±Infinity for spelled-out non-finite values, or null if not numeric. */
function parseField(s: string): number | null {
  const t = s.trim();
  if (NUMBER_RE.test(t)) return Number(t);
  if (NONFINITE_RE.test(t)) return /nan/i.test(t) ? NaN : t.startsWith('-') ? -Infinity : Infinity;
  return null;
}

/**
 * Parses comma-separated numbers, one row per line. Blank lines are ignored; the first non-blank
 * line is a header when none of its fields is a number. Every row must have the header's (or the
 * first row's) number of fields.
 */
export function parseCsv(text: string): DataMatrix {
  const lines = text.split(/\r\n|\n|\r/);
  const values: number[] = [];
  let dim = -1, n = 0, first = true;
  for (let li = 0; li < lines.length; li++) {
    const line = lines[li]!;
    if (line.trim() === '') continue;
    const fields = line.split(',');
    const lineNo = li + 1;
    if (first) {
      first = false;
      const parsed = fields.map(parseField);
      if (parsed.every((v) => v === null)) {
        dim = fields.length;
        continue;
      }
    }
    if (dim < 0) dim = fields.length;
    if (fields.length !== dim) {
      throw new Error(`CSV line ${lineNo} has ${fields.length} fields, expected ${dim} (ragged rows)`);
    }
    for (let c = 0; c < dim; c++) {
      const v = parseField(fields[c]!);
      if (v === null) {
        throw new Error(`CSV line ${lineNo}, column ${c + 1}: ${quote(fields[c]!.trim())} is not a number`);
      }
      const f = Math.fround(v);
      if (!Number.isFinite(f)) {
        throw new Error(`CSV line ${lineNo} (row ${n + 1}, column ${c + 1}): value ${quote(fields[c]!.trim())} is not a finite float32`);
      }
      values.push(f);
    }
    n++;
  }
  if (n === 0) throw new Error(first ? 'CSV input is empty' : 'CSV input has no data rows');
  return { data: Float32Array.from(values), n, dim };
}

/**
 * Refuses a value that is not finite or beyond DATA_MAX_ABS, naming its row and column (1-based).
 * `what` names the source (e.g. `data file "x.csv"`).
 */
export function checkDataMagnitude(m: DataMatrix, what: string): void {
  for (let i = 0; i < m.data.length; i++) {
    const v = m.data[i]!;
    if (!(Math.abs(v) <= DATA_MAX_ABS)) {
      throw new Error(
        `${what}: row ${Math.floor(i / m.dim) + 1}, column ${(i % m.dim) + 1} holds ${v}; accepted: finite values with |x| ≤ ${DATA_MAX_ABS.toExponential()} (rescale or standardise the data first)`,
      );
    }
  }
}

/**
 * Reads a .npy or .csv data file (by extension, case-insensitive) and checks its values against
 * DATA_MAX_ABS. Only regular files up to DATA_MAX_BYTES are read: a FIFO or a device named x.csv
 * would block the read forever or never end. Node only.
 */
export function loadDataFile(path: string): DataMatrix {
  const lower = path.toLowerCase();
  const ext = lower.endsWith('.npy') ? '.npy' : lower.endsWith('.csv') ? '.csv' : null;
  const name = quote(path, 300);
  if (ext === null) {
    const m = /\.[^./\\]*$/.exec(path);
    throw new Error(`unknown data file extension ${m ? quote(m[0], 20) : '(none)'} in ${name}; accepted: .npy, .csv`);
  }
  const fs = nodeFs();
  let bytes: Uint8Array;
  try {
    const st = fs.statSync(path);
    if (!st.isFile()) throw new Error(`not a regular file (${st.isDirectory() ? 'a directory' : 'a device, FIFO or socket'})`);
    if (st.size > DATA_MAX_BYTES) throw new Error(`${st.size} bytes is more than the ${DATA_MAX_BYTES} accepted`);
    bytes = fs.readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`cannot read data file ${name}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (bytes.length === 0) throw new Error(`data file ${name} is empty`);
  let m: DataMatrix;
  try {
    m = ext === '.npy' ? parseNpy(bytes) : parseCsv(new TextDecoder('utf-8').decode(bytes));
  } catch (err) {
    throw new Error(`data file ${name}: ${(err as Error).message}`);
  }
  checkDataMagnitude(m, `data file ${name}`);
  return m;
}

/**
 * A .npy (format 1.0, or 2.0 if the header outgrows 65 535 bytes) holding `data` as <f4 in C order.
 * The header is space-padded and newline-terminated so the data starts on a 64-byte boundary,
 * as numpy.save writes it.
 */
export function encodeNpy(data: Float32Array, shape: number[]): Uint8Array {
  if (shape.some((s) => !Number.isSafeInteger(s) || s < 0)) {
    throw new Error(`encodeNpy: shape [${shape.join(', ')}] must hold non-negative integers`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new Error(`encodeNpy: shape [${shape.join(', ')}] holds ${count} values but data has ${data.length}`);
  }
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  let major = 1, pre = 10;
  let total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  if (total - pre > 0xffff) {
    major = 2;
    pre = 12;
    total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  }
  const headerLen = total - pre;
  const header = dict + ' '.repeat(headerLen - dict.length - 1) + '\n';
  const out = new Uint8Array(total + data.length * 4);
  const view = new DataView(out.buffer);
  out.set(NPY_MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  if (major === 1) view.setUint16(8, headerLen, true);
  else view.setUint32(8, headerLen, true);
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  for (let i = 0; i < data.length; i++) view.setFloat32(total + 4 * i, data[i]!, true);
  return out;
}

/** The shortest decimal that reads back as the same float32. */
export function formatFloat32(v: number): string {
  const f = Math.fround(v);
  if (!Number.isFinite(f)) return String(f);
  for (let p = 1; p < 9; p++) {
    const s = f.toPrecision(p);
    if (Math.fround(Number(s)) === f) return String(Number(s));
  }
  return String(Number(f.toPrecision(9)));
}

/** n rows of `dim` comma-separated values (shortest float32 round-trip), newline-terminated. */
export function encodeCsv(data: Float32Array, n: number, dim: number, header?: string[]): string {
  if (!Number.isSafeInteger(n) || !Number.isSafeInteger(dim) || n < 0 || dim < 1 || n * dim !== data.length) {
    throw new Error(`encodeCsv: n=${n} × dim=${dim} does not match data length ${data.length}`);
  }
  if (header && header.length !== dim) {
    throw new Error(`encodeCsv: header has ${header.length} names, expected dim=${dim}`);
  }
  const lines: string[] = header ? [header.join(',')] : [];
  const row: string[] = new Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) row[j] = formatFloat32(data[i * dim + j]!);
    lines.push(row.join(','));
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}
