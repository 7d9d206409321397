/**
 * wgflow checkpoints: a safetensors file (io/safetensors.ts) holding
 *
 *   tensors   every model parameter under its own name (F32, its shape), plus the Adam moments
 *             "optimizer.adam.m" and "optimizer.adam.v" (flat, in the trainer's parameter order),
 *             so any safetensors reader gets the model as a plain state dict; and, when the run
 *             keeps a moving average of the weights (option ema), "optimizer.ema" (flat, the same
 *             order): the weights sampling uses (train/contract.ts modelWeights);
 *   metadata  (strings, as the format requires)
 *             format        "wgflow.checkpoint/1"
 *             config        JSON: the configuration the trainer resolved (what sampling needs)
 *             train_config  JSON: the command line's TrainConfig (for --resume), data as its file name
 *             step          decimal: steps trained
 *             adam_t        decimal: Adam's step counter
 *             losses        JSON: [{step, loss}, ...] (non-finite losses as null)
 *             extra         JSON: trainer-specific counters
 *             param_order   JSON: parameter names in the trainer's order
 *             runtime, adapter  where it was trained (informational)
 *
 * Equal states give equal bytes (the encoder sorts names; no timestamps). Written atomically.
 * States with a non-finite parameter are refused (NonFiniteCheckpointError), so a diverged run can
 * never overwrite a good checkpoint.
 */
import { decodeSafetensors, encodeSafetensors, type Tensor } from '../io/safetensors';
import { nodeFs, writeFileAtomic } from '../io/atomic';
import { quote } from '../io/quote';
import type { TrainState } from '../train/contract';

export const CHECKPOINT_FORMAT = 'wgflow.checkpoint/1';
export const ADAM_M = 'optimizer.adam.m';
export const ADAM_V = 'optimizer.adam.v';
export const EMA = 'optimizer.ema';
const RESERVED = [ADAM_M, ADAM_V, EMA];

export interface CheckpointContents {
  config: Record<string, unknown>;
  trainConfig: Record<string, unknown>;
  state: TrainState;
  runtime?: string;
  adapter?: string;
}

export interface DecodedCheckpoint extends CheckpointContents {
  metadata: Record<string, string>;
}

/**
 * Thrown instead of encoding a state whose parameters hold NaN or ±Inf: such a model is useless and
 * must never replace the last good checkpoint (the trainers' guard stops the run before; this is
 * the backstop for any path that would get here anyway).
 */
export class NonFiniteCheckpointError extends Error {
  constructor(readonly parameter: string, readonly index: number, readonly value: number, readonly step: number) {
    super(`checkpoint at step ${step} refused: parameter "${parameter}" holds ${value} at index ${index}; the file on disk is left as it was`);
    this.name = 'NonFiniteCheckpointError';
  }
}

export function encodeCheckpoint(c: CheckpointContents): Uint8Array {
  const { state } = c;
  const tensors: Record<string, Tensor> = {};
  const order = Object.keys(state.params);
  for (const name of order) {
    if (RESERVED.includes(name)) throw new Error(`checkpoint: parameter name "${name}" is reserved for the optimizer state`);
    const p = state.params[name]!;
    const bad = p.data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new NonFiniteCheckpointError(name, bad, p.data[bad]!, state.step);
    tensors[name] = { data: p.data, shape: [...p.shape] };
  }
  tensors[ADAM_M] = { data: state.adam.m, shape: [state.adam.m.length] };
  tensors[ADAM_V] = { data: state.adam.v, shape: [state.adam.v.length] };
  if (state.adam.ema) {
    const bad = state.adam.ema.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new NonFiniteCheckpointError(EMA, bad, state.adam.ema[bad]!, state.step);
    tensors[EMA] = { data: state.adam.ema, shape: [state.adam.ema.length] };
  }
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(c.config),
    train_config: JSON.stringify(c.trainConfig),
    step: String(state.step),
    adam_t: String(state.adam.t),
    losses: JSON.stringify(state.losses.map((l) => ({ step: l.step, loss: Number.isFinite(l.loss) ? l.loss : null }))),
    extra: JSON.stringify(state.extra ?? {}),
    param_order: JSON.stringify(order),
  };
  if (c.runtime) metadata.runtime = c.runtime;
  if (c.adapter) metadata.adapter = c.adapter;
  return encodeSafetensors(tensors, metadata);
}

function parseJson(metadata: Record<string, string>, key: string, fallback?: unknown): unknown {
  const raw = metadata[key];
  if (raw === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`metadata "${key}" is missing`);
  }
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new Error(`metadata "${key}" is not valid JSON (${quote((e as Error).message, 120)})`);
  }
}

function parseCount(metadata: Record<string, string>, key: string): number {
  const raw = metadata[key];
  if (raw === undefined) throw new Error(`metadata "${key}" is missing`);
  const v = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(v)) throw new Error(`metadata "${key}" must be a non-negative integer, got ${quote(raw, 40)}`);
  return v;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function decodeCheckpoint(bytes: Uint8Array): DecodedCheckpoint {
  const { tensors, metadata } = decodeSafetensors(bytes);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      metadata.format === undefined
        ? `not a wgflow checkpoint: __metadata__ has no "format" (expected "${CHECKPOINT_FORMAT}")`
        : `unsupported checkpoint format ${quote(metadata.format, 40)} (this wgflow reads "${CHECKPOINT_FORMAT}")`,
    );
  }
  const config = parseJson(metadata, 'config');
  if (!isObject(config)) throw new Error('metadata "config" must be a JSON object');
  const trainConfig = parseJson(metadata, 'train_config', config);
  if (!isObject(trainConfig)) throw new Error('metadata "train_config" must be a JSON object');
  const losses = parseJson(metadata, 'losses', []);
  if (!Array.isArray(losses) || losses.some((l) => !isObject(l) || !Number.isSafeInteger(l.step) || (l.step as number) < 0 || (l.loss !== null && typeof l.loss !== 'number'))) {
    throw new Error('metadata "losses" must be a JSON array of {step, loss} (step a non-negative integer, loss a number or null)');
  }
  const extra = parseJson(metadata, 'extra', {});
  if (!isObject(extra)) throw new Error('metadata "extra" must be a JSON object');
  const m = tensors[ADAM_M], v = tensors[ADAM_V];
  if (!m || !v) throw new Error(`tensors "${ADAM_M}" and "${ADAM_V}" (the optimizer state) are missing`);
  const names = Object.keys(tensors).filter((k) => !RESERVED.includes(k));
  let order = names.sort();
  if (metadata.param_order !== undefined) {
    const po = parseJson(metadata, 'param_order');
    if (!Array.isArray(po) || po.some((n) => typeof n !== 'string')) throw new Error('metadata "param_order" must be a JSON array of names');
    // Own properties only: a listed name like "toString" or "__proto__" must not find Object's.
    const listed = new Set(po as string[]);
    const list = (xs: string[]) => `${xs.slice(0, 5).map((x) => quote(x, 40)).join(', ')}${xs.length > 5 ? `, … (${xs.length} in all)` : ''}`;
    if (listed.size !== po.length) throw new Error('metadata "param_order" lists a name twice');
    const missing = (po as string[]).filter((n) => !Object.hasOwn(tensors, n) || RESERVED.includes(n));
    const unlisted = names.filter((n) => !listed.has(n));
    if (missing.length || unlisted.length) {
      throw new Error(`metadata "param_order" does not match the tensors (${missing.length ? `missing: ${list(missing)}` : ''}${missing.length && unlisted.length ? '; ' : ''}${unlisted.length ? `not listed: ${list(unlisted)}` : ''})`);
    }
    order = po as string[];
  }
  // A null-prototype map, for the same reason: parameter names are data.
  const params: TrainState['params'] = Object.create(null);
  for (const n of order) params[n] = { data: tensors[n]!.data, shape: tensors[n]!.shape };
  const state: TrainState = {
    step: parseCount(metadata, 'step'),
    params,
    adam: { t: parseCount(metadata, 'adam_t'), m: m.data, v: v.data, ...(tensors[EMA] ? { ema: tensors[EMA].data } : {}) },
    extra,
    losses: (losses as { step: number; loss: number | null }[]).map((l) => ({ step: l.step, loss: l.loss ?? NaN })),
  };
  return { config, trainConfig, state, runtime: metadata.runtime, adapter: metadata.adapter, metadata };
}

/** Writes the checkpoint atomically (a reader sees the old file or the new one, never a torn one). Node only. */
export function writeCheckpoint(path: string, c: CheckpointContents): void {
  writeFileAtomic(path, encodeCheckpoint(c));
}

/** Largest checkpoint read (bytes): what one Node read can hold. */
export const CHECKPOINT_MAX_BYTES = 2 ** 31 - 1;

/**
 * Reads a checkpoint; errors name the file. Only a regular file is read (a FIFO or a device would
 * block the read or never end). Node only.
 */
export function readCheckpoint(path: string): DecodedCheckpoint {
  let bytes: Uint8Array;
  try {
    const st = nodeFs().statSync(path);
    if (!st.isFile()) throw new Error(`not a regular file (${st.isDirectory() ? 'a directory' : 'a device, FIFO or socket'})`);
    if (st.size > CHECKPOINT_MAX_BYTES) throw new Error(`${st.size} bytes is more than the ${CHECKPOINT_MAX_BYTES} accepted`);
    bytes = nodeFs().readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${path}: no such file` : `${path}: ${(e as Error).message}`);
  }
  try {
    return decodeCheckpoint(bytes);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}
