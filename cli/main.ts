/**
 * The `wgflow` command line (SPEC §4): dispatch to the commands, and the exit-status contract:
 * 0 success, 1 the run failed (the message says why), 2 usage or input error (the message names
 * the bad flag or value and what is accepted). Stack traces are printed for internal errors only,
 * or for every error with --debug (anywhere on the command line).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { quote } from '../io/quote';
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
  // --debug, anywhere: usage and input errors also print their stack (internal errors always do).
  const debug = argv.includes('--debug');
  const [command, ...rest] = argv.filter((a) => a !== '--debug');
  if (command === undefined) {
    ctx.stderr.write(MAIN_HELP);
    return 2;
  }
  if (command === '-h' || command === '--help' || command === 'help') {
    if (rest[0] && Object.hasOwn(COMMANDS, rest[0])) return main([rest[0], '--help'], opts);
    ctx.stdout.write(MAIN_HELP);
    return 0;
  }
  if (command === '--version' || command === '-v') {
    ctx.stdout.write(`wgflow ${ctx.version}\n`);
    return 0;
  }
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!run) {
    const names = Object.keys(COMMANDS);
    ctx.stderr.write(
      command.startsWith('-')
        ? `wgflow: expected a command before ${quote(command, 60)}; accepted: ${names.join(', ')} (wgflow --help)\n`
        : `wgflow: unknown command ${quote(command, 60)}${command.length <= 100 ? suggest(command, names) : ''}; accepted: ${names.join(', ')} (wgflow --help)\n`,
    );
    return 2;
  }
  try {
    return await run(rest, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      ctx.stderr.write(`wgflow ${command}: ${e.message}\n${debug && e.stack ? `${e.stack}\n` : ''}`);
      return 2;
    }
    const err = e as Error;
    // Page errors carry the page's (source-mapped) stack in their message; others show their own.
    const text = err?.message?.includes('page stack:') ? err.message : (err?.stack ?? String(e));
    ctx.stderr.write(`wgflow ${command}: failed: ${text}\n`);
    return 1;
  }
}
