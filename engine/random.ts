/**
 * Random tensors on the GPU from a seeded Philox stream (kernels/random.ts): reproducible by seed,
 * identical to the CPU generator's philox4x32 for the same (seed, draw, index), and with no upload
 * per step: only the draw number changes, as a uniform.
 */
import { randomKernel } from '../kernels/random';
import { seedKey } from './philox';
import { checkShape, sizeOf } from './shape';
import { getBackend, Tensor } from './tensor';

export class GpuRng {
  private readonly key: [number, number];
  /** The number of tensors drawn so far; draw d uses Philox counter word 1 = d. */
  draws = 0;

  constructor(readonly seed: number) {
    this.key = seedKey(seed);
  }

  uniform(shape: readonly number[]): Tensor {
    return this.draw('uniform', shape);
  }

  normal(shape: readonly number[]): Tensor {
    return this.draw('normal', shape);
  }

  private draw(dist: 'uniform' | 'normal', shape: readonly number[]): Tensor {
    const s = checkShape(`GpuRng.${dist}`, shape);
    const n = sizeOf(s);
    const b = getBackend();
    const out = Tensor.empty(s);
    const u = new Uint32Array([this.key[0], this.key[1], this.draws++ >>> 0, 0]);
    b.dispatch(b.prepare(randomKernel(dist, n)), [out.buffer], u);
    return out;
  }
}
