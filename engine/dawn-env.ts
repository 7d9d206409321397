/**
 * The environment Dawn (Node's WebGPU) and the Vulkan loader read, set before the first Dawn
 * instance: the loader opens its drivers and implicit layers when the instance is created and the
 * adapters enumerated, and reads these variables then (Node's process.env writes through to the C
 * environment), not when the `webgpu` module is imported.
 *
 * Why: on a machine without a GPU, with Debian's Vulkan drivers installed (libvulkan1 recommends
 * mesa-vulkan-drivers, so `apt-get install libvulkan1` brings them), every Dawn start printed
 *   error: XDG_RUNTIME_DIR is invalid or not set in the environment.   (lavapipe, twice)
 *   Warning: Vulkan shaderUniform*ArrayDynamicIndexing required. …      (Dawn rejecting lavapipe)
 * and without any system driver `Warning: vkCreateInstance: Found no drivers!`, before the engine
 * fell back to Chromium's SwiftShader. Native code writes these straight to fd 2, so they cannot
 * be filtered in-process; they are prevented instead:
 *  - no GPU device node and no driver chosen by the user: Vulkan is pointed straight at
 *    SwiftShader (where the engine ended up anyway), so no other driver is loaded;
 *  - XDG_RUNTIME_DIR unset or not an absolute path to a directory: a private 0700 directory
 *    `wgflow-xdg-<pid>-XXXXXX` in the temporary directory, removed at exit (the pid in the name
 *    lets the next start remove it after a kill: cli/leftovers.ts).
 * GPU containers whose NVIDIA ICD lies outside the loader's search path get VK_DRIVER_FILES (SPEC §1).
 * Variables the user set (to something usable) are left alone. Node only; idempotent.
 */

/** Device nodes whose presence means a GPU driver is exposed to this machine/container. */
export const GPU_DEVICE_NODES = ['/dev/nvidia0', '/dev/dri/renderD128'] as const;

export const SWIFTSHADER_ICD_PATHS = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];

const NVIDIA_ICD = '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json';
const NVIDIA_SEARCHED = ['/usr/share/vulkan/icd.d/nvidia_icd.json', '/etc/vulkan/icd.d/nvidia_icd.json'];

/** Prefix of the private runtime folders; the owner's pid follows it. */
export const XDG_PREFIX = 'wgflow-xdg-';

type Fs = typeof import('node:fs');

/**
 * A Node built-in through process.getBuiltinModule, not an import: bundlers then leave it out of
 * browser bundles (a page bundle of wgflow needs no `--external:node:*`).
 */
export function builtin<T>(id: string): T {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.(id);
  if (!mod) throw new Error(`${id} is unavailable: Dawn's environment is a Node.js (>= 20.16) matter`);
  return mod as T;
}

/** True when a GPU device node exists. */
export function gpuDetected(exists: (p: string) => boolean = builtin<Fs>('node:fs').existsSync): boolean {
  return GPU_DEVICE_NODES.some((p) => exists(p));
}

function usableDir(fs: Fs, p: string | undefined): boolean {
  if (!p || !p.startsWith('/')) return false;
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export interface DawnEnvOptions {
  env?: Record<string, string | undefined>;
  /** Test seam: whether a GPU device node exists. */
  gpu?: boolean;
  /** Test seam: where the private XDG_RUNTIME_DIR goes (default os.tmpdir()). */
  tmpdir?: string;
}

/** What prepareDawnEnvironment changed (empty when nothing). */
export interface DawnEnvChanges {
  VK_ICD_FILENAMES?: string;
  VK_DRIVER_FILES?: string;
  XDG_RUNTIME_DIR?: string;
}

const prepared = new WeakSet<object>();

/** Sets the variables above in `env` (default process.env) once; returns what it set. */
export function prepareDawnEnvironment(opts: DawnEnvOptions = {}): DawnEnvChanges {
  const env = opts.env ?? (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
  if (prepared.has(env)) return {};
  prepared.add(env);
  const fs = builtin<Fs>('node:fs');
  const changes: DawnEnvChanges = {};
  if (!env.VK_ICD_FILENAMES && !env.VK_DRIVER_FILES) {
    if (!(opts.gpu ?? gpuDetected(fs.existsSync))) {
      const icd = SWIFTSHADER_ICD_PATHS.find((p) => fs.existsSync(p));
      if (icd) env.VK_ICD_FILENAMES = changes.VK_ICD_FILENAMES = icd;
    } else if (fs.existsSync(NVIDIA_ICD) && !NVIDIA_SEARCHED.some((p) => fs.existsSync(p))) {
      env.VK_DRIVER_FILES = changes.VK_DRIVER_FILES = NVIDIA_ICD;
    }
  }
  if (!usableDir(fs, env.XDG_RUNTIME_DIR)) {
    const os = builtin<typeof import('node:os')>('node:os');
    const path = builtin<typeof import('node:path')>('node:path');
    const pid = (globalThis as unknown as { process: { pid: number } }).process.pid;
    const dir = fs.mkdtempSync(path.join(opts.tmpdir ?? os.tmpdir(), `${XDG_PREFIX}${pid}-`));
    env.XDG_RUNTIME_DIR = changes.XDG_RUNTIME_DIR = dir;
    (globalThis as unknown as { process: NodeJS.Process }).process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return changes;
}
