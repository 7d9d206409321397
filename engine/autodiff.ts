/**
 * A minimal reverse-mode tape (micrograd's idea on tensors): while `valueAndGrad` runs its function,
 * every primitive applied to a tracked tensor is recorded with its inputs and output; backward walks
 * the records in reverse, applying each primitive's VJP rule from engine/vjp.ts and summing
 * gradients of reused tensors. Backward runs in no-grad mode, so gradients of gradients are not
 * taken. The tape speaks only to tensors and primitives, never to the GPU.
 */
import { forward, type Prim, type PrimParams } from './prims';
import { sameShape } from './shape';
import { scope, Tensor, withInternalAccess } from './tensor';
import { vjpRules } from './vjp';

export interface TapeNode<P extends Prim = Prim> {
  readonly prim: P;
  readonly inputs: Tensor[];
  readonly output: Tensor;
  readonly params: PrimParams[P];
}

class Tape {
  readonly nodes: TapeNode[] = [];
  readonly tracked = new Set<Tensor>();
}

const tapes: Tape[] = [];
let noGradDepth = 0;

/** Runs `fn` without recording anything on the tape. */
export function noGrad<T>(fn: () => T): T {
  noGradDepth++;
  try {
    return fn();
  } finally {
    noGradDepth--;
  }
}

/** Applies a primitive: runs its forward kernel and records it when an input is tracked. */
export function apply<P extends Prim>(prim: P, inputs: Tensor[], params: PrimParams[P]): Tensor {
  const out = (forward[prim] as (i: Tensor[], p: PrimParams[P]) => Tensor)(inputs, params);
  const tape = tapes[tapes.length - 1];
  if (tape && noGradDepth === 0 && inputs.some((t) => tape.tracked.has(t))) {
    for (const t of inputs) t.retain();
    out.retain();
    tape.nodes.push({ prim, inputs, output: out, params });
    tape.tracked.add(out);
  }
  return out;
}

export interface ValueAndGrad {
  /** The function's (scalar) result, owned by the caller. */
  value: Tensor;
  /** d value / d params[i], same shapes as params, owned by the caller. */
  grads: Tensor[];
}

/**
 * Evaluates `fn` (which must return a one-element tensor) and its gradient with respect to `params`.
 * Intermediates created inside `fn` are disposed; the value and the gradients belong to the caller.
 */
export function valueAndGrad(fn: () => Tensor, params: readonly Tensor[]): ValueAndGrad {
  const tape = new Tape();
  for (const p of params) {
    if (!(p instanceof Tensor)) throw new TypeError(`valueAndGrad: params must be Tensors, got ${String(p)}`);
    void p.buffer; // throws if disposed: its gradient would silently be zero
  }
  for (const p of params) {
    tape.tracked.add(p);
  }
  tapes.push(tape);
  let value: Tensor;
  try {
    value = scope(() => {
      const v = fn();
      if (!(v instanceof Tensor)) throw new TypeError(`valueAndGrad: fn must return a Tensor, got ${typeof v}`);
      if (v.size !== 1) throw new Error(`valueAndGrad: fn must return a one-element tensor, got shape [${v.shape.join(', ')}]`);
      return v;
    });
  } catch (e) {
    tapes.pop();
    releaseTape(tape);
    throw e;
  }
  tapes.pop();
  try {
    const grads = noGrad(() => withInternalAccess(() => backward(tape, value, params)));
    return { value, grads };
  } finally {
    releaseTape(tape);
  }
}

function releaseTape(tape: Tape): void {
  for (const n of tape.nodes) {
    for (const t of n.inputs) t.release();
    n.output.release();
  }
  tape.nodes.length = 0;
}

function backward(tape: Tape, value: Tensor, params: readonly Tensor[]): Tensor[] {
  const grads = new Map<Tensor, Tensor>();
  const paramSet = new Set(params);
  if (tape.tracked.has(value)) grads.set(value, forward.fused([], { expr: { op: 'const', v: 1 }, reduceTo: [...value.shape] }));
  for (let i = tape.nodes.length - 1; i >= 0; i--) {
    const node = tape.nodes[i]!;
    const g = grads.get(node.output);
    if (!g) continue;
    const needs = node.inputs.map((t) => tape.tracked.has(t));
    const rule = vjpRules[node.prim] as (g: Tensor, n: TapeNode, needs: boolean[]) => (Tensor | null)[];
    const gs = rule(g, node, needs);
    node.inputs.forEach((input, j) => {
      const gi = gs[j];
      if (!gi) return;
      if (!needs[j]) {
        gi.dispose();
        return;
      }
      if (!sameShape(gi.shape, input.shape)) {
        throw new Error(`internal: VJP of ${node.prim} gave shape [${gi.shape}] for input [${input.shape}]`);
      }
      const prev = grads.get(input);
      if (prev) {
        grads.set(input, forward.add([prev, gi], {}));
        prev.dispose();
        gi.dispose();
      } else grads.set(input, gi);
    });
    if (!paramSet.has(node.output)) {
      grads.delete(node.output);
      g.dispose();
    }
  }
  const out = params.map((p) => grads.get(p) ?? forward.fused([], { expr: { op: 'const', v: 0 }, reduceTo: [...p.shape] }));
  for (const [t, g] of grads) if (!paramSet.has(t)) g.dispose();
  return out;
}
