/**
 * Parameters live in one flat GPU buffer, each named parameter a view into it, so that Adam updates
 * all of them in one dispatch; the gradients are packed into one flat buffer by one concat dispatch.
 */
import { adamKernel, adamUniforms } from '../kernels/adam';
import { concat, reshape, tensor, zeros } from './ops';
import { noGrad } from './autodiff';
import { checkShape, fmt, sizeOf } from './shape';
import { getBackend, keep, scope, Tensor } from './tensor';
import type { BufferHandle } from './backend';

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** Initial values, length = product of shape. */
  readonly init: ArrayLike<number>;
}

export class ParamSet {
  readonly flat: Tensor;
  readonly params: Tensor[];
  readonly names: string[];
  readonly size: number;

  constructor(specs: readonly ParamSpec[]) {
    if (specs.length === 0) throw new Error('ParamSet: needs at least one parameter');
    this.names = specs.map((s) => s.name);
    if (new Set(this.names).size !== this.names.length) throw new Error(`ParamSet: duplicate parameter names in ${this.names.join(', ')}`);
    const sizes = specs.map((s) => sizeOf(checkShape(`ParamSet ${s.name}`, s.shape)));
    this.size = sizes.reduce((a, b) => a + b, 0);
    const host = new Float32Array(this.size);
    let off = 0;
    specs.forEach((s, i) => {
      if (s.init.length !== sizes[i]) throw new Error(`ParamSet: ${s.name} has ${s.init.length} initial values for shape ${fmt(s.shape)}`);
      host.set(Float32Array.from(s.init), off);
      off += sizes[i]!;
    });
    this.flat = keep(tensor(host));
    off = 0;
    this.params = specs.map((s, i) => {
      const v = keep(Tensor.view(this.flat, s.shape, off));
      off += sizes[i]!;
      return v;
    });
  }

  get(name: string): Tensor {
    const i = this.names.indexOf(name);
    if (i < 0) throw new Error(`ParamSet: no parameter "${name}"; have ${this.names.join(', ')}`);
    return this.params[i]!;
  }

  /** All values as named host arrays (for checkpoints). */
  async read(): Promise<Record<string, { data: Float32Array; shape: number[] }>> {
    const all = await this.flat.data();
    const out: Record<string, { data: Float32Array; shape: number[] }> = {};
    let off = 0;
    this.params.forEach((p, i) => {
      out[this.names[i]!] = { data: all.slice(off, off + p.size), shape: [...p.shape] };
      off += p.size;
    });
    return out;
  }

  /** Overwrites all values from host data (checkpoint restore). */
  load(values: Record<string, { data: Float32Array }>): void {
    const host = new Float32Array(this.size);
    let off = 0;
    this.params.forEach((p, i) => {
      const v = values[this.names[i]!];
      if (!v || v.data.length !== p.size) throw new Error(`ParamSet.load: missing or mis-sized "${this.names[i]}" (need ${p.size} values)`);
      host.set(v.data, off);
      off += p.size;
    });
    getBackend().write(this.flat.buffer, host);
  }

  dispose(): void {
    for (const p of this.params) p.dispose();
    this.flat.dispose();
  }
}

export interface AdamOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (AdamW); 0 is plain Adam. */
  weightDecay?: number;
}

export class Adam {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private m: Tensor;
  private v: Tensor;
  /** Steps taken so far (bias correction uses t + 1 on the next step). */
  t = 0;

  constructor(readonly params: ParamSet, opts: AdamOptions = {}) {
    this.lr = check('lr', opts.lr ?? 1e-3, (x) => x > 0);
    this.beta1 = check('beta1', opts.beta1 ?? 0.9, (x) => x >= 0 && x < 1);
    this.beta2 = check('beta2', opts.beta2 ?? 0.999, (x) => x >= 0 && x < 1);
    this.eps = check('eps', opts.eps ?? 1e-8, (x) => x > 0);
    this.weightDecay = check('weightDecay', opts.weightDecay ?? 0, (x) => x >= 0);
    this.m = keep(zeros([params.size]));
    this.v = keep(zeros([params.size]));
  }

  /**
   * One update from gradients in parameter order: one pack dispatch (none when the gradients are
   * already adjacent views of one buffer, as an `mlp`'s are), one Adam dispatch.
   */
  step(grads: readonly Tensor[], lr = this.lr): void {
    if (grads.length !== this.params.params.length) throw new Error(`Adam.step: ${grads.length} gradients for ${this.params.params.length} parameters`);
    grads.forEach((g, i) => {
      if (g.size !== this.params.params[i]!.size) throw new Error(`Adam.step: gradient ${i} ${fmt(g.shape)} does not match parameter ${this.params.names[i]} ${fmt(this.params.params[i]!.shape)}`);
    });
    this.t++;
    const u = adamUniforms({ lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, t: this.t, weightDecay: this.weightDecay });
    const b = getBackend();
    noGrad(() =>
      scope(() => {
        const pieces = coalesce(grads);
        // The Adam kernel reads the gradient from element 0 of its buffer: a view elsewhere is copied.
        const flatGrad = pieces.length === 1 && pieces[0]!.offset === 0 ? pieces[0]! : concat(pieces);
        b.dispatch(b.prepare(adamKernel(this.params.size)), [this.params.flat.buffer, flatGrad.buffer, this.m.buffer, this.v.buffer], u);
      }),
    );
  }

  /**
   * For a step that applies Adam inside its own kernel (the fused CFM and [SF]2M steps run
   * kernels/adam.ts's body after their gradient reduction): advances t and returns this step's
   * uniforms and the moment buffers, so that the state, checkpoints and disposal stay this class's.
   * `step` is the training step the kernel's loss-ring slot and guard report.
   */
  fusedStep(step: number, lr = this.lr): { uniforms: Uint8Array; m: BufferHandle; v: BufferHandle } {
    this.t++;
    const uniforms = adamUniforms({ lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, t: this.t, weightDecay: this.weightDecay, step });
    return { uniforms, m: this.m.buffer, v: this.v.buffer };
  }

  /** Optimizer state for checkpoints. */
  async state(): Promise<{ t: number; m: Float32Array; v: Float32Array }> {
    return { t: this.t, m: await this.m.data(), v: await this.v.data() };
  }

  loadState(s: { t: number; m: Float32Array; v: Float32Array }): void {
    if (s.m.length !== this.params.size || s.v.length !== this.params.size) throw new Error(`Adam.loadState: state has ${s.m.length} values for ${this.params.size} parameters`);
    this.t = s.t;
    getBackend().write(this.m.buffer, s.m);
    getBackend().write(this.v.buffer, s.v);
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
  }
}

/**
 * The gradients flattened, with runs of adjacent views into one buffer (the `mlp` VJP writes a
 * network's gradients contiguously in parameter order) merged into one view: fewer pieces to pack.
 */
function coalesce(grads: readonly Tensor[]): Tensor[] {
  const out: Tensor[] = [];
  let run: Tensor[] = [];
  const flush = () => {
    if (run.length === 0) return;
    const size = run.reduce((a, g) => a + g.size, 0);
    out.push(run.length === 1 ? reshape(run[0]!, [size]) : Tensor.view(run[0]!, [size], run[0]!.offset));
    run = [];
  };
  for (const g of grads) {
    const prev = run[run.length - 1];
    if (prev && !(g.sharesStorageWith(prev) && g.offset === prev.offset + prev.size)) flush();
    run.push(g);
  }
  flush();
  return out;
}

function check(name: string, x: number, ok: (x: number) => boolean): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || !ok(x)) throw new RangeError(`Adam: ${name} = ${x} is out of range`);
  return x;
}
