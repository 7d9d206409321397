/**
 * wgflow checkpoints: a safetensors file (io/safetensors.ts) holding
 *
 *   tensors   every model parameter under its own name (F32, its shape), plus the Adam moments
 *             "optimizer.adam.m" and "optimizer.adam.v" (flat, in the trainer's parameter order),
 *             so any safetensors reader gets the model as a plain state dict;
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
 */
import { decodeSafetensors, encodeSafetensors, type Tensor } from '../io/safetensors';
import { nodeFs, writeFileAtomic } from '../io/atomic';
import type { TrainState } from './job';

export const CHECKPOINT_FORMAT = 'wgflow.checkpoint/1';
export const ADAM_M = 'optimizer.adam.m';
export const ADAM_V = 'optimizer.adam.v';

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

export function encodeCheckpoint(c: CheckpointContents): Uint8Array {
  const { state } = c;
  const tensors: Record<string, Tensor> = {};
  const order = Object.keys(state.params);
  for (const name of order) {
    if (name === ADAM_M || name === ADAM_V) throw new Error(`checkpoint: parameter name "${name}" is reserved for the optimizer state`);
    const p = state.params[name]!;
    tensors[name] = { data: p.data, shape: [...p.shape] };
  }
  tensors[ADAM_M] = { data: state.adam.m, shape: [state.adam.m.length] };
  tensors[ADAM_V] = { data: state.adam.v, shape: [state.adam.v.length] };
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
    throw new Error(`metadata "${key}" is not valid JSON (${(e as Error).message})`);
  }
}

function parseCount(metadata: Record<string, string>, key: string): number {
  const raw = metadata[key];
  if (raw === undefined) throw new Error(`metadata "${key}" is missing`);
  const v = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(v)) throw new Error(`metadata "${key}" must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return v;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function decodeCheckpoint(bytes: Uint8Array): DecodedCheckpoint {
  const { tensors, metadata } = decodeSafetensors(bytes);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new Error(
      metadata.format === undefined
        ? `not a wgflow checkpoint: __metadata__ has no "format" (expected "${CHECKPOINT_FORMAT}")`
        : `unsupported checkpoint format ${JSON.stringify(metadata.format)} (this wgflow reads "${CHECKPOINT_FORMAT}")`,
    );
  }
  const config = parseJson(metadata, 'config');
  if (!isObject(config)) throw new Error('metadata "config" must be a JSON object');
  const trainConfig = parseJson(metadata, 'train_config', config);
  if (!isObject(trainConfig)) throw new Error('metadata "train_config" must be a JSON object');
  const losses = parseJson(metadata, 'losses', []);
  if (!Array.isArray(losses) || losses.some((l) => !isObject(l) || typeof l.step !== 'number' || (l.loss !== null && typeof l.loss !== 'number'))) {
    throw new Error('metadata "losses" must be a JSON array of {step, loss}');
  }
  const extra = parseJson(metadata, 'extra', {});
  if (!isObject(extra)) throw new Error('metadata "extra" must be a JSON object');
  const m = tensors[ADAM_M], v = tensors[ADAM_V];
  if (!m || !v) throw new Error(`tensors "${ADAM_M}" and "${ADAM_V}" (the optimizer state) are missing`);
  const names = Object.keys(tensors).filter((k) => k !== ADAM_M && k !== ADAM_V);
  let order = names.sort();
  if (metadata.param_order !== undefined) {
    const po = parseJson(metadata, 'param_order');
    if (!Array.isArray(po) || po.some((n) => typeof n !== 'string')) throw new Error('metadata "param_order" must be a JSON array of names');
    const missing = (po as string[]).filter((n) => !(n in tensors));
    const unlisted = names.filter((n) => !(po as string[]).includes(n));
    if (missing.length || unlisted.length) {
      throw new Error(`metadata "param_order" does not match the tensors (${missing.length ? `missing: ${missing.join(', ')}` : ''}${missing.length && unlisted.length ? '; ' : ''}${unlisted.length ? `not listed: ${unlisted.join(', ')}` : ''})`);
    }
    order = po as string[];
  }
  const params: TrainState['params'] = {};
  for (const n of order) params[n] = { data: tensors[n]!.data, shape: tensors[n]!.shape };
  const state: TrainState = {
    step: parseCount(metadata, 'step'),
    params,
    adam: { t: parseCount(metadata, 'adam_t'), m: m.data, v: v.data },
    extra,
    losses: (losses as { step: number; loss: number | null }[]).map((l) => ({ step: l.step, loss: l.loss ?? NaN })),
  };
  return { config, trainConfig, state, runtime: metadata.runtime, adapter: metadata.adapter, metadata };
}

/** Writes the checkpoint atomically (a reader sees the old file or the new one, never a torn one). Node only. */
export function writeCheckpoint(path: string, c: CheckpointContents): void {
  writeFileAtomic(path, encodeCheckpoint(c));
}

/** Reads a checkpoint; errors name the file. Node only. */
export function readCheckpoint(path: string): DecodedCheckpoint {
  let bytes: Uint8Array;
  try {
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
