/**
 * Engine switches. `fusion` selects fused kernels (a dense layer as one matmul+bias+activation
 * dispatch) or the op-by-op composition; both give the same numbers, so their ratio can be measured.
 */
export const config = { fusion: true };

export function setFusion(on: boolean): void {
  config.fusion = on;
}
