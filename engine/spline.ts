/**
 * The `rqspline` primitive's GPU side (kernels/spline.ts): monotonic rational-quadratic splines
 * (Durkan et al. 2019), one per element, forward or inverse, in one dispatch; its VJP in one more.
 *
 * Inputs: x (any shape S, N elements), w and h of shape [...S, K] (unnormalised bin widths and
 * heights), and when K > 1 d of shape [...S, K − 1] (unnormalised interior derivatives). Output: one
 * tensor [2, ...S] holding y (row 0) and log|dy/dx| per element (row 1); ops.rqspline slices it.
 */
import { checkSplineArgs, splineForwardKernel, splineVjpKernel, type SplineArgs } from '../kernels/spline';
import { fmt, sameShape } from './shape';
import { getBackend, Tensor } from './tensor';

export interface RqSplineParams {
  bins: number;
  bound: number;
  inverse: boolean;
  minWidth: number;
  minHeight: number;
  minDerivative: number;
}

/** nflows' floors (DEFAULT_MIN_BIN_WIDTH, _HEIGHT, _DERIVATIVE). */
export const SPLINE_MINIMA = { minWidth: 1e-3, minHeight: 1e-3, minDerivative: 1e-3 } as const;

/** Checks inputs and parameters; throws naming the tensor, its shape and what is accepted. */
export function checkSpline(inputs: readonly Tensor[], p: RqSplineParams): void {
  checkSplineArgs(p);
  const [x, w, h, d] = inputs;
  const K = p.bins;
  const want = (t: Tensor | undefined, name: string, last: number) => {
    const shape = [...x!.shape, last];
    if (!t || !sameShape(t.shape, shape)) throw new Error(`rqspline: ${name} must have shape ${fmt(shape)} for x ${fmt(x!.shape)} and ${K} bins, got ${t ? fmt(t.shape) : 'none'}`);
  };
  want(w, 'widths', K);
  want(h, 'heights', K);
  if (K > 1) want(d, 'derivatives', K - 1);
  else if (inputs.length > 3) throw new Error('rqspline: one bin has no interior derivatives; pass none');
  if (x!.size === 0) throw new Error(`rqspline: x ${fmt(x!.shape)} is empty`);
}

function argsOf(inputs: readonly Tensor[], p: RqSplineParams, g?: Tensor): SplineArgs {
  const [x, w, h, d] = inputs;
  return { ...p, n: x!.size, offsets: { x: x!.offset, w: w!.offset, h: h!.offset, d: d?.offset ?? 0, g: g?.offset } };
}

export function splineForward(inputs: readonly Tensor[], p: RqSplineParams): Tensor {
  const out = Tensor.empty([2, ...inputs[0]!.shape]);
  const b = getBackend();
  b.dispatch(b.prepare(splineForwardKernel(argsOf(inputs, p))), [...inputs.map((t) => t.buffer), out.buffer]);
  return out;
}

/** Cotangents of x, w, h (and d) from g [2, ...S]: one dispatch; views into one packed buffer. */
export function splineVjp(inputs: readonly Tensor[], p: RqSplineParams, g: Tensor, needs: readonly boolean[]): (Tensor | null)[] {
  const [x, w, h, d] = inputs;
  const n = x!.size;
  const K = p.bins;
  const packed = Tensor.empty([n * 3 * K]);
  const b = getBackend();
  b.dispatch(b.prepare(splineVjpKernel(argsOf(inputs, p, g))), [...inputs.map((t) => t.buffer), g.buffer, packed.buffer]);
  const out = [
    needs[0] ? Tensor.view(packed, x!.shape, 0) : null,
    needs[1] ? Tensor.view(packed, w!.shape, n) : null,
    needs[2] ? Tensor.view(packed, h!.shape, n + n * K) : null,
  ];
  if (d) out.push(needs[3] ? Tensor.view(packed, d.shape, n + 2 * n * K) : null);
  packed.dispose();
  return out;
}
