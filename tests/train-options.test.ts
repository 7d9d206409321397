/**
 * One source of defaults and validation (issue 11 item 2): the command line (flags → cli/config.ts
 * resolveModel) and the library (train/options.ts trainConfig, what `train({...})` uses) resolve to
 * the same TrainConfig, and the model families to the same full configuration, for every method,
 * with defaults and with options given. Also: the bounds the flags enforce are the library's, both
 * families reject unknown options, and the Sinkhorn defaults are the solver's. No GPU needed.
 */
import { describe, expect, test } from 'vitest';
import { parseFlags } from '../cli/args';
import { resolveModel } from '../cli/config';
import { MODEL_FLAGS } from '../cli/flags';
import { SINKHORN_DEFAULTS } from '../cfm/ot';
import { ALL_METHODS, MAX_BATCH, MIN_BATCH, TRAIN_DEFAULTS, trainConfig } from '../train/options';
import { getMethod } from '../train/registry';
import type { Method, TrainConfig } from '../train/contract';

const cli = (argv: string[], steps = 100): TrainConfig => resolveModel(parseFlags('train', argv, MODEL_FLAGS), steps).config;
const resolved = (cfg: TrainConfig) => getMethod(cfg.method).resolveConfig!(cfg);

describe('the CLI and the library resolve the same configuration', () => {
  test('with every default', () => {
    expect(cli([])).toEqual(trainConfig({ steps: 100 }));
    expect(cli([]).source).toBe('8gaussians');
    expect(resolved(cli([]))).toEqual(resolved(trainConfig({ steps: 100 })));
  });

  for (const method of ALL_METHODS) {
    test(method, () => {
      const a = cli(['--method', method, '--batch', '64', '--seed', '3', '--lr', '0.002'], 7);
      const b = trainConfig({ method, batch: 64, seed: 3, lr: 0.002, steps: 7 });
      expect(a).toEqual(b);
      expect(resolved(a)).toEqual(resolved(b));
    });
  }

  test('with options (strings from flags, numbers from code: one resolution)', () => {
    const a = cli(['--method', 'otcfm', '--source', 'gaussian', '--ot', 'sinkhorn', '--sigma', '0.2', '--option', 'hidden=32,32'], 5);
    const b = trainConfig({ method: 'otcfm', source: 'gaussian', steps: 5, options: { ot: 'sinkhorn', sigma: 0.2, hidden: '32,32' } });
    expect(resolved(a)).toEqual(resolved(b));
    expect(resolved(a)).toMatchObject({ sinkhornTol: SINKHORN_DEFAULTS.tol, sinkhornEpsScaling: SINKHORN_DEFAULTS.epsScaling, reg: SINKHORN_DEFAULTS.reg, sigma: 0.2, hidden: [32, 32] });
    // --fusion is the trainers' option `fusion` (engine/config.ts FUSION_LEVELS), as the library passes it.
    expect(cli(['--fusion', 'mlp'], 5)).toEqual(trainConfig({ steps: 5, options: { fusion: 'mlp' } }));
    expect(() => cli(['--fusion', 'kernel'])).toThrow(/--fusion: .*ops, layer, mlp, step/);
    const f = cli(['--method', 'maf', '--option', 'layers=3', '--option', 'schedule=constant'], 5);
    expect(resolved(f)).toEqual(resolved(trainConfig({ method: 'maf', steps: 5, options: { layers: 3, schedule: 'constant' } })));
  });
});

describe('the same bounds and checks', () => {
  test('the flags take their bounds from train/options.ts', () => {
    const kind = (name: string) => MODEL_FLAGS.find((f) => f.name === name)!.kind as { min?: number; max?: number };
    expect(kind('batch')).toMatchObject({ min: MIN_BATCH, max: MAX_BATCH });
    expect(kind('steps')).toMatchObject({ min: 1 });
    expect(() => cli(['--batch', String(MAX_BATCH + 1)])).toThrow(/--batch/);
    expect(() => trainConfig({ steps: 1, batch: MAX_BATCH + 1 })).toThrow(/batch = 65537 is not accepted; accepted: an integer from 1 to 65536/);
  });

  test('bad values name the field and what is accepted', () => {
    expect(() => trainConfig({ steps: 0 })).toThrow(/steps = 0 is not accepted; accepted: a positive integer/);
    expect(() => trainConfig({ steps: 1, lr: -1 })).toThrow(/lr = -1 .*positive/);
    expect(() => trainConfig({ steps: 1, seed: 1.5 })).toThrow(/seed = 1\.5/);
    expect(() => trainConfig({ steps: 1, method: 'ddpm' as Method })).toThrow(/method = "ddpm" is not accepted; accepted: otcfm, icfm/);
    expect(() => trainConfig({ steps: 1, target: 'nope' })).toThrow(/target: unknown dataset "nope"; accepted: .*moons/);
    expect(() => trainConfig({ steps: 1, method: 'realnvp', source: 'moons' })).toThrow(/source: realnvp starts from N\(0, I\)/);
    expect(() => trainConfig({ steps: 1, stpes: 3 } as never)).toThrow(/unknown training field "stpes"/);
  });

  test('both families reject an unknown option, naming the accepted ones', () => {
    expect(() => resolved(trainConfig({ steps: 1, options: { sigmaa: 1 } }))).toThrow(/unknown CFM option "sigmaa"; accepted: sigma, /);
    expect(() => resolved(trainConfig({ steps: 1, method: 'realnvp', options: { layer: 2 } }))).toThrow(/unknown flow option "layer"; accepted: .*layers/);
  });

  test('defaults are the documented ones', () => {
    expect(TRAIN_DEFAULTS).toMatchObject({ method: 'otcfm', source: '8gaussians', batch: 256, lr: 1e-3, seed: 0 });
    expect(trainConfig({ steps: 1, method: 'realnvp' })).toMatchObject({ source: null, target: 'ffjord-moons' });
    expect(trainConfig({ steps: 1, method: 'fm' })).toMatchObject({ source: null, target: 'moons' });
  });
});
