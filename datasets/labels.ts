/**
 * Class labels for conditional generation (issue 13 item 3): the label column of a user data file
 * (`--label-column N`) split off the data, and the checks every label set passes (the CLI's and the
 * library's alike), with errors naming the row and the value and saying what is accepted.
 *
 * Labels are integers 0..K−1 with K = the largest label + 1 (at most MAX_CLASSES): a label set of a
 * data file is stored as Int32Array next to the float32 data matrix; the built-in sets that have
 * labels say what a label means (datasets/toy2d.ts Labelling). Browser-safe (no file system here).
 */
import type { DataMatrix } from './files';

/** Most classes a label set may have: a one-hot context of K columns widens the network's first layer. */
export const MAX_CLASSES = 1024;

/** Labels of n rows with their class count. */
export interface LabelSet {
  labels: Int32Array | Uint8Array;
  numClasses: number;
}

/**
 * Checks a label set against n rows: every label an integer in 0..numClasses−1, numClasses an
 * integer in 1..MAX_CLASSES. `what` names the source for the message.
 */
export function checkLabels(ls: LabelSet, n: number, what = 'labels'): void {
  if (!ls || typeof ls !== 'object') throw new RangeError(`${what}: expected { labels: Int32Array | Uint8Array, numClasses }`);
  if (!(ls.labels instanceof Int32Array || ls.labels instanceof Uint8Array)) throw new RangeError(`${what}: labels must be an Int32Array or a Uint8Array`);
  const K = ls.numClasses;
  if (!Number.isInteger(K) || K < 1 || K > MAX_CLASSES) throw new RangeError(`${what}: numClasses = ${String(K)} is not accepted; accepted: an integer from 1 to ${MAX_CLASSES}`);
  if (ls.labels.length !== n) throw new RangeError(`${what}: ${ls.labels.length} labels for ${n} rows; give one label per row`);
  for (let i = 0; i < n; i++) {
    const y = ls.labels[i]!;
    if (y < 0 || y >= K) throw new RangeError(`${what}: row ${i + 1} has label ${y}; accepted: integers 0..${K - 1}`);
  }
}

/**
 * Splits the label column `column` (1-based, as the data readers count columns in their errors)
 * off a data matrix: the remaining columns are the data, the column's values the labels, which must
 * be integers ≥ 0 (K = max + 1 ≤ MAX_CLASSES). `what` names the file for the message.
 */
export function splitLabelColumn(m: DataMatrix, column: number, what = 'data'): { data: DataMatrix; labels: LabelSet } {
  if (!Number.isInteger(column) || column < 1 || column > m.dim) throw new RangeError(`${what}: label column ${column} is not accepted; accepted: 1..${m.dim} (the file has ${m.dim} column${m.dim === 1 ? '' : 's'}, counted from 1)`);
  if (m.dim < 2) throw new RangeError(`${what}: the label column would leave no data columns (the file has 1 column)`);
  const dim = m.dim - 1;
  const data = new Float32Array(m.n * dim);
  const labels = new Int32Array(m.n);
  let max = 0;
  for (let i = 0; i < m.n; i++) {
    const y = m.data[i * m.dim + column - 1]!;
    if (!Number.isInteger(y) || y < 0 || y >= MAX_CLASSES) throw new RangeError(`${what}: row ${i + 1}, label column ${column} holds ${y}; accepted: integers 0..${MAX_CLASSES - 1} (class labels)`);
    labels[i] = y;
    if (y > max) max = y;
    let o = i * dim;
    for (let k = 0; k < m.dim; k++) if (k !== column - 1) data[o++] = m.data[i * m.dim + k]!;
  }
  return { data: { data, n: m.n, dim }, labels: { labels, numClasses: max + 1 } };
}

/** Rows per class (length numClasses). */
export function classCounts(ls: LabelSet): Int32Array {
  const c = new Int32Array(ls.numClasses);
  for (const y of ls.labels) c[y]!++;
  return c;
}

/**
 * Parses a label list from the command line or an option ("3", "0,2,5", "all"): integers in
 * 0..numClasses−1; "all" is every class. Errors name the bad entry.
 */
export function parseLabelList(text: string, numClasses: number, what = '--label'): number[] {
  const s = String(text).trim();
  if (s === 'all') return Array.from({ length: numClasses }, (_, i) => i);
  const parts = s.split(',').map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw new RangeError(`${what} ${JSON.stringify(text)} is not accepted; accepted: a label 0..${numClasses - 1}, a comma-separated list of them, or all`);
  return parts.map((p) => {
    const y = Number(p);
    if (!/^\d+$/.test(p) || y >= numClasses) throw new RangeError(`${what}: ${JSON.stringify(p)} is not a label of this model; accepted: integers 0..${numClasses - 1} (comma-separated), or all`);
    return y;
  });
}
