/**
 * Parameters live in one flat GPU buffer, each named parameter a view into it, so that Adam updates
 * all of them in one dispatch; the gradients are packed into one flat buffer by one concat dispatch.
 */
import { adamKernel, adamUniforms } from '../kernels/adam';
import { affine, concat, reshape, tensor, zeros } from './ops';
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
    return this.split(await this.flat.data());
  }

  /** A flat vector in this set's order (the parameters, or a buffer beside them) as named host arrays. */
  split(all: Float32Array): Record<string, { data: Float32Array; shape: number[] }> {
    if (all.length !== this.size) throw new Error(`ParamSet.split: ${all.length} values for ${this.size} parameters`);
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
  /**
   * Decay δ of an exponential moving average of the parameters kept beside them (0: none), updated
   * in Adam's own dispatch after each step: e ← δ_t·e + (1 − δ_t)·p with δ_t = min(δ, (1+t)/(10+t))
   * (TensorFlow's ExponentialMovingAverage warm-up, so that a short run's average is not held at
   * the initial weights), e starting at the initial parameters. Polyak averaging; torchcfm's image
   * recipe samples from such an average (δ = 0.9999 over 400k steps).
   */
  emaDecay?: number;
}

/** State of Adam for checkpoints: step count, moments, and the parameters' moving average when kept. */
export interface AdamStateData {
  t: number;
  m: Float32Array;
  v: Float32Array;
  ema?: Float32Array;
}

/** Learning-rate schedules: constant, or cosine decay from lr to 0 over the run (SGDR without restarts, Loshchilov & Hutter 2017). */
export type LrSchedule = 'cosine' | 'constant';
export const LR_SCHEDULES: readonly LrSchedule[] = ['cosine', 'constant'];

/** Learning rate at `step` (0-based) of `steps`: lr, or ½·lr·(1 + cos(π·step/steps)). */
export function learningRate(schedule: LrSchedule, lr: number, step: number, steps: number): number {
  if (schedule === 'constant' || steps <= 1) return lr;
  return 0.5 * lr * (1 + Math.cos((Math.PI * Math.min(step, steps)) / steps));
}

/** δ_t of step t (1-based) for decay δ: min(δ, (1+t)/(10+t)). */
export function emaDecayAt(decay: number, t: number): number {
  return Math.min(decay, (1 + t) / (10 + t));
}

export class Adam {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly emaDecay: number;
  private m: Tensor;
  private v: Tensor;
  /** The parameters' moving average (flat, parameter order), or null when emaDecay is 0. Owned here. */
  private ema: Tensor | null;
  /** Steps taken so far (bias correction uses t + 1 on the next step). */
  t = 0;

  constructor(readonly params: ParamSet, opts: AdamOptions = {}) {
    this.lr = check('lr', opts.lr ?? 1e-3, (x) => x > 0);
    this.beta1 = check('beta1', opts.beta1 ?? 0.9, (x) => x >= 0 && x < 1);
    this.beta2 = check('beta2', opts.beta2 ?? 0.999, (x) => x >= 0 && x < 1);
    this.eps = check('eps', opts.eps ?? 1e-8, (x) => x > 0);
    this.weightDecay = check('weightDecay', opts.weightDecay ?? 0, (x) => x >= 0);
    this.emaDecay = check('emaDecay', opts.emaDecay ?? 0, (x) => x >= 0 && x < 1);
    this.m = keep(zeros([params.size]));
    this.v = keep(zeros([params.size]));
    // The average starts at the initial parameters (a copy: x·1 + 0 is exact).
    this.ema = this.emaDecay > 0 ? keep(noGrad(() => affine(params.flat, 1, 0))) : null;
  }

  private uniforms(lr: number, step?: number): Uint8Array {
    return adamUniforms({ lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, t: this.t, weightDecay: this.weightDecay, step, emaDecay: this.ema ? emaDecayAt(this.emaDecay, this.t) : 0 });
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
    const u = this.uniforms(lr);
    const b = getBackend();
    noGrad(() =>
      scope(() => {
        const pieces = coalesce(grads);
        // The Adam kernel reads the gradient from element 0 of its buffer: a view elsewhere is copied.
        const flatGrad = pieces.length === 1 && pieces[0]!.offset === 0 ? pieces[0]! : concat(pieces);
        const bufs = [this.params.flat.buffer, flatGrad.buffer, this.m.buffer, this.v.buffer];
        if (this.ema) bufs.push(this.ema.buffer);
        b.dispatch(b.prepare(adamKernel(this.params.size, !!this.ema)), bufs, u);
      }),
    );
  }

  /**
   * For a step that applies Adam inside its own kernel (the fused CFM and [SF]2M steps run
   * kernels/adam.ts's body after their gradient reduction): advances t and returns this step's
   * uniforms and the moment buffers (and the average's, bound last by a kernel built with it), so
   * that the state, checkpoints and disposal stay this class's. `step` is the training step the
   * kernel's loss-ring slot and guard report.
   */
  fusedStep(step: number, lr = this.lr): { uniforms: Uint8Array; m: BufferHandle; v: BufferHandle; ema: BufferHandle | null } {
    this.t++;
    return { uniforms: this.uniforms(lr, step), m: this.m.buffer, v: this.v.buffer, ema: this.ema?.buffer ?? null };
  }

  /** The parameters' moving average (flat, parameter order; one readback), or null when none is kept. */
  async average(): Promise<Float32Array | null> {
    return this.ema ? this.ema.data() : null;
  }

  /** The moving average named and shaped as the parameters (ParamSet.split; one readback), or null when none is kept. */
  async averagedParams(): Promise<Record<string, { data: Float32Array; shape: number[] }> | null> {
    const e = await this.average();
    return e ? this.params.split(e) : null;
  }

  /** Optimizer state for checkpoints (the average included when kept). */
  async state(): Promise<AdamStateData> {
    const s: AdamStateData = { t: this.t, m: await this.m.data(), v: await this.v.data() };
    if (this.ema) s.ema = await this.ema.data();
    return s;
  }

  /**
   * Restores a state. An optimizer that keeps an average needs one in the state (a resume would
   * otherwise restart it from the current weights without saying so); one that keeps none ignores it.
   */
  loadState(s: AdamStateData): void {
    const n = this.params.size;
    if (s.m.length !== n || s.v.length !== n) throw new Error(`Adam.loadState: state has ${s.m.length} values for ${n} parameters`);
    if (this.ema && !s.ema) throw new Error(`Adam.loadState: this optimizer keeps a moving average of the weights (decay ${this.emaDecay}) but the state has none`);
    if (this.ema && s.ema!.length !== n) throw new Error(`Adam.loadState: the state's moving average has ${s.ema!.length} values for ${n} parameters`);
    this.t = s.t;
    getBackend().write(this.m.buffer, s.m);
    getBackend().write(this.v.buffer, s.v);
    if (this.ema) getBackend().write(this.ema.buffer, s.ema!);
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
    this.ema?.dispose();
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
