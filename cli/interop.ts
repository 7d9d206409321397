/**
 * `wgflow export` and `wgflow import`: flow-matching models to and from PyTorch, normalizing flows to it.
 *
 * export writes a CFM checkpoint's vector field as torchcfm's `MLP(dim, time_varying=True, w)` state
 * dict in safetensors (`net.0.weight` [out, in], …; cfm/torch.ts has the layout), which
 * `model.load_state_dict(safetensors.torch.load_file(path))` takes as it is. import reads such a
 * state dict (written by PyTorch) and makes a wgflow checkpoint of it, so `wgflow sample` and
 * `wgflow eval` run it on WebGPU, in Node or in the browser. A flow checkpoint exports in the layout
 * of flows/torch.ts (docs/torch-flows.md); there is no flow import (no PyTorch library writes it).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { resolveConfig, type CfmConfig } from '../cfm/config';
import { fromTorchStateDict, toTorchStateDict, type NamedTensor } from '../cfm/torch';
import { MLP_ACTIVATIONS } from '../cfm/mlp';
import type { MlpActivation } from '../kernels/ode';
import { DATASETS } from '../datasets/toy2d';
import { decodeSafetensors, encodeSafetensors } from '../io/safetensors';
import { nodeFs, writeFileAtomic } from '../io/atomic';
import { UsageError, parseFlags, type FlagSpec } from './args';
import { readCheckpoint, writeCheckpoint, type DecodedCheckpoint } from '../train/checkpoint';
import { CFM_METHODS, FLOW_METHODS, modelWeights, type CfmMethod } from '../train/contract';
import { type CliContext, displayPath } from './util';

/** What a state dict written by `wgflow export` says about itself in its metadata. */
export const TORCH_FORMAT = 'torchcfm.MLP';

export const EXPORT_FLAGS: FlagSpec[] = [
  { name: 'checkpoint', kind: { type: 'string', meta: 'a model.safetensors file' } },
  { name: 'format', kind: { type: 'enum', values: ['torch'] } },
  { name: 'out', kind: { type: 'string', meta: 'a .safetensors file' } },
  { name: 'json', kind: { type: 'bool' } },
];

export const IMPORT_FLAGS: FlagSpec[] = [
  { name: 'torch', kind: { type: 'string', meta: 'a .safetensors state dict' } },
  { name: 'out', kind: { type: 'string', meta: 'a .safetensors file' } },
  { name: 'method', kind: { type: 'enum', values: CFM_METHODS } },
  { name: 'source', kind: { type: 'string', meta: 'a dataset name' } },
  { name: 'target', kind: { type: 'string', meta: 'a dataset name' } },
  { name: 'activation', kind: { type: 'enum', values: MLP_ACTIVATIONS } },
  { name: 'json', kind: { type: 'bool' } },
];

export const EXPORT_HELP = `usage: wgflow export --checkpoint FILE [--format torch] --out FILE.safetensors [--json]

Writes a flow-matching checkpoint's vector field as a PyTorch state dict (safetensors), the layout of
torchcfm's MLP(dim, time_varying=True, w): net.0.weight [w, dim+1], net.0.bias, net.2.*, net.4.*,
net.6.weight [dim, w], net.6.bias (nn.Linear weights are [out, in]; the input is [x, t], t last).
Load it in Python:

  from torchcfm.models import MLP
  from safetensors.torch import load_file
  model = MLP(dim=2, time_varying=True, w=64); model.load_state_dict(load_file("model.torch.safetensors"))

The activation (SELU by default, torchcfm's default too) is in the file's metadata.

A normalizing-flow checkpoint (realnvp, nice, glow, planar, radial, maf) is written in wgflow's
flow layout: layers.{i}.… per layer in the normalizing direction (conditioners as net.{2l}.weight
[out, in] and .bias, masks and permutations as tensors), the layer kinds in the metadata;
docs/torch-flows.md (in the wgflow repository) gives each tensor's meaning and a torch log_prob
for it. This builds the flow on Node's WebGPU.
`;

export const IMPORT_HELP = `usage: wgflow import --torch FILE.safetensors --out CHECKPOINT.safetensors
                     [--method icfm] [--source gaussian] [--target moons] [--activation selu] [--json]

Reads a torchcfm MLP state dict (net.0.weight [w, dim+1], …, as safetensors.torch.save_file writes
it) and writes a wgflow checkpoint, so that \`wgflow sample\` and \`wgflow eval\` run the model on
WebGPU (Node or the browser). --source is the distribution sampling starts from; --target is what
eval compares with; --activation is the one the PyTorch model used (a state dict does not say).
`;

function readTorchFile(file: string): Record<string, NamedTensor> {
  let bytes: Uint8Array;
  try {
    bytes = nodeFs().readFileSync(file);
  } catch (e) {
    throw new UsageError(`--torch: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? `${file}: no such file` : `${file}: ${(e as Error).message}`}`);
  }
  try {
    return decodeSafetensors(bytes).tensors as Record<string, NamedTensor>;
  } catch (e) {
    throw new UsageError(`--torch: ${file}: ${(e as Error).message}`);
  }
}

function requiredFile(v: Record<string, unknown>, flag: string, example: string): string {
  const f = v[flag];
  if (typeof f !== 'string' || f === '') throw new UsageError(`--${flag}: required (${example})`);
  return f;
}

function checkOutFile(ctx: CliContext, file: string): string {
  const out = path.resolve(ctx.cwd, file);
  if (path.extname(out).toLowerCase() !== '.safetensors') throw new UsageError(`--out: expected a file name ending in .safetensors, got ${JSON.stringify(file)}`);
  if (!existsSync(path.dirname(out))) throw new UsageError(`--out: the folder ${path.dirname(out)} does not exist`);
  return out;
}

export async function exportCommand(argv: string[], ctx: CliContext): Promise<number> {
  const p = parseFlags('export', argv, EXPORT_FLAGS);
  if (p.help) {
    ctx.stdout.write(EXPORT_HELP);
    return 0;
  }
  const v = p.values;
  const file = requiredFile(v, 'checkpoint', 'the model.safetensors of a run');
  const out = checkOutFile(ctx, requiredFile(v, 'out', 'where to write the PyTorch state dict, e.g. model.torch.safetensors'));
  let ck;
  try {
    ck = readCheckpoint(file);
  } catch (e) {
    const msg = (e as Error).message;
    // safetensors.torch.save_file marks its files format "pt": point at the command that reads them.
    throw new UsageError(`--checkpoint: ${msg}${/format "pt"/.test(msg) ? ' — this is a PyTorch state dict; `wgflow import --torch FILE --out CHECKPOINT` makes a wgflow checkpoint of it' : ''}`);
  }
  if ((ck.config as { family?: unknown }).family === 'flow') return exportFlow(ctx, file, out, ck, !!v.json);
  const c = ck.config as Partial<CfmConfig>;
  if (!(CFM_METHODS as readonly unknown[]).includes(c.method)) {
    throw new UsageError(`--checkpoint: ${file} holds a ${JSON.stringify(c.method ?? ck.trainConfig.method)} model; --format torch exports flow-matching models (${CFM_METHODS.join(', ')}) and normalizing flows (${FLOW_METHODS.join(', ')})`);
  }
  const cfg = { dim: c.dim!, hidden: c.hidden!, activation: c.activation! };
  let dict;
  try {
    // The weights sampling uses: the moving average when the run kept one.
    dict = toTorchStateDict(cfg, modelWeights(ck.state));
  } catch (e) {
    throw new UsageError(`--checkpoint: ${file}: ${(e as Error).message}`);
  }
  const equal = cfg.hidden.every((h) => h === cfg.hidden[0]);
  const metadata: Record<string, string> = {
    format: TORCH_FORMAT,
    dim: String(cfg.dim),
    hidden: cfg.hidden.join(','),
    activation: cfg.activation,
    ...(ck.state.adam.ema ? { weights: `moving average, decay ${c.ema}` } : {}),
    time_varying: 'true',
    exported_by: `wgflow ${ctx.version}`,
    method: String(c.method),
    step: String(ck.state.step),
  };
  if (equal && cfg.hidden.length === 3) metadata.w = String(cfg.hidden[0]);
  writeFileAtomic(out, encodeSafetensors(dict, metadata));
  const shown = displayPath(ctx.cwd, out);
  const note = equal && cfg.hidden.length === 3 ? `torchcfm MLP(dim=${cfg.dim}, time_varying=True, w=${cfg.hidden[0]}${cfg.activation === 'selu' ? '' : `, activation=${cfg.activation}`})` : `nn.Sequential of Linear layers ${[cfg.dim + 1, ...cfg.hidden, cfg.dim].join(' → ')} with ${cfg.activation} between them`;
  if (v.json) ctx.stdout.write(`${JSON.stringify({ type: 'export', format: 'torch', checkpoint: file, out: shown, keys: Object.keys(dict), ...metadata })}\n`);
  else ctx.stdout.write(`wrote ${shown}: ${note}, ${Object.keys(dict).length} tensors (step ${ck.state.step})\n`);
  return 0;
}

/**
 * A flow checkpoint in the torch layout of flows/torch.ts. The flow is rebuilt on Node's WebGPU (Dawn)
 * to read the buffers its seed fixed (permutations, masks) and the LU layers' assembled weights.
 */
async function exportFlow(ctx: CliContext, file: string, out: string, ck: DecodedCheckpoint, json: boolean): Promise<number> {
  const { prepareDawnEnvironment } = await import('../engine/dawn-env');
  prepareDawnEnvironment();
  const { init } = await import('../engine');
  const { flowToTorch } = await import('../flows/torch');
  await init({ runtime: 'node' });
  let sd;
  try {
    sd = await flowToTorch(ck.config, ck.state.params);
  } catch (e) {
    throw new UsageError(`--checkpoint: ${file}: ${(e as Error).message}`);
  }
  const metadata: Record<string, string> = { ...sd.metadata, exported_by: `wgflow ${ctx.version}`, step: String(ck.state.step) };
  writeFileAtomic(out, encodeSafetensors(sd.tensors, metadata));
  const shown = displayPath(ctx.cwd, out);
  const layers = (JSON.parse(metadata.layers!) as string[]).length;
  if (json) ctx.stdout.write(`${JSON.stringify({ type: 'export', format: 'torch', checkpoint: file, out: shown, keys: Object.keys(sd.tensors), ...metadata })}\n`);
  else ctx.stdout.write(`wrote ${shown}: ${metadata.method} flow, ${metadata.dim}-D, ${layers} layers, ${Object.keys(sd.tensors).length} tensors (step ${ck.state.step}); layout and torch code: docs/torch-flows.md\n`);
  return 0;
}

export async function importCommand(argv: string[], ctx: CliContext): Promise<number> {
  const p = parseFlags('import', argv, IMPORT_FLAGS);
  if (p.help) {
    ctx.stdout.write(IMPORT_HELP);
    return 0;
  }
  const v = p.values;
  const file = requiredFile(v, 'torch', 'a torchcfm MLP state dict saved with safetensors');
  const out = checkOutFile(ctx, requiredFile(v, 'out', 'where to write the wgflow checkpoint, e.g. model.safetensors'));
  const activation = (v.activation as MlpActivation | undefined) ?? 'selu';
  let model;
  try {
    model = fromTorchStateDict(readTorchFile(file), activation);
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError(`--torch: ${file}: ${(e as Error).message}`);
  }
  const { cfg, params } = model;
  if (cfg.dim !== 2) throw new UsageError(`--torch: ${file} is a model of dimension ${cfg.dim}; import takes 2-D models for now (the named datasets are 2-D)`);
  for (const flag of ['source', 'target']) {
    const name = v[flag];
    if (name !== undefined && !Object.hasOwn(DATASETS, name as string)) throw new UsageError(`--${flag}: unknown dataset ${JSON.stringify(name)}; accepted: ${Object.keys(DATASETS).join(', ')}`);
  }
  const method = (v.method as CfmMethod | undefined) ?? 'icfm';
  const trainConfig = {
    method,
    source: method === 'fm' ? null : ((v.source as string | undefined) ?? 'gaussian'),
    target: (v.target as string | undefined) ?? 'moons',
    data_file: null,
    steps: 1,
    batch: 256,
    lr: 1e-3,
    seed: 0,
    options: { hidden: cfg.hidden.join(','), activation },
  };
  let config: CfmConfig;
  try {
    config = resolveConfig(trainConfig);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const count = Object.values(params).reduce((n, t) => n + t.data.length, 0);
  writeCheckpoint(out, {
    config: config as unknown as Record<string, unknown>,
    trainConfig,
    state: { step: 0, params, adam: { t: 0, m: new Float32Array(count), v: new Float32Array(count) }, extra: {}, losses: [] },
    runtime: 'pytorch',
    adapter: `imported from ${path.basename(file)}`,
  });
  const shown = displayPath(ctx.cwd, out);
  if (v.json) ctx.stdout.write(`${JSON.stringify({ type: 'import', torch: file, out: shown, method, source: trainConfig.source, target: trainConfig.target, dim: cfg.dim, hidden: cfg.hidden, activation })}\n`);
  else {
    ctx.stdout.write(
      `wrote ${shown}: ${method} vector field [x, t] → ${cfg.hidden.join(' → ')} → ${cfg.dim} (${activation}) from ${file}\n` +
        `  sample it: wgflow sample --checkpoint ${shown} --runtime browser --out samples.npy\n`,
    );
  }
  return 0;
}
