import type { Logger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';

/** What a verb gets from the CLI shell: where to write, how to log, how to show progress. */
export interface VerbContext {
  /** Arguments after the verb (and sub-verb) name. */
  readonly argv: readonly string[];
  readonly stdout: NodeJS.WritableStream;
  readonly log: Logger;
  /** Renders progress the way the operator asked (bar, plain lines or JSON). */
  readonly progressFor: (options: { json: boolean }) => OnProgress & { done(): void };
  readonly signal: AbortSignal;
}

/** One verb of the `reimage` command. Returns the exit code for a success (0). */
export interface Verb {
  readonly name: string;
  /** One line for `reimage --help`. */
  readonly summary: string;
  /** The full text for `reimage VERB --help`, with an example. */
  readonly help: string;
  run(context: VerbContext): Promise<number>;
}
