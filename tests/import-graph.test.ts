/**
 * The import graph points down (issue 11 item 1): faces (cli/, browser/, page/, api/) → the
 * training driver (train/) → the model families (cfm/, flows/) → the engine (engine/, kernels/),
 * with datasets/ and io/ beside the engine. Read statically from the sources (every `import … from`,
 * `export … from` and `import('…')`, type-only ones included), so a stray import fails here before it
 * turns into a bundling surprise (a page that pulls in Node's fs, a library that needs the CLI).
 *
 * The families implement the training contract, so they may import its leaf files (contract,
 * options, methods: types, method lists, the shared defaults) but never the driver or the registry.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';

const ROOT = path.resolve(__dirname, '..');
const FACES = ['cli', 'browser', 'page', 'api', 'examples'];
const TRAIN_LEAVES = ['train/contract.ts', 'train/options.ts', 'train/methods.ts'];

/** Rules: for files under `from`, an import resolving under one of `banned` is a violation (unless `allowed`). */
const RULES: { from: string[]; banned: string[]; allowed?: string[]; why: string }[] = [
  { from: ['engine', 'kernels', 'datasets', 'io', 'cfm', 'flows', 'train'], banned: FACES, why: 'below the faces' },
  { from: ['engine', 'kernels', 'datasets', 'io'], banned: ['cfm', 'flows', 'train'], why: 'the engine knows no model family or driver' },
  { from: ['cfm', 'flows'], banned: ['train'], allowed: TRAIN_LEAVES, why: 'a family imports only the contract of the training layer' },
  { from: TRAIN_LEAVES, banned: ['cfm', 'flows', 'train/driver.ts', 'train/registry.ts'], why: 'the contract is the bottom of the training layer' },
];

/** Relative import specifiers of a TypeScript source. */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)(['"])(\.{1,2}\/[^'"]+)\1/gm;
  for (let m = re.exec(source); m; m = re.exec(source)) out.push(m[2]!);
  return out;
}

function walk(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const p = path.join(dir, e);
    if (e === 'node_modules' || e === 'dist') return [];
    return statSync(p).isDirectory() ? walk(p) : /\.(ts|mts|mjs|js)$/.test(e) ? [p] : [];
  });
}

const under = (rel: string, prefix: string) => (prefix.endsWith('.ts') ? rel === prefix : rel === prefix || rel.startsWith(`${prefix}/`));

/** Violations in `files` (repo-relative path → source). */
export function violations(files: Map<string, string>): string[] {
  const found: string[] = [];
  for (const [file, source] of files) {
    for (const spec of importsOf(source)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.(js|mjs)$/, '');
      const targetFile = /\.(ts|mts|mjs)$/.test(target) ? target : `${target}.ts`;
      for (const rule of RULES) {
        if (!rule.from.some((f) => under(file, f))) continue;
        const hit = rule.banned.find((b) => under(target, b) || under(targetFile, b));
        if (hit && !(rule.allowed ?? []).some((a) => under(targetFile, a))) found.push(`${file} imports ${spec} (${hit}): ${rule.why}`);
      }
    }
  }
  return found;
}

function sources(): Map<string, string> {
  const files = new Map<string, string>();
  for (const dir of ['engine', 'kernels', 'datasets', 'io', 'cfm', 'flows', 'train']) {
    for (const abs of walk(path.join(ROOT, dir))) files.set(path.relative(ROOT, abs).split(path.sep).join('/'), readFileSync(abs, 'utf8'));
  }
  return files;
}

describe('import graph', () => {
  test('no arrow from the engine, the model families or the training layer up to a face', () => {
    const files = sources();
    expect(files.size).toBeGreaterThan(50);
    expect([...files.keys()]).toContain('train/driver.ts');
    expect(violations(files)).toEqual([]);
  });

  test('the checker sees each kind of import (it can fail)', () => {
    const bad = new Map([
      ['cfm/x.ts', "import type { A } from '../cli/job';"],
      ['flows/y.ts', "export { B } from '../train/driver';"],
      ['engine/z.ts', "const m = await import('../browser/run-in-page');"],
      ['train/contract.ts', "import { C } from '../cfm/train';"],
      ['train/driver.ts', "import {\n  D,\n} from '../cli/tasks';"],
      ['kernels/w.ts', "import '../train/options';"],
    ]);
    expect(violations(bad)).toHaveLength(6);
    const good = new Map([
      ['cfm/x.ts', "import type { A } from '../train/contract';\nimport { E } from '../engine';"],
      ['train/registry.ts', "import { F } from '../cfm/train';"],
      ['cli/main.ts', "import { G } from '../train/driver';"],
    ]);
    expect(violations(good)).toEqual([]);
  });
});
