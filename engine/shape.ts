/** Shape arithmetic with errors that name the op and the shapes (numpy broadcasting rules). */

export type Shape = readonly number[];

export const fmt = (s: Shape): string => `[${s.join(', ')}]`;

export function sizeOf(shape: Shape): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function broadcastShapes(op: string, ...shapes: Shape[]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const o = rank - s.length + i;
      const d = s[i]!;
      if (d === out[o] || d === 1) continue;
      if (out[o] === 1) out[o] = d;
      else throw new Error(`${op}: shapes ${shapes.map(fmt).join(' and ')} cannot be broadcast together (dimension ${o}: ${out[o]} vs ${d})`);
    }
  }
  return out;
}

/** Axes of `full` that are summed to reduce it to `target` (right-aligned numpy broadcasting). */
export function broadcastAxes(target: Shape, full: Shape): number[] {
  const axes: number[] = [];
  for (let i = 0; i < full.length; i++) {
    const t = i - (full.length - target.length);
    if (t < 0 || (target[t] === 1 && full[i] !== 1)) axes.push(i);
  }
  return axes;
}

export function checkShape(op: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new TypeError(`${op}: shape must be an array of positive integers, got ${JSON.stringify(shape)}`);
  }
  return [...shape];
}

export function normAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
    throw new RangeError(`${op}: axis ${axis} out of range for a tensor of rank ${rank} (accepted: ${-rank}..${rank - 1})`);
  }
  return axis < 0 ? axis + rank : axis;
}
