/**
 * The peers of issue 10 item 6 as `BenchEngine`s: jax-js (`@jax-js/jax`, WebGPU device, the training
 * step under `jit`) and tfjs (`@tensorflow/tfjs-core` + `@tensorflow/tfjs-backend-webgpu`,
 * `tf.train.adam`). Only bench/ imports them: they are devDependencies, never part of the library.
 *
 * Both look for `navigator.gpu` (tfjs already when its backend module is evaluated), so they are
 * loaded dynamically, after the caller made sure it exists: in a page it does; in Node
 * bench/peer-env.ts installs Dawn's. Each peer opens its own GPUDevice on the same adapter.
 *
 * Waiting: jax-js is lazy (work is submitted when a result is awaited), so its wait is
 * `blockUntilReady`. tfjs batches dispatches into a command encoder and submits every 15; its wait
 * submits the rest (the same calls its own readback makes) and awaits `onSubmittedWorkDone`, so no
 * result is read back inside the timing. No Node imports here (the page bundles this file).
 */
import type * as JaxNs from '@jax-js/jax';
import type * as TfNs from '@tensorflow/tfjs-core';
import { ADAM, MLP_SIZES, type Act, type BenchEngine, type HostData, type Runner, type Workload } from './workloads';

type Jax = typeof JaxNs;
type JArray = JaxNs.Array;
type Tf = typeof TfNs;

export const JAX_VERSION = '0.1.25';
export const TFJS_VERSION = '4.22';

/** Loads jax-js and selects its WebGPU device; throws when it has none (no silent Wasm fallback). */
export async function jaxEngine(): Promise<BenchEngine> {
  const jax: Jax = await import('@jax-js/jax');
  const devices = await jax.init('webgpu');
  if (!devices.includes('webgpu')) throw new Error('jax-js found no WebGPU device');
  jax.defaultDevice('webgpu');
  return {
    name: `jax-js ${JAX_VERSION}`,
    family: 'jax-js',
    supports: () => null,
    setup: async (w, data) => (w.kind === 'matmul' ? jaxMatmul(jax, w.size, data) : jaxMlp(jax, w.batch, w.act, data)),
  };
}

function jaxMatmul(jax: Jax, size: number, data: HostData): Runner {
  const np = jax.numpy;
  const a = np.array(data.a!).reshape([size, size]);
  const b = np.array(data.b!).reshape([size, size]);
  let pending: JArray[] = [];
  let last: JArray | null = null;
  return {
    issue() {
      pending.push(np.matmul(a.ref, b.ref));
    },
    async wait() {
      await jax.blockUntilReady(pending);
      const keep = pending.pop() ?? null;
      for (const p of pending) p.dispose();
      pending = [];
      if (keep) {
        last?.dispose();
        last = keep;
      }
    },
    output: async () => (last ? ((await last.ref.data()) as Float32Array) : new Float32Array()),
    dispose() {
      for (const p of pending) p.dispose();
      last?.dispose();
      a.dispose();
      b.dispose();
    },
  };
}

/**
 * MLP → MSE → valueAndGrad → Adam, all inside one `jit`: the jitted function takes parameters, Adam
 * moments, the batch and the two bias-correction factors, and returns the new state and the loss.
 * jax-js functions take ownership of their arguments, hence the `.ref`s (README "Reference counting").
 */
function jaxMlp(jax: Jax, batch: number, act: Act, data: HostData): Runner {
  const np = jax.numpy;
  const f = act === 'selu' ? jax.nn.selu : jax.nn.silu;
  const L = MLP_SIZES.length - 1;
  const loss = (params: JArray[], x: JArray, y: JArray): JArray => {
    let h = x;
    for (let l = 0; l < L; l++) {
      h = np.matmul(h, params[2 * l]!).add(params[2 * l + 1]!);
      if (l + 1 < L) h = f(h);
    }
    return np.mean(np.square(h.sub(y)));
  };
  const { beta1: b1, beta2: b2, eps, lr } = ADAM;
  const step = jax.jit((params: JArray[], m: JArray[], v: JArray[], x: JArray, y: JArray, c1: JArray, c2: JArray) => {
    const [value, grads] = jax.valueAndGrad(loss)(params.map((p) => p.ref), x, y) as [JArray, JArray[]];
    const P: JArray[] = [];
    const M: JArray[] = [];
    const V: JArray[] = [];
    params.forEach((p, i) => {
      const g = grads[i]!;
      const mi = m[i]!.mul(b1).add(g.ref.mul(1 - b1));
      const vi = v[i]!.mul(b2).add(np.square(g).mul(1 - b2));
      const upd = mi.ref.mul(c1.ref).div(np.sqrt(vi.ref.mul(c2.ref)).add(eps));
      P.push(p.sub(upd.mul(lr)));
      M.push(mi);
      V.push(vi);
    });
    c1.dispose();
    c2.dispose();
    return [P, M, V, value] as [JArray[], JArray[], JArray[], JArray];
  });
  let params = data.params!.map((p) => np.array(p.data).reshape(p.shape));
  let m = data.params!.map((p) => np.zeros(p.shape));
  let v = data.params!.map((p) => np.zeros(p.shape));
  const x = np.array(data.x!).reshape([batch, MLP_SIZES[0]]);
  const y = np.array(data.y!).reshape([batch, MLP_SIZES[L]!]);
  let last: JArray | null = null;
  let t = 0;
  return {
    issue() {
      t++;
      const c1 = np.array(1 / (1 - b1 ** t));
      const c2 = np.array(1 / (1 - b2 ** t));
      const [P, M, V, value] = step(params, m, v, x.ref, y.ref, c1, c2);
      params = P;
      m = M;
      v = V;
      last?.dispose();
      last = value;
    },
    async wait() {
      // Waiting on the newest parameters realises the whole chain of steps (and the loss with it).
      await jax.blockUntilReady([params, m, v, last]);
    },
    output: async () => Float32Array.of(last ? ((await last.ref.data()) as Float32Array)[0]! : Number.NaN),
    dispose() {
      for (const a of [...params, ...m, ...v]) a.dispose();
      last?.dispose();
      x.dispose();
      y.dispose();
      step.dispose();
    },
  };
}

/** The tfjs WebGPU backend's internals that its own readback uses to submit pending work. */
interface TfWebGpuBackend {
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder | null;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/**
 * Loads tfjs-core with its gradients (tfjs-core alone registers none: minimize would fail) and the
 * WebGPU backend, one instance of core for all three. Injected, never imported here: as published,
 * neither Node (a CommonJS `main` without gradients; ES modules with extensionless imports) nor the
 * page bundler (tfjs-core's browser map sends `util` to false, which browser/bundle.ts's built-in
 * guard rejects) can take the packages directly, so bench/peer-env.ts prebuilds an ES module bundle
 * with esbuild for each (bench/page-peers.ts imports the browser one from a blob: URL).
 */
export type TfjsLoader = () => Promise<Tf>;

export async function tfjsEngine(load: TfjsLoader): Promise<BenchEngine> {
  const tf = await load();
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs: the webgpu backend did not initialise');
  await tf.ready();
  const be = tf.backend() as unknown as TfWebGpuBackend;
  if (typeof be.submitQueue !== 'function' || !be.device) throw new Error('tfjs: unexpected WebGPU backend (no submitQueue/device)');
  const wait = async () => {
    if (be.commandEncoder) {
      be.endComputePassEncoder();
      be.submitQueue();
    }
    await be.device.queue.onSubmittedWorkDone();
  };
  return {
    name: `tfjs-webgpu ${TFJS_VERSION}`,
    family: 'tfjs',
    supports: () => null,
    setup: async (w, data) => (w.kind === 'matmul' ? tfMatmul(tf, w.size, data, wait) : tfMlp(tf, w.batch, w.act, data, wait)),
  };
}

function tfMatmul(tf: Tf, size: number, data: HostData, wait: () => Promise<void>): Runner {
  const a = tf.tensor2d(data.a!, [size, size]);
  const b = tf.tensor2d(data.b!, [size, size]);
  let last: TfNs.Tensor | null = null;
  return {
    issue() {
      last?.dispose();
      last = tf.matMul(a, b);
    },
    wait,
    output: async () => (last ? ((await last.data()) as Float32Array) : new Float32Array()),
    dispose() {
      last?.dispose();
      a.dispose();
      b.dispose();
    },
  };
}

function tfMlp(tf: Tf, batch: number, act: Act, data: HostData, wait: () => Promise<void>): Runner {
  // tfjs has no silu op: x·sigmoid(x), as a user would write it.
  const f = act === 'selu' ? (h: TfNs.Tensor) => tf.selu(h) : (h: TfNs.Tensor) => tf.mul(h, tf.sigmoid(h));
  const L = MLP_SIZES.length - 1;
  const vars = data.params!.map((p, i) => tf.variable(tf.tensor(p.data, p.shape), true, `p${i}`));
  const x = tf.tensor2d(data.x!, [batch, MLP_SIZES[0]]);
  const y = tf.tensor2d(data.y!, [batch, MLP_SIZES[L]!]);
  const opt = tf.train.adam(ADAM.lr, ADAM.beta1, ADAM.beta2, ADAM.eps);
  let last: TfNs.Scalar | null = null;
  return {
    issue() {
      const value = opt.minimize(() => {
        let h: TfNs.Tensor = x;
        for (let l = 0; l < L; l++) {
          h = tf.add(tf.matMul(h, vars[2 * l]!), vars[2 * l + 1]!);
          if (l + 1 < L) h = f(h);
        }
        return tf.mean(tf.square(tf.sub(h, y))) as TfNs.Scalar;
      }, true, vars);
      last?.dispose();
      last = value;
    },
    wait,
    output: async () => Float32Array.of(last ? (await last.data())[0]! : Number.NaN),
    dispose() {
      last?.dispose();
      opt.dispose();
      for (const v of vars) v.dispose();
      x.dispose();
      y.dispose();
    },
  };
}

/** Both peers, each or its load error (a peer that cannot start is reported, not fatal). */
export async function peerEngines(which: readonly ('jax-js' | 'tfjs')[], tfjsLoader: TfjsLoader | null): Promise<{ engines: BenchEngine[]; errors: string[] }> {
  const engines: BenchEngine[] = [];
  const errors: string[] = [];
  for (const p of which) {
    try {
      if (p === 'tfjs' && !tfjsLoader) throw new Error('no tfjs loader given');
      engines.push(p === 'jax-js' ? await jaxEngine() : await tfjsEngine(tfjsLoader!));
    } catch (e) {
      errors.push(`${p}: ${(e as Error).message}`);
    }
  }
  return { engines, errors };
}
