/**
 * Parameter bookkeeping for flows: layers declare their parameters (name, shape, initial values)
 * while the flow is being built; the Flow then allocates them all as views into ONE flat buffer
 * (engine ParamSet), so Adam updates every parameter of a flow in one dispatch. Layers look their
 * tensors up by name at call time.
 */
import { getBackend, ParamSet, type ParamSpec, type Tensor } from '../engine';

export type HostParams = Record<string, { data: Float32Array; shape: number[] }>;

export class ParamStore {
  private readonly specs: ParamSpec[] = [];
  private readonly index = new Map<string, number>();
  private set: ParamSet | null = null;
  private done = false;

  /** Declares a parameter; returns its name (unique within the store). */
  add(name: string, shape: readonly number[], init: ArrayLike<number>): string {
    if (this.done) throw new Error(`ParamStore: cannot add "${name}" after the parameters were allocated`);
    if (this.index.has(name)) throw new Error(`ParamStore: duplicate parameter name "${name}"`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (init.length !== size) throw new Error(`ParamStore: "${name}" has ${init.length} initial values for shape [${shape.join(', ')}]`);
    this.index.set(name, this.specs.length);
    this.specs.push({ name, shape: [...shape], init: Float32Array.from(init) });
    return name;
  }

  /** Allocates every declared parameter in one flat GPU buffer (idempotent). */
  finalize(): void {
    if (this.done) return;
    this.done = true;
    if (this.specs.length) this.set = new ParamSet(this.specs);
  }

  get finalized(): boolean {
    return this.done;
  }

  get names(): string[] {
    return this.specs.map((s) => s.name);
  }

  /** Number of scalar parameters. */
  get size(): number {
    return this.specs.reduce((a, s) => a + s.init.length, 0);
  }

  /** The ParamSet (null when the flow has no parameters). */
  get paramSet(): ParamSet | null {
    this.need('paramSet');
    return this.set;
  }

  /** Every parameter tensor, in declaration order. */
  get tensors(): Tensor[] {
    this.need('tensors');
    return this.set ? this.set.params : [];
  }

  get(name: string): Tensor {
    this.need(name);
    const i = this.index.get(name);
    if (i === undefined) throw new Error(`ParamStore: no parameter "${name}"`);
    return this.set!.params[i]!;
  }

  /** Overwrites one parameter's values on the GPU (data-dependent initialisation). */
  write(name: string, values: ArrayLike<number>): void {
    const t = this.get(name);
    if (values.length !== t.size) throw new Error(`ParamStore.write: ${values.length} values for "${name}" of size ${t.size}`);
    getBackend().write(t.buffer, Float32Array.from(values), t.offset * 4);
  }

  async read(): Promise<HostParams> {
    this.need('read');
    return this.set ? this.set.read() : {};
  }

  /** Loads named values (a checkpoint); every parameter must be present with the right size. */
  load(values: Record<string, { data: Float32Array; shape?: number[] }>): void {
    this.need('load');
    if (!this.set) return;
    const missing = this.names.filter((n) => !values[n]);
    if (missing.length) throw new Error(`flow parameters missing from the checkpoint: ${missing.join(', ')} (it was trained with a different architecture?)`);
    for (const [i, n] of this.names.entries()) {
      const want = this.specs[i]!.init.length;
      if (values[n]!.data.length !== want) throw new Error(`flow parameter "${n}" has ${values[n]!.data.length} values in the checkpoint, the architecture needs ${want}`);
    }
    this.set.load(values);
  }

  dispose(): void {
    this.set?.dispose();
    this.set = null;
  }

  private need(what: string): void {
    if (!this.done) throw new Error(`ParamStore: parameters are not allocated yet (${what}); build a Flow from the layers first, or call finalize()`);
  }
}
