import { defineConfig } from 'vitest/config';

// WebGPU runs on SwiftShader (CPU) here: tests are slow-ish and share two cores, so files run in
// separate processes (Dawn is a native addon) two at a time, with generous timeouts.
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
