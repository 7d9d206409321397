/**
 * Runs a task (cli/tasks.ts) in Node (Dawn, in this process) or in headless Chromium (the page
 * entry page/entry.ts, bundled on demand into node_modules/.cache/wgflow/). Node only.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from './args';
import { buildCached, cacheDir, shortHash } from './build.mjs';
import type { JobsModule } from '../train/methods';
import type { TaskArgs, TaskMessage } from './tasks';

export interface RunnerContext {
  root: string;
  /** WGFLOW_JOBS test seam: a module replacing cli/jobs.ts. */
  jobsOverride?: string;
}

export interface BrowserOptions {
  chromium?: string;
  gpu?: boolean;
}

export interface RunTaskOptions extends BrowserOptions {
  onMessage: (m: TaskMessage) => void;
  /** Page console lines (browser runtime). */
  onLog?: (line: string) => void;
  /** Node runtime: passed to the trainer (Ctrl-C). The browser runtime closes the browser instead. */
  signal?: AbortSignal;
  /** Called once the browser is about to start (to tell the user what is going on). */
  onBrowserStart?: (executable: string, gpu: boolean) => void;
}

/**
 * Environment for Dawn in this process, set before the first adapter request (native code reads
 * it then): engine/dawn-env.ts says which variables and why. The engine sets them too; doing it
 * here first keeps it before anything else of the trainers loads.
 */
async function prepareNodeEnvironment(): Promise<void> {
  const { prepareDawnEnvironment } = await import('../engine/dawn-env');
  prepareDawnEnvironment();
}

let jobsPromise: Promise<JobsModule> | null = null;

/** The trainer registry for the Node runtime (bundled into the CLI by bin/wgflow.js). */
export function loadJobs(): Promise<JobsModule> {
  // A dynamic import keeps the trainers (and the engine) out of the start-up path of --help and
  // usage errors; esbuild still bundles it.
  jobsPromise ??= import('./jobs') as Promise<JobsModule>;
  return jobsPromise;
}

/**
 * The page bundle for `entry` (relative to root): in a checkout, built when stale; in an installed
 * package (no sources), the prebuilt dist/page/<name>.js (scripts/build.mjs).
 */
export async function pageBundle(ctx: RunnerContext, entry: string): Promise<string> {
  const name = path.basename(entry).replace(/\.ts$/, '');
  if (!existsSync(path.join(ctx.root, entry))) {
    const prebuilt = path.join(ctx.root, 'dist', 'page', `${name}.js`);
    if (!existsSync(prebuilt)) throw new Error(`${prebuilt} is missing: this package was not built (npm run build)`);
    return prebuilt;
  }
  return buildCached({
    root: ctx.root,
    entry: path.join(ctx.root, entry),
    outfile: path.join(cacheDir(ctx.root), `page-${name}-${shortHash(ctx.root, ctx.jobsOverride ?? '')}.js`),
    platform: 'browser',
    jobsOverride: ctx.jobsOverride,
  });
}

/**
 * The Chromium to launch (--chromium, else WGFLOW_CHROMIUM, else the usual paths). A bad --chromium
 * or WGFLOW_CHROMIUM is an input error (UsageError, exit 2); no Chromium at all is not.
 */
export async function resolveChromium(explicit?: string): Promise<string> {
  const { findChromium } = await import('../browser/chromium');
  try {
    return findChromium(explicit);
  } catch (e) {
    const msg = (e as Error).message;
    if (explicit) throw new UsageError(`--chromium: ${msg}`);
    if (msg.startsWith('WGFLOW_CHROMIUM=')) throw new UsageError(msg);
    throw e;
  }
}

export async function runTaskIn<T>(ctx: RunnerContext, args: TaskArgs, opts: RunTaskOptions): Promise<{ result: T }> {
  if (args.runtime === 'node') {
    await prepareNodeEnvironment();
    const jobs = await loadJobs();
    const { runTask } = await import('./tasks');
    const result = (await runTask(jobs, args, opts.onMessage, opts.signal)) as T;
    return { result };
  }
  const bundle = await pageBundle(ctx, 'page/entry.ts');
  const { runInBrowser } = await import('../browser/run-in-page');
  const { gpuDetected } = await import('../browser/chromium');
  const executable = await resolveChromium(opts.chromium);
  const gpu = opts.gpu ?? gpuDetected();
  opts.onBrowserStart?.(executable, gpu);
  const run = runInBrowser<T>(bundle, {
    bundled: true,
    args,
    chromium: executable,
    gpu,
    timeoutMs: 0,
    onMessage: (m) => opts.onMessage(m as TaskMessage),
    onLog: opts.onLog,
    // Someone on this machine (or a web page) posted to the run's report endpoint without the
    // page's secret: refused and dropped by the server; say so, since it is worth knowing.
    onRefusedReport: (reason) => process.stderr.write(`wgflow: refused a report that did not come from the run's page (${reason}); the run goes on\n`),
  });
  try {
    return { result: (await run).result };
  } catch (e) {
    // "<cache path of the bundle> threw in the browser: …" → name the page entry instead.
    if (e instanceof Error && e.message.startsWith(bundle)) e.message = `the page (page/entry.ts, ${args.command})${e.message.slice(bundle.length)}`;
    throw e;
  }
}
