/**
 * Finding and launching the system Chromium for WebGPU work (SPEC §1).
 *
 * We use puppeteer-core with the distribution's Chromium rather than a downloaded browser: the
 * Debian package ships SwiftShader's Vulkan driver, which gives a real (software) WebGPU adapter
 * on machines without a GPU.
 */
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { gpuDetected } from '../engine/dawn-env';

/** Where we look for Chromium when neither a path nor WGFLOW_CHROMIUM is given, in order. */
export const CHROMIUM_CANDIDATES = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
  '/snap/bin/chromium',
] as const;

const INSTALL_HINT = 'install it with `sudo apt-get install -y chromium` or pass --chromium PATH / set WGFLOW_CHROMIUM';

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Path of the Chromium to launch: `explicit`, else $WGFLOW_CHROMIUM, else the first of
 * CHROMIUM_CANDIDATES that exists. An explicit path or variable that is not an executable file
 * is an error (not silently skipped): the user asked for that browser.
 */
export function findChromium(explicit?: string): string {
  if (explicit !== undefined && explicit !== '') {
    if (!isExecutableFile(explicit)) {
      throw new Error(
        `Chromium path ${JSON.stringify(explicit)} ${existsSync(explicit) ? 'is not an executable file' : 'does not exist'}; ` +
          `pass the path of a Chromium or Chrome executable (e.g. /usr/bin/chromium), or leave it out to search ${CHROMIUM_CANDIDATES.join(', ')}`,
      );
    }
    return explicit;
  }
  const fromEnv = process.env.WGFLOW_CHROMIUM;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!isExecutableFile(fromEnv)) {
      throw new Error(
        `WGFLOW_CHROMIUM=${JSON.stringify(fromEnv)} ${existsSync(fromEnv) ? 'is not an executable file' : 'does not exist'}; ` +
          'set it to the path of a Chromium or Chrome executable (e.g. /usr/bin/chromium), or unset it to search the usual places',
      );
    }
    return fromEnv;
  }
  for (const candidate of CHROMIUM_CANDIDATES) {
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new Error(`no Chromium found (looked at ${CHROMIUM_CANDIDATES.join(', ')}); ${INSTALL_HINT}`);
}

/** GPU device nodes and `gpuDetected()`, the default for `launchChromium({ gpu })`: one list for both runtimes. */
export { GPU_DEVICE_NODES, gpuDetected } from '../engine/dawn-env';

/** Flags every launch gets (SPEC §1): WebGPU on, and nothing that talks to the network. */
export const BASE_CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
] as const;

/**
 * Hardware path: Chrome's documented recipe for headless WebGPU on a Linux GPU server
 * (developer.chrome.com "Supercharge Web AI model testing", the Colab/T4 setup): Vulkan on,
 * ANGLE on Vulkan, and no Vulkan surface (headless has nothing to present to; without this flag
 * the GPU process tries to create swapchains and fails). There is no `--enable-vulkan` switch in
 * current Chromium; `--enable-features=Vulkan` is the switch. On a machine WITHOUT a GPU driver
 * these flags make `requestAdapter()` hang (seen here: no answer within 180 s), hence the
 * device-node check for the default.
 */
export const GPU_CHROMIUM_ARGS = ['--enable-features=Vulkan', '--use-angle=vulkan', '--disable-vulkan-surface'] as const;

/**
 * Software path: pin WebGPU to SwiftShader. Without a GPU this is what Chromium picks anyway;
 * on a GPU machine it keeps `gpu: false` meaning what it says.
 */
export const SOFTWARE_CHROMIUM_ARGS = ['--use-webgpu-adapter=swiftshader'] as const;

export interface LaunchChromiumOptions {
  /** Browser executable; default findChromium() (WGFLOW_CHROMIUM, then the usual paths). */
  executablePath?: string;
  /** Hardware WebGPU through Vulkan. Default: true when /dev/nvidia0 or /dev/dri/renderD128 exists. */
  gpu?: boolean;
  /** Default true. Headful needs a display ($DISPLAY). */
  headless?: boolean;
  /** Extra Chromium switches, appended last. */
  extraArgs?: string[];
  /** How long to wait for the browser to start, in ms. Default 60 000 (slow 2-core machines). */
  launchTimeoutMs?: number;
}

export interface ChromiumHandle {
  browser: Browser;
  executablePath: string;
  /** Whether the GPU flags were used. */
  gpu: boolean;
  /** The switches we passed (puppeteer adds its own defaults too). */
  args: string[];
  /** Temporary profile directory, removed by close()/kill(). */
  userDataDir: string;
  /** Closes the browser (kills it if it does not exit within 5 s) and removes the temp profile. Idempotent. */
  close(): Promise<void>;
  /** Synchronous SIGKILL of the browser's process group and profile removal, for exit paths that cannot wait. */
  kill(): void;
}

/**
 * Launches Chromium with WebGPU enabled and a fresh temporary profile.
 *
 * Puppeteer's own SIGINT/SIGTERM/SIGHUP handlers are turned off: they call process.exit() at once,
 * which would skip our cleanup (static servers, temp dirs); `runInBrowser`/`openBrowserSession`
 * install handlers that close everything, then re-raise. Puppeteer still kills the browser when
 * Node exits.
 */
export async function launchChromium(opts: LaunchChromiumOptions = {}): Promise<ChromiumHandle> {
  const executablePath = findChromium(opts.executablePath);
  const gpu = opts.gpu ?? gpuDetected();
  const headless = opts.headless ?? true;

  // The owner's pid in the name: a run killed before it could remove this folder leaves it behind,
  // and the next start removes it once that pid is gone (cli/leftovers.ts).
  const tempRoot = mkdtempSync(path.join(os.tmpdir(), `wgflow-chromium-${process.pid}-`));
  const userDataDir = path.join(tempRoot, 'profile');
  mkdirSync(userDataDir, { mode: 0o700 });
  const removeTemp = () => rmSync(tempRoot, { recursive: true, force: true, maxRetries: 3 });

  const env: Record<string, string | undefined> = { ...process.env };
  // Without a login session (servers, containers, CI) XDG_RUNTIME_DIR is unset and Chromium's
  // GLib/Mesa/D-Bus layers warn about it; a private 0700 dir in our temp root gives them one that
  // is cleaned up with the profile. (Chromium's remaining stderr chatter here is D-Bus "Failed to
  // connect to the bus" errors, harmless; puppeteer buffers stderr and we do not forward it.)
  if (!env.XDG_RUNTIME_DIR) {
    const xdg = path.join(tempRoot, 'xdg-runtime');
    mkdirSync(xdg, { mode: 0o700 });
    env.XDG_RUNTIME_DIR = xdg;
  }
  // Some GPU containers mount the NVIDIA Vulkan ICD outside the loader's search path (SPEC §1).
  const nvidiaIcd = '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json';
  if (gpu && !env.VK_DRIVER_FILES && !env.VK_ICD_FILENAMES && existsSync(nvidiaIcd) && !existsSync('/usr/share/vulkan/icd.d/nvidia_icd.json') && !existsSync('/etc/vulkan/icd.d/nvidia_icd.json')) {
    env.VK_DRIVER_FILES = nvidiaIcd;
  }

  const args = [...BASE_CHROMIUM_ARGS, ...(gpu ? GPU_CHROMIUM_ARGS : SOFTWARE_CHROMIUM_ARGS), ...(opts.extraArgs ?? [])];

  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath,
      headless,
      userDataDir,
      args,
      env,
      // DevTools over a pipe: no remote-debugging TCP port is opened at all.
      pipe: true,
      timeout: opts.launchTimeoutMs ?? 60_000,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      defaultViewport: null,
    });
  } catch (err) {
    removeTemp();
    throw new Error(`could not launch Chromium at ${executablePath} (gpu: ${gpu}): ${(err as Error).message}`);
  }

  let closed: Promise<void> | null = null;
  const kill = () => {
    const child = browser.process();
    if (child?.pid !== undefined && child.exitCode === null) {
      try {
        // Puppeteer starts Chromium detached, as a process-group leader: kill the renderer and
        // GPU processes with it.
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        try {
          child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    try {
      removeTemp();
    } catch {
      /* best effort: the OS cleans tmp eventually */
    }
  };

  return {
    browser,
    executablePath,
    gpu,
    args,
    userDataDir,
    kill,
    close() {
      closed ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            browser.close(),
            new Promise((resolve) => {
              timer = setTimeout(resolve, 5_000);
            }),
          ]);
        } catch {
          /* fall through to kill */
        } finally {
          clearTimeout(timer);
        }
        kill();
      })();
      return closed;
    },
  };
}
