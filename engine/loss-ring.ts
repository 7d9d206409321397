/**
 * Per-step losses kept on the GPU, plus the non-finite guard (kernels/guard.ts): a ring of
 * LOSS_SLOTS loss slots and one guard word, written inside each training step and read back in one
 * go every few hundred ms. Losses are thus recorded per step (not averaged over wall-clock
 * windows, so two runs of one seed record the same numbers), and a NaN/Inf loss or parameter is
 * noticed at the next read without a readback of its own.
 *
 * Trainers must read at least every LOSS_SLOTS / 2 steps (before the ring wraps); that is also the
 * bound on how many steps run after the first non-finite value before the trainer stops.
 */
import { lossGuardKernel, lossGuardUniforms, guardStep } from '../kernels/guard';
import { zeros } from './ops';
import { getBackend, keep, type Tensor } from './tensor';

export const LOSS_SLOTS = 4096;

export interface RingRead {
  /** Losses of the steps asked for, in order. */
  losses: Float32Array;
  /** The first 0-based step whose loss or parameters were non-finite, or null. */
  firstBad: number | null;
}

/** Thrown by a trainer when the guard was raised: names the step (1-based, as losses are). */
export class NonFiniteError extends Error {
  readonly kind = 'nonfinite';
  constructor(
    message: string,
    /** The step (1-based count) whose loss or update was non-finite. */
    readonly step: number,
    /** Every loss recorded up to and including that step. */
    readonly losses: { step: number; loss: number }[],
  ) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

export class LossRing {
  /** LOSS_SLOTS loss words (f32 bits) and the guard word (0: not raised). */
  readonly buffer: Tensor;

  constructor() {
    this.buffer = keep(zeros([LOSS_SLOTS + 1]));
  }

  /**
   * Records step `step` (0-based) from the tape: its loss (the one-element tensor `loss`) into the
   * ring, and the guard raised if the loss or any value of `params` (the flat parameters, after the
   * update) is non-finite. One dispatch, recorded into the open encoder.
   */
  record(loss: Tensor, params: Tensor, step: number): void {
    const b = getBackend();
    b.dispatch(b.prepare(lossGuardKernel(LOSS_SLOTS, params.size)), [loss.buffer, params.buffer, this.buffer.buffer], lossGuardUniforms(step, loss.offset, params.offset));
  }

  /** Losses of steps [from, to) (to − from ≤ LOSS_SLOTS) and the guard: one readback. */
  async read(from: number, to: number): Promise<RingRead> {
    if (to - from > LOSS_SLOTS) throw new Error(`LossRing.read: ${to - from} steps exceed the ring of ${LOSS_SLOTS}`);
    // Raw words: the guard word may have a NaN's bit pattern, which a float copy could canonicalise.
    const words = await getBackend().readU32(this.buffer.buffer, (LOSS_SLOTS + 1) * 4);
    const all = new Float32Array(words.buffer, words.byteOffset, LOSS_SLOTS);
    const out = new Float32Array(Math.max(0, to - from));
    for (let s = from; s < to; s++) out[s - from] = all[s % LOSS_SLOTS]!;
    return { losses: out, firstBad: guardStep(words[LOSS_SLOTS]!) };
  }

  dispose(): void {
    this.buffer.dispose();
  }
}
