/**
 * The files `wgflow train` writes into --out, and the one way they are written.
 *
 * Why a fixed list: the pictures are made where the training ran, which for the browser runtime is
 * a page that reports over HTTP. Whatever comes back from there is data, never a path: a name that
 * is not one of ours is refused, and every write is confined to --out (the resolved target must be
 * a direct child of the resolved --out, and an existing entry there that is a symbolic link or not
 * a regular file is refused rather than followed or replaced).
 */
import { lstatSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../io/atomic';

/** Pictures a training run may produce (cli/pictures.ts renderPictures), in report order. */
export const PICTURE_FILES = ['samples.png', 'trajectories.png', 'density.png', 'loss.png'] as const;

/** Every file `wgflow train` may write into --out. */
export const RUN_FILES = ['metrics.json', 'model.safetensors', ...PICTURE_FILES, 'report.html'] as const;

export type RunFile = (typeof RUN_FILES)[number];

const RUN_FILE_SET: ReadonlySet<string> = new Set(RUN_FILES);
const PICTURE_SET: ReadonlySet<string> = new Set(PICTURE_FILES);

/** A short, printable rendering of an untrusted name for error messages. */
function shown(name: string): string {
  const cut = name.length > 80 ? `${name.slice(0, 80)}…` : name;
  return JSON.stringify(cut).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The absolute path of `name` inside `outDir`, or an Error when `name` is not one of RUN_FILES or
 * would land anywhere but directly inside `outDir` (links in `outDir` itself are resolved once, so a
 * user's --out that is a link still works; links at the entry are refused).
 */
export function outputPath(outDir: string, name: string): string {
  if (!RUN_FILE_SET.has(name)) throw new Error(`refusing to write ${shown(name)}: not one of the run's files (${RUN_FILES.join(', ')})`);
  const dir = realpathSync(path.resolve(outDir));
  const target = path.resolve(dir, name);
  if (path.dirname(target) !== dir) throw new Error(`refusing to write ${shown(name)}: it resolves outside ${dir}`);
  let st;
  try {
    st = lstatSync(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return target;
    throw e;
  }
  if (st.isSymbolicLink()) throw new Error(`refusing to write ${target}: it is a symbolic link (remove it; wgflow never writes through links)`);
  if (!st.isFile()) throw new Error(`refusing to write ${target}: it exists and is not a regular file`);
  return target;
}

/** Writes one of the run's files atomically, confined to `outDir` (see outputPath). */
export function writeOutput(outDir: string, name: RunFile, bytes: Uint8Array | string): void {
  writeFileAtomic(outputPath(outDir, name), bytes);
}

/**
 * Checks a pictures map that came from the training task (possibly from a page) before anything is
 * written: every key one of PICTURE_FILES, every value bytes. Returns it typed; throws naming the
 * first offender otherwise.
 */
export function checkPictures(pictures: unknown): Partial<Record<(typeof PICTURE_FILES)[number], Uint8Array>> {
  if (typeof pictures !== 'object' || pictures === null || Array.isArray(pictures)) throw new Error('the run reported no pictures object');
  for (const [name, bytes] of Object.entries(pictures)) {
    if (!PICTURE_SET.has(name)) throw new Error(`the run reported a picture named ${shown(name)}; accepted names: ${PICTURE_FILES.join(', ')}`);
    if (!(bytes instanceof Uint8Array)) throw new Error(`the run reported picture ${name} as ${typeof bytes}, not bytes`);
  }
  return pictures as Partial<Record<(typeof PICTURE_FILES)[number], Uint8Array>>;
}
