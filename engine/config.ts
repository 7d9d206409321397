/**
 * Engine switches. `fusion` is the fusion ladder, one level for the whole engine:
 *
 *   ops    a dense layer is matmul → add → activation, three primitives;
 *   layer  a dense layer is the fused `linear` primitive (matmul + bias + activation, one dispatch);
 *   mlp    a whole dense network is the `mlp` primitive (one dispatch forward, two for its VJP);
 *   step   as mlp, and trainers that have a hand-fused step use it (CFM: matcher + forward + loss +
 *          backward in one dispatch, then reduce + Adam).
 *
 * Every level computes the same numbers (within float32 summation order), so ratios between them can
 * be measured; trainers take a `fusion` option that sets it for their run.
 */
export const FUSION_LEVELS = ['ops', 'layer', 'mlp', 'step'] as const;
export type FusionLevel = (typeof FUSION_LEVELS)[number];

export const config: { fusion: FusionLevel } = { fusion: 'step' };

/** Sets the fusion level; `true`/`false` are the old on/off switch ('step' / 'ops'). */
export function setFusion(level: FusionLevel | boolean): void {
  const l = level === true ? 'step' : level === false ? 'ops' : level;
  if (!(FUSION_LEVELS as readonly string[]).includes(l)) throw new RangeError(`fusion: unknown level "${String(level)}"; accepted: ${FUSION_LEVELS.join(', ')}`);
  config.fusion = l;
}

/** Whether dense layers use at least `level`'s fusion (ops < layer < mlp < step). */
export function fusionAtLeast(level: FusionLevel): boolean {
  return FUSION_LEVELS.indexOf(config.fusion) >= FUSION_LEVELS.indexOf(level);
}

/** Runs `fn` at `level`, restoring the previous level afterwards. */
export function withFusion<T>(level: FusionLevel, fn: () => T): T {
  const prev = config.fusion;
  setFusion(level);
  try {
    return fn();
  } finally {
    config.fusion = prev;
  }
}
