/**
 * Flag parsing for the wgflow commands: `--name value`, `--name=value`, boolean switches, with
 * messages that name the bad flag or value and say what is accepted (exit status 2, SPEC §4).
 */

import { quote } from '../io/quote';

/** A usage or input error: exit status 2, message printed as is. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type FlagKind =
  | { type: 'bool' }
  | { type: 'string'; meta?: string }
  | { type: 'int'; min: number; max?: number }
  | { type: 'number'; positive?: boolean; min?: number; max?: number }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'keyvalue' };

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  /** May be given several times (values collected in order). */
  repeatable?: boolean;
}

export interface Parsed {
  values: Record<string, unknown>;
  /** Flags given on the command line (not defaults). */
  given: Set<string>;
  help: boolean;
}

/** Optimal-string-alignment distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** ` (did you mean "x"?)` when one candidate is close to `got`, else ''. */
export function suggest(got: string, candidates: readonly string[]): string {
  let best = '', bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(got.toLowerCase(), c.toLowerCase());
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return bestD <= Math.max(1, Math.min(3, Math.floor(got.length / 3))) ? ` (did you mean "${best}"?)` : '';
}

export function describeKind(kind: FlagKind): string {
  switch (kind.type) {
    case 'bool':
      return 'no value';
    case 'string':
      return kind.meta ?? 'a value';
    case 'int':
      return kind.min === 1 ? 'a positive integer' : kind.min === 0 ? 'a non-negative integer' : `an integer ≥ ${kind.min}`;
    case 'number':
      return kind.positive ? 'a positive number' : kind.min !== undefined ? `a number ≥ ${kind.min}` : 'a number';
    case 'enum':
      return `one of ${kind.values.join(', ')}`;
    case 'keyvalue':
      return 'KEY=VALUE';
  }
}

const INT_RE = /^\+?(\d+|\d+(\.\d+)?e\+?\d+)$/i;
// Unambiguous, so a long run of digits cannot backtrack quadratically (see datasets/files.ts).
const NUM_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

/**
 * Converts the text `raw` of flag `--name` to its value, or throws a UsageError naming both.
 * `label` replaces "--name" in messages (checkValue uses it for fields of stored configurations).
 */
export function convert(name: string, kind: FlagKind, raw: string, label = `--${name}`, shown = quote(raw, 60)): unknown {
  const bad = (extra = '') => new UsageError(`${label}: expected ${describeKind(kind)}, got ${shown}${extra}`);
  switch (kind.type) {
    case 'bool':
      throw new UsageError(`${label}: takes no value, got ${quote(raw, 60)}`);
    case 'string':
      if (raw === '') throw bad();
      return raw;
    case 'int': {
      const v = Number(raw);
      if (!INT_RE.test(raw.trim()) || !Number.isSafeInteger(v)) throw bad();
      if (v < kind.min || (kind.max !== undefined && v > kind.max)) throw bad(kind.max !== undefined ? ` (accepted: ${kind.min} to ${kind.max})` : '');
      return v;
    }
    case 'number': {
      const v = Number(raw);
      if (!NUM_RE.test(raw.trim()) || !Number.isFinite(v)) throw bad();
      if ((kind.positive && !(v > 0)) || (kind.min !== undefined && v < kind.min) || (kind.max !== undefined && v > kind.max)) {
        throw bad(kind.max !== undefined ? ` (accepted: ${kind.min ?? (kind.positive ? '> 0' : '')} to ${kind.max})` : '');
      }
      return v;
    }
    case 'enum':
      if (!kind.values.includes(raw)) throw new UsageError(`${label}: expected one of ${kind.values.join(', ')}; got ${quote(raw, 60)}${raw.length <= 100 ? suggest(raw, kind.values) : ''}`);
      return raw;
    case 'keyvalue': {
      const eq = raw.indexOf('=');
      if (eq <= 0) throw new UsageError(`${label}: expected KEY=VALUE, got ${quote(raw, 60)}`);
      const key = raw.slice(0, eq), text = raw.slice(eq + 1);
      let value: unknown = text;
      if (/^(true|false|null)$/.test(text) || NUM_RE.test(text) || /^[[{"]/.test(text)) {
        try {
          value = JSON.parse(text);
        } catch {
          throw new UsageError(`${label}: the value of ${quote(key, 40)} is not valid JSON: ${quote(text, 60)}`);
        }
      }
      return [key, value];
    }
  }
}

/**
 * Checks a value that was stored rather than typed (a checkpoint's configuration) by the rules of
 * the flag `kind`, so a stored batch, lr or seed is held to exactly what --batch, --lr or --seed
 * accept. Returns the value; throws a UsageError "LABEL: expected …, got …".
 */
export function checkValue(label: string, kind: FlagKind, value: unknown): unknown {
  const bad = () => new UsageError(`${label}: expected ${describeKind(kind)}, got ${quote(value, 60)}`);
  switch (kind.type) {
    case 'int':
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw bad();
      // String() of a finite number is text that the flag parser reads back as the same number.
      return convert(label, kind, String(value), label, String(value));
    case 'string':
    case 'enum':
      if (typeof value !== 'string') throw bad();
      return convert(label, kind, value, label);
    case 'bool':
      if (typeof value !== 'boolean') throw bad();
      return value;
    case 'keyvalue':
      throw new Error(`checkValue: ${label}: a KEY=VALUE flag has no stored form`);
  }
}

/**
 * Parses `argv` against `specs` for `wgflow <command>`. Unknown flags, positional arguments,
 * missing values and bad values throw UsageError. `-h`/`--help` anywhere sets `help`.
 */
export function parseFlags(command: string, argv: readonly string[], specs: readonly FlagSpec[]): Parsed {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: Record<string, unknown> = {};
  const given = new Set<string>();
  let help = false;
  const accepted = () => specs.map((s) => `--${s.name}`).join(', ');
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '-h' || tok === '--help') {
      help = true;
      continue;
    }
    if (!tok.startsWith('--') || tok === '--') {
      throw new UsageError(
        tok.startsWith('-') && tok !== '-'
          ? `unknown flag ${quote(tok, 60)} for wgflow ${command} (flags are spelled --name); accepted: ${accepted()}, --help`
          : `wgflow ${command}: unexpected argument ${quote(tok, 60)} (all options are --flags; see wgflow ${command} --help)`,
      );
    }
    const eq = tok.indexOf('=');
    const name = tok.slice(2, eq >= 0 ? eq : undefined);
    const spec = byName.get(name);
    if (!spec) {
      const shown = /^[\w-]{1,60}$/.test(name) ? `--${name}` : quote(`--${name}`, 60);
      throw new UsageError(`unknown flag ${shown} for wgflow ${command}${name.length <= 100 ? suggest(name, specs.map((s) => s.name)).replace('"', '"--') : ''}; accepted: ${accepted()}, --help`);
    }
    let raw: string | undefined;
    if (eq >= 0) raw = tok.slice(eq + 1);
    else if (spec.kind.type !== 'bool') {
      const next = argv[i + 1];
      // A following token that looks like a flag is not taken as a value, unless it is a number
      // (so `--lr -1` reports the bad number rather than a missing value).
      if (next === undefined || (next.startsWith('-') && !NUM_RE.test(next))) {
        throw new UsageError(`--${name}: missing value (expected ${describeKind(spec.kind)})`);
      }
      raw = next;
      i++;
    }
    const value = spec.kind.type === 'bool' ? (raw === undefined ? true : convert(name, spec.kind, raw)) : convert(name, spec.kind, raw!);
    if (spec.repeatable) values[name] = [...((values[name] as unknown[]) ?? []), value];
    else values[name] = value;
    given.add(name);
  }
  return { values, given, help };
}
