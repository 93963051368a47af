import type { Logger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { type CommandSpec, helpText, type ParsedArguments, parseCommandLine, usageLine } from './command-line.ts';

/** What a command gets from the CLI shell: where to write, how to log, how to show progress. */
export interface VerbContext {
  /** Arguments after the verb name (the sub-verb, if any, first). */
  readonly argv: readonly string[];
  readonly stdout: NodeJS.WritableStream;
  readonly log: Logger;
  /** Renders progress the way the operator asked (bar, plain lines or JSON). */
  readonly progressFor: (options: { json: boolean }) => OnProgress & { done(): void };
  readonly signal: AbortSignal;
}

/** One command: a verb, or one sub-verb of a verb (`retain capture`), with its spec. */
export interface Command {
  readonly spec: CommandSpec;
  run(context: VerbContext, args: ParsedArguments): Promise<number>;
}

/** One verb of the `reimage` command. Returns the exit code for a success (0). */
export interface Verb {
  readonly name: string;
  /** One line for `reimage --help`. */
  readonly summary: string;
  /** Its commands: one whose spec.command is the verb's name, or its sub-verbs. */
  readonly commands: readonly Command[];
  /** The full text for `reimage help VERB`, with an example; made from the specs. */
  readonly help: string;
  /** Finds the command `argv` names, parses its arguments and runs it. */
  run(context: VerbContext): Promise<number>;
}

/** Which command argv names (the verb itself, or a sub-verb) and the words left for it. */
export function findCommand(
  verb: Pick<Verb, 'name' | 'commands'>,
  argv: readonly string[],
): { command: Command; rest: readonly string[] } | undefined {
  const own = verb.commands.find((command) => command.spec.command === verb.name);
  if (own !== undefined) return { command: own, rest: argv };
  const [sub, ...rest] = argv;
  const command = verb.commands.find((candidate) => candidate.spec.command === `${verb.name} ${sub}`);
  return command === undefined ? undefined : { command, rest };
}

export function defineVerb(o: { name: string; summary: string; commands: readonly Command[] }): Verb {
  const verb: Verb = {
    ...o,
    help: o.commands.map((command) => helpText(command.spec)).join('\n\n'),
    async run(context) {
      const found = findCommand(verb, context.argv);
      if (found === undefined) {
        const [sub] = context.argv;
        throw new ReimageError(
          'REIMAGE_CLI_USAGE',
          sub === undefined
            ? `${o.name}: say which (${subNames(o)})`
            : `${o.name}: unknown sub-verb "${sub}" (${subNames(o)})`,
          {
            evidence: {
              command: o.name,
              usage: o.commands.map((command) => usageLine(command.spec)).join('\n       '),
            },
          },
        );
      }
      return found.command.run(context, parseCommandLine(found.command.spec, found.rest));
    },
  };
  return verb;
}

function subNames(o: { name: string; commands: readonly Command[] }): string {
  return o.commands.map((command) => command.spec.command.slice(o.name.length + 1)).join(', ');
}
