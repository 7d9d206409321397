/**
 * The `wgflow` command line (SPEC §4): dispatch to the commands, and the exit-status contract:
 * 0 success, 1 the run failed (the message says why), 2 usage or input error (the message names
 * the bad flag or value and what is accepted).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError, suggest } from './args';
import { benchCommand, evalCommand, infoCommand, sampleCommand } from './commands';
import { MAIN_HELP } from './help';
import { exportCommand, importCommand } from './interop';
import { serveCommand } from './serve';
import { trainCommand } from './train';
import type { CliContext, CliStream } from './util';

const COMMANDS: Record<string, (argv: string[], ctx: CliContext) => Promise<number>> = {
  train: trainCommand,
  sample: sampleCommand,
  eval: evalCommand,
  bench: benchCommand,
  info: infoCommand,
  serve: serveCommand,
  export: exportCommand,
  import: importCommand,
};

export interface MainOptions {
  root: string;
  jobsOverride?: string;
  cwd?: string;
  stdout?: CliStream;
  stderr?: CliStream;
}

function version(root: string): string {
  try {
    return String(JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version ?? '?');
  } catch {
    return '?';
  }
}

/** Runs `wgflow <argv>`; resolves to the exit status. */
export async function main(argv: string[], opts: MainOptions): Promise<number> {
  const ctx: CliContext = {
    root: opts.root,
    jobsOverride: opts.jobsOverride,
    cwd: opts.cwd ?? process.cwd(),
    stdout: opts.stdout ?? process.stdout,
    stderr: opts.stderr ?? process.stderr,
    version: version(opts.root),
  };
  const [command, ...rest] = argv;
  if (command === undefined) {
    ctx.stderr.write(MAIN_HELP);
    return 2;
  }
  if (command === '-h' || command === '--help' || command === 'help') {
    if (rest[0] && COMMANDS[rest[0]]) return main([rest[0], '--help'], opts);
    ctx.stdout.write(MAIN_HELP);
    return 0;
  }
  if (command === '--version' || command === '-v') {
    ctx.stdout.write(`wgflow ${ctx.version}\n`);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    const names = Object.keys(COMMANDS);
    ctx.stderr.write(
      command.startsWith('-')
        ? `wgflow: expected a command before ${JSON.stringify(command)}; accepted: ${names.join(', ')} (wgflow --help)\n`
        : `wgflow: unknown command ${JSON.stringify(command)}${suggest(command, names)}; accepted: ${names.join(', ')} (wgflow --help)\n`,
    );
    return 2;
  }
  try {
    return await run(rest, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      ctx.stderr.write(`wgflow ${command}: ${e.message}\n`);
      return 2;
    }
    const err = e as Error;
    // Page errors carry the page's (source-mapped) stack in their message; others show their own.
    const text = err?.message?.includes('page stack:') ? err.message : (err?.stack ?? String(e));
    ctx.stderr.write(`wgflow ${command}: failed: ${text}\n`);
    return 1;
  }
}
