/**
 * The README's engine example, run as written (only its import path is adjusted), so the first code
 * a newcomer copies keeps working; it must also actually learn the teacher layer.
 */
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { expect, test, vi } from 'vitest';

test('the README engine example runs and learns', async () => {
  const readme = readFileSync(resolve(__dirname, '../README.md'), 'utf8');
  const block = /```ts\n(import \{ init[\s\S]*?)```/.exec(readme)?.[1];
  expect(block, 'README has the engine example').toBeTruthy();
  const dir = resolve(__dirname, '../node_modules/.cache/wgflow');
  mkdirSync(dir, { recursive: true });
  const file = resolve(dir, 'readme-example.ts');
  writeFileSync(file, block!.replace("from './engine'", `from ${JSON.stringify(resolve(__dirname, '../engine'))}`));
  const logs: unknown[][] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void logs.push(a));
  await import(/* @vite-ignore */ file);
  spy.mockRestore();
  const line = logs.find((l) => l[0] === 'final loss');
  expect(line, 'the example prints its final loss').toBeTruthy();
  const loss = line![1] as number;
  expect(loss).toBeLessThan(1e-3);
  const w = Array.from(line![3] as Float32Array);
  [0.5, -1, 2, 0.3, -0.7, 1].forEach((t, i) => expect(Math.abs(w[i]! - t)).toBeLessThan(0.05));
});
