import { readFileSync } from 'node:fs';
import type { Logger } from '../core/logger.ts';
import { formatEvidence, isReimageError } from '../core/reimage-error.ts';
import { ExitCode, exitCodeFor, isArgumentError } from './exit-codes.ts';
import { chooseDisplayMode, createProgressDisplay } from './progress-display.ts';
import type { Verb, VerbContext } from './verb.ts';
import { VERBS } from './verbs/index.ts';

function version(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return packageJson.version;
}

function usage(): string {
  const width = Math.max(...VERBS.map((verb) => verb.name.length));
  return [
    'reimage — replace the OS of a Linux machine in place, keeping its identity',
    '',
    'Usage: reimage VERB [ARGS…]      reimage VERB --help      reimage --version',
    '',
    'Verbs:',
    ...VERBS.map((verb) => `  ${verb.name.padEnd(width)}  ${verb.summary}`),
    '',
    'Exit codes: 0 ok; 2 invalid input and 3 refused — nothing was changed; 4 failed after',
    'the target started to change; 5 verification found differences; 1 internal error.',
    'See docs/exit-codes.md.',
  ].join('\n');
}

const stderrLogger: Logger = {
  info(message) {
    process.stderr.write(`${message}\n`);
  },
  warn(message) {
    process.stderr.write(`warning: ${message}\n`);
  },
};

function reportError(error: unknown, code: number, verb: string): void {
  if (isArgumentError(error)) {
    process.stderr.write(`reimage ${verb}: ${error.message}. See "reimage ${verb} --help".\n`);
  } else if (isReimageError(error)) {
    process.stderr.write(`reimage: error ${error.code}: ${error.message}\n`);
    for (const line of formatEvidence(error.evidence)) process.stderr.write(`  ${line}\n`);
    if (error.cause instanceof Error) process.stderr.write(`  cause: ${error.cause.message}\n`);
  } else if (error instanceof Error) {
    process.stderr.write(`reimage: internal error: ${error.stack ?? error.message}\n`);
  } else {
    process.stderr.write(`reimage: internal error: ${String(error)}\n`);
  }
  const state =
    code === ExitCode.invalidInput || code === ExitCode.refusedUntouched
      ? 'Nothing was changed.'
      : code === ExitCode.failedTouched
        ? 'The target had already started to change: it is incomplete.'
        : undefined;
  if (state !== undefined) process.stderr.write(`reimage: ${state} (exit ${code})\n`);
}

/** Runs the CLI and returns the exit code; `main` is the only caller of exitCodeFor. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${usage()}\n`);
    return first === undefined ? ExitCode.invalidInput : ExitCode.ok;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(`reimage ${version()} (node ${process.version})\n`);
    return ExitCode.ok;
  }
  const verb: Verb | undefined = VERBS.find((candidate) => candidate.name === first);
  if (verb === undefined) {
    process.stderr.write(`reimage: unknown verb "${first}".\n\n${usage()}\n`);
    return ExitCode.invalidInput;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${verb.help}\n`);
    return ExitCode.ok;
  }
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const context: VerbContext = {
    argv: rest,
    stdout: process.stdout,
    log: stderrLogger,
    signal: controller.signal,
    progressFor: ({ json }) => createProgressDisplay(process.stderr, chooseDisplayMode(process.stderr, json)),
  };
  try {
    return await verb.run(context);
  } catch (error) {
    const code = exitCodeFor(error);
    reportError(error, code, verb.name);
    return code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (import.meta.main) {
  process.exitCode = await runCli(process.argv.slice(2));
}
