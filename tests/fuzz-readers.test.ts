/**
 * Fuzz tests of the readers (issue 12 item 7), seeded so every CI run sees the same inputs: 2 000
 * mutated checkpoints (read and checked as `wgflow sample`/`eval` check them), 1 000 mutated .npy
 * and 1 000 mutated .csv files. Each must end in a read or a clean error: an Error with a short,
 * printable message, never a TypeError/RangeError/SyntaxError escaping from deep inside, and within
 * a bounded time and memory per file.
 *
 * The mutations mix byte-level damage (flips, cuts, splices) with structural edits that keep the
 * container valid so the checks behind it are reached: config fields replaced by values of other
 * types, huge or negative numbers, "toString"/"__proto__" names, deleted fields, reshaped tensors.
 */
import { describe, expect, test } from 'vitest';
import { paramsToFlat, type CfmConfig } from '../cfm/config';
import { decodeCheckpoint } from '../train/checkpoint';
import { familyOf } from '../train/methods';
import { resolveArch } from '../flows/build';
import type { FlowRunConfig } from '../flows/checkpoint';
import { logStdSum } from '../flows/data';
import type { Method } from '../train/contract';
import { checkModelConfig, checkTrainConfig, firstNonFinite } from '../cli/stored-config';
import { encodeNpy, parseCsv, parseNpy, checkDataMagnitude } from '../datasets/files';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors';
import { cfmCheckpoint, flowCheckpoint } from './fixtures/checkpoints';
import { mulberry32 } from './fixtures/seeded';


type R = () => number;
const pick = <T,>(r: R, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Values a field may be replaced by. */
const WEIRD: unknown[] = [null, true, false, 0, -1, 1.5, 2, 3, 1e308, -1e308, 2 ** 53, 6e9, 30000, '', '2', 'toString', '__proto__', 'constructor', 'NaN', 'x'.repeat(5000), '\u0000\u001b[2J', [], [0], [-1], [30000], [1e9, 1e9], ['64'], {}, { n: 1 }, { mean: 'x', std: 'y' }, { mean: [0, 0], std: [0, -1] }];

function mutateJson(r: R, v: unknown, depth = 0): unknown {
  if (Array.isArray(v)) {
    const out = v.slice();
    if (out.length && r() < 0.6) out[Math.floor(r() * out.length)] = mutateJson(r, out[Math.floor(r() * out.length)], depth + 1);
    else if (r() < 0.5) out.push(pick(r, WEIRD));
    else out.pop();
    return out;
  }
  if (typeof v === 'object' && v !== null && depth < 3) {
    const o = { ...(v as Record<string, unknown>) };
    const keys = Object.keys(o);
    const k = keys.length ? pick(r, keys) : 'x';
    const c = r();
    if (c < 0.2) delete o[k];
    else if (c < 0.7) o[k] = pick(r, WEIRD);
    else if (c < 0.9) o[k] = mutateJson(r, o[k], depth + 1);
    else o[pick(r, ['toString', '__proto__', 'extra', 'hidden', 'arch'])] = pick(r, WEIRD);
    return o;
  }
  return pick(r, WEIRD);
}

/** A structural mutation: the safetensors container stays valid, its contents do not. */
function mutateCheckpoint(r: R, base: Uint8Array): Uint8Array {
  const { tensors, metadata } = decodeSafetensors(base);
  const meta = { ...metadata };
  const t = { ...tensors };
  const c = r();
  if (c < 0.45) {
    const key = pick(r, ['config', 'config', 'config', 'train_config', 'train_config', 'losses', 'extra', 'param_order']);
    let parsed: unknown;
    try {
      parsed = JSON.parse(meta[key] ?? 'null');
    } catch {
      parsed = null;
    }
    const n = 1 + Math.floor(r() * 3);
    for (let i = 0; i < n; i++) parsed = mutateJson(r, parsed);
    meta[key] = JSON.stringify(parsed) ?? 'null';
  } else if (c < 0.55) {
    meta[pick(r, ['step', 'adam_t', 'format'])] = String(pick(r, WEIRD));
  } else if (c < 0.65) {
    delete meta[pick(r, Object.keys(meta))];
  } else if (c < 0.8) {
    // Reshape, drop, rename or poison a tensor.
    const names = Object.keys(t);
    const name = pick(r, names);
    const d = r();
    if (d < 0.3) delete t[name];
    else if (d < 0.5) {
      t[pick(r, ['toString', '__proto__x', 'l9.W', 'renamed'])] = t[name]!;
      delete t[name];
    } else if (d < 0.75) t[name] = { data: t[name]!.data, shape: [t[name]!.data.length] };
    else {
      const data = t[name]!.data.slice();
      if (data.length) data[Math.floor(r() * data.length)] = pick(r, [NaN, Infinity, -Infinity, 3e38]);
      t[name] = { data, shape: t[name]!.shape };
    }
    if (r() < 0.3) meta.param_order = JSON.stringify(Object.keys(t).filter((k) => !k.startsWith('optimizer.')).concat(r() < 0.5 ? ['toString'] : []));
  } else {
    return mutateBytes(r, base);
  }
  return encodeSafetensors(t, meta);
}

/** Byte-level damage: flips, cuts, splices, a rewritten length prefix. */
function mutateBytes(r: R, base: Uint8Array): Uint8Array {
  let b = base.slice();
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const c = r();
    if (c < 0.4 && b.length) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    else if (c < 0.6) b = b.slice(0, Math.floor(r() * b.length));
    else if (c < 0.8) {
      const at = Math.floor(r() * b.length);
      const ins = Uint8Array.from({ length: 1 + Math.floor(r() * 16) }, () => Math.floor(r() * 256));
      b = Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]);
    } else if (b.length >= 8) {
      new DataView(b.buffer, b.byteOffset).setUint32(pick(r, [0, 4, 8]) % (b.length - 3), Math.floor(r() * 2 ** 32), true);
    }
  }
  return b;
}

interface Tally {
  read: number;
  refused: number;
  slowestMs: number;
  maxGrowthMiB: number;
}

/**
 * Runs `fn` on `input`, asserting a return or a clean error, `limitMs` at most, and at most
 * `limitMiB` of new ArrayBuffer memory while it runs (an allocation sized from a file's claim).
 */
function expectClean(what: string, input: Uint8Array | string, fn: () => void, tally: Tally, limitMs = 250, limitMiB = 64): void {
  const mem0 = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  const ms = performance.now() - t0;
  const growth = (process.memoryUsage().arrayBuffers - mem0) / 2 ** 20;
  tally.slowestMs = Math.max(tally.slowestMs, ms);
  tally.maxGrowthMiB = Math.max(tally.maxGrowthMiB, growth);
  const id = `${what} (${input.length} ${typeof input === 'string' ? 'chars' : 'bytes'})`;
  expect(ms, `${id} took ${ms.toFixed(0)} ms`).toBeLessThan(limitMs);
  expect(growth, `${id} allocated ${growth.toFixed(1)} MiB`).toBeLessThan(limitMiB);
  if (err === null) {
    tally.read++;
    return;
  }
  tally.refused++;
  expect(err, `${id}: not an Error: ${String(err)}`).toBeInstanceOf(Error);
  const e = err as Error;
  expect([TypeError, RangeError, SyntaxError, ReferenceError].some((k) => e instanceof k), `${id}: ${e.name}: ${e.message}\n${e.stack}`).toBe(false);
  expect(e.message.length, `${id}: empty message`).toBeGreaterThan(0);
  expect(e.message.length, `${id}: message of ${e.message.length} characters`).toBeLessThan(1500);
  // Printable: no control characters (NUL, ESC, …) reach the terminal.
  expect(/[\u0000-\u001f\u007f-\u009f]/.test(e.message), `${id}: control characters in ${JSON.stringify(e.message.slice(0, 200))}`).toBe(false);
}

/** What `wgflow sample`/`eval` do with a checkpoint before any work: decode, then check every stored field. */
function readAndCheck(bytes: Uint8Array): void {
  const ck = decodeCheckpoint(bytes);
  const method = ck.config.method as Method;
  if (typeof method !== 'string') throw new Error('config names no method');
  if (ck.metadata.train_config !== undefined) checkTrainConfig(ck.trainConfig);
  const typed = checkModelConfig(method, ck.config, ck.state.params);
  if (firstNonFinite(ck.state.params)) throw new Error('non-finite parameters');
  // What the samplers do first with the typed config (CPU only): these are where unchecked
  // configs failed (RangeError sizing a buffer in paramsToFlat, TypeError in logStdSum).
  if (familyOf(method) === 'cfm') paramsToFlat(typed as unknown as CfmConfig, ck.state.params);
  else {
    const c = typed as unknown as FlowRunConfig;
    if (!Number.isFinite(logStdSum(c.standardize))) throw new TypeError('logStdSum is not finite');
    resolveArch(c.arch.method, c.arch.dim, c.arch as unknown as Record<string, unknown>, c.arch.seed);
  }
}

const tally = (): Tally => ({ read: 0, refused: 0, slowestMs: 0, maxGrowthMiB: 0 });
const report = (what: string, t: Tally) => console.log(`${what}: ${t.read} read, ${t.refused} refused cleanly; slowest ${t.slowestMs.toFixed(1)} ms, largest growth ${t.maxGrowthMiB.toFixed(1)} MiB`);

describe('fuzz: readers end in a read or a clean error', () => {
  test('the unmutated fixtures read (so the mutations start from valid files)', () => {
    expect(() => readAndCheck(cfmCheckpoint())).not.toThrow();
    expect(() => readAndCheck(flowCheckpoint())).not.toThrow();
  });

  test('2 000 mutated checkpoints (1 000 flow matching, 1 000 RealNVP)', () => {
    const r = mulberry32(12);
    const bases = [cfmCheckpoint(), flowCheckpoint()];
    const t = tally();
    for (let i = 0; i < 2000; i++) {
      const bytes = mutateCheckpoint(r, bases[i % 2]!);
      expectClean(`checkpoint #${i}`, bytes, () => readAndCheck(bytes), t);
    }
    report('checkpoints', t);
    // Both outcomes occur: the fuzzer reaches past the container into the checks.
    expect(t.refused).toBeGreaterThan(1000);
    expect(t.read).toBeGreaterThan(10);
  });

  test('1 000 mutated .npy files', () => {
    const r = mulberry32(7);
    const base = encodeNpy(Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)), [32, 2]);
    const t = tally();
    for (let i = 0; i < 1000; i++) {
      let bytes = mutateBytes(r, base);
      if (r() < 0.3) {
        // Header edits: shapes and dtypes that claim more than the file holds.
        const text = new TextDecoder('latin1').decode(bytes.subarray(0, 64)).replace(/\(32, 2\)/, pick(r, ['(1000000000, 2)', '(32, 2, 2)', '(-1, 2)', '(32,)', '()', '(6000000002,)', '(32, 2L)'])).replace("'<f4'", pick(r, ["'<f4'", "'<f8'", "'>f4'", "'|b1'", "'<i8'"]));
        bytes = Uint8Array.from([...Array.from(text, (ch) => ch.charCodeAt(0) & 0xff), ...bytes.subarray(64)]);
      }
      expectClean(`npy #${i}`, bytes, () => checkDataMagnitude(parseNpy(bytes), 'fuzz'), t);
    }
    report('npy', t);
    expect(t.refused).toBeGreaterThan(300);
  });

  test('1 000 mutated .csv files', () => {
    const r = mulberry32(3);
    const rows = Array.from({ length: 40 }, (_, i) => `${Math.sin(i).toFixed(4)},${Math.cos(i).toFixed(4)}`);
    const base = `x,y\n${rows.join('\n')}\n`;
    const pieces = ['1e30', 'NaN', '-inf', ',', '\n', '\r\n', '\u0000', '\u001b[31m', '"', 'abc', '1e39', '2.5', ' ', 'x'.repeat(100_000), '1e6', '-1000001', '1,2,3'];
    const t = tally();
    for (let i = 0; i < 1000; i++) {
      let s = base;
      const n = 1 + Math.floor(r() * 4);
      for (let k = 0; k < n; k++) {
        const at = Math.floor(r() * s.length);
        const c = r();
        if (c < 0.5) s = s.slice(0, at) + pick(r, pieces) + s.slice(at);
        else if (c < 0.8) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(r() * 8));
        else s = s.slice(0, at);
      }
      const text = s;
      expectClean(`csv #${i}`, text, () => checkDataMagnitude(parseCsv(text), 'fuzz'), t);
    }
    report('csv', t);
    expect(t.refused).toBeGreaterThan(300);
  });
});
