import { readFileSync } from 'node:fs';
import { ExitCode, exitCodeFor } from '../core/exit-codes.ts';
import type { Logger } from '../core/logger.ts';
import { escapeLine } from '../core/quote-input.ts';
import { formatEvidence, isReimageError, type TargetState } from '../core/reimage-error.ts';
import { helpText } from './command-line.ts';
import { chooseDisplayMode, createProgressDisplay } from './progress-display.ts';
import { findCommand, type Verb, type VerbContext } from './verb.ts';
import { VERBS } from './verbs/index.ts';

/** Where a bug is reported; printed under the stack trace of an error reimage did not foresee. */
const REPORT_BUGS = 'This is a bug in reimage. Please report it with the command line and all of this output.';

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
    'Usage: reimage VERB [ARGS…]      reimage help VERB [SUB-VERB]      reimage --version',
    '',
    'Verbs:',
    ...VERBS.map((verb) => `  ${verb.name.padEnd(width)}  ${verb.summary}`),
    '',
    'Exit codes: 0 ok; 2 invalid input and 3 refused — nothing was changed; 4 failed after',
    'the target may have started to change; 5 verification found differences; 1 internal error;',
    '130 interrupted. Every failure ends with a line saying whether the target is untouched,',
    'changed or unknown. See docs/exit-codes.md.',
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

const STATE_WORDS: Record<TargetState, string> = {
  untouched: 'the target is untouched: nothing was changed',
  changed: 'the target was changed',
  unknown: 'the target may have been changed: check it before relying on it',
};

const EXIT_WORDS: Record<number, string> = {
  [ExitCode.internal]: 'internal error',
  [ExitCode.invalidInput]: 'invalid input',
  [ExitCode.refusedUntouched]: 'refused',
  [ExitCode.failedTouched]: 'failed',
  [ExitCode.verifyMismatch]: 'verification found differences',
  [ExitCode.interrupted]: 'interrupted',
};

/**
 * What to print for a failure, in one format for every verb, always ending with what is known
 * of the target: the error's own knowledge, or "untouched" for a command that never writes
 * one. A stack trace only for what reimage did not foresee (a bug), with how to report it.
 */
export function formatFailure(o: {
  error: unknown;
  exitCode: number;
  command: string;
  changesTarget: boolean;
  signalName: string | undefined;
}): string[] {
  const { error, exitCode, command } = o;
  const lines: string[] = [];
  if (o.signalName !== undefined) {
    // One line: the error's own words where it knows what it interrupted (the writer says where
    // it was and what the target holds), the signal alone otherwise.
    const what = isReimageError(error) ? ` ${escapeLine(error.message)}` : '';
    lines.push(`reimage ${command}: interrupted by ${o.signalName}.${what}`);
  } else if (isReimageError(error) && error.code === 'REIMAGE_CLI_USAGE') {
    lines.push(`reimage ${error.message}.`);
    const usageText = error.evidence.usage;
    if (typeof usageText === 'string') lines.push(`Usage: ${usageText}`);
    lines.push(`See "reimage help ${String(error.evidence.command ?? command)}".`);
  } else if (isReimageError(error)) {
    lines.push(`reimage: error ${error.code}: ${escapeLine(error.message)}`);
    for (const detail of error.details) lines.push(`  ${escapeLine(detail)}`);
    for (const line of formatEvidence(error.evidence)) lines.push(`  ${line}`);
    if (error.cause instanceof Error) lines.push(`  cause: ${escapeLine(error.cause.message)}`);
  } else {
    lines.push(
      `reimage ${command}: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    lines.push(REPORT_BUGS);
  }
  const state: TargetState = o.changesTarget ? (isReimageError(error) ? error.targetState : 'unknown') : 'untouched';
  lines.push(`reimage: ${EXIT_WORDS[exitCode] ?? 'error'}; ${STATE_WORDS[state]}. (exit ${exitCode})`);
  return lines;
}

function verbNamed(name: string | undefined): Verb | undefined {
  return VERBS.find((candidate) => candidate.name === name);
}

/** `reimage help`, `reimage help VERB`, `reimage help retain capture`. */
function help(words: readonly string[]): number {
  const [name, ...rest] = words;
  if (name === undefined) {
    process.stdout.write(`${usage()}\n`);
    return ExitCode.ok;
  }
  const verb = verbNamed(name);
  if (verb === undefined) {
    process.stderr.write(`reimage help: unknown verb "${name}".\n\n${usage()}\n`);
    return ExitCode.invalidInput;
  }
  const found = rest.length > 0 || verb.commands.length === 1 ? findCommand(verb, rest) : undefined;
  if (found === undefined && rest.length > 0) {
    process.stderr.write(`reimage help: "${verb.name}" has no sub-verb "${rest[0]}".\n\n${verb.help}\n`);
    return ExitCode.invalidInput;
  }
  process.stdout.write(`${found === undefined ? verb.help : helpText(found.command.spec)}\n`);
  return ExitCode.ok;
}

/** Runs the CLI and returns the exit code; `main` is the only caller of exitCodeFor. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(`${usage()}\n`);
    return ExitCode.invalidInput;
  }
  if (first === '--help' || first === '-h' || first === 'help') return help(rest);
  if (first === '--version' || first === '-V') {
    process.stdout.write(`reimage ${version()} (node ${process.version})\n`);
    return ExitCode.ok;
  }
  const verb = verbNamed(first);
  if (verb === undefined) {
    process.stderr.write(`reimage: unknown verb "${first}".\n\n${usage()}\n`);
    process.stderr.write(`reimage: invalid input; ${STATE_WORDS.untouched}. (exit ${ExitCode.invalidInput})\n`);
    return ExitCode.invalidInput;
  }
  const helpAt = rest.findIndex((word) => word === '--help' || word === '-h');
  if (helpAt !== -1)
    return help([
      verb.name,
      ...rest
        .slice(0, helpAt)
        .filter((word) => !word.startsWith('-'))
        .slice(0, 1),
    ]);

  const found = findCommand(verb, rest);
  const controller = new AbortController();
  let signalName: string | undefined;
  const onSignal = (name: NodeJS.Signals): void => {
    signalName = name;
    controller.abort();
  };
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
    // A signal decides the exit code whatever the verb made of the abort; the target's state
    // still comes from the error (the writer knows whether it had started).
    const exitCode = signalName === undefined ? exitCodeFor(error) : ExitCode.interrupted;
    const lines = formatFailure({
      error,
      exitCode,
      command: found?.command.spec.command ?? verb.name,
      changesTarget: found?.command.spec.changesTarget ?? false,
      signalName,
    });
    process.stderr.write(`${lines.join('\n')}\n`);
    return exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

if (import.meta.main) {
  process.exitCode = await runCli(process.argv.slice(2));
}
