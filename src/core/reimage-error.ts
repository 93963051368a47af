import { ERROR_CODES, type ErrorCode } from './error-codes.ts';
import { escapeLine } from './quote-input.ts';

/**
 * The one error type of reimage. Callers branch on `code`, never on message text.
 *
 * `code` is one of the registered codes (src/core/error-codes.ts: an unregistered one fails
 * tsc); `message` says what was wrong and what to do; `evidence` carries the facts (file, field,
 * path, expected vs actual); `targetState` says what the error's thrower knows of the target (the
 * disk, or the root being restored into): untouched, changed, or unknown. The exit code and the
 * last line the CLI prints tell an operator that first of all (src/core/exit-codes.ts).
 */
export type Evidence = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>;

/** What is known of the target when an error happens. `unknown` is never a lie. */
export type TargetState = 'untouched' | 'changed' | 'unknown';

export interface ReimageErrorOptions {
  readonly evidence?: Evidence;
  readonly cause?: unknown;
  /** True once any byte of the target may have changed: the same as `targetState: 'changed'`. */
  readonly targetTouched?: boolean;
  /** What the thrower knows of the target; wins over `targetTouched`. */
  readonly targetState?: TargetState;
  /**
   * Lines shown under the message, one each (a plan's problems, one per field). The message
   * itself stays one line, so untrusted text inside it can never start a line of its own.
   */
  readonly details?: readonly string[];
}

/**
 * When the thrower says nothing: an error of a class that promises "untouched" (invalid input,
 * a refusal) is untouched, as it always was; for the others the thrower could not know.
 */
function defaultTargetState(code: ErrorCode): TargetState {
  const { exitClass } = ERROR_CODES[code];
  return exitClass === 'invalidInput' || exitClass === 'refusedUntouched' ? 'untouched' : 'unknown';
}

export class ReimageError extends Error {
  readonly code: ErrorCode;
  readonly evidence: Evidence;
  readonly targetState: TargetState;
  readonly details: readonly string[];

  constructor(code: ErrorCode, message: string, options: ReimageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReimageError';
    this.code = code;
    this.evidence = options.evidence ?? {};
    this.details = options.details ?? [];
    this.targetState =
      options.targetState ??
      (options.targetTouched === true
        ? 'changed'
        : options.targetTouched === false
          ? 'untouched'
          : defaultTargetState(code));
  }

  /** False only when the target is known to be untouched: anything else may have changed it. */
  get targetTouched(): boolean {
    return this.targetState !== 'untouched';
  }

  /** Transient (worth another attempt with the same input) or fatal, from the registry. */
  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  /** The same error with another target state (evidence, cause and stack kept). */
  withTargetState(targetState: TargetState): ReimageError {
    if (this.targetState === targetState) return this;
    const copy = new ReimageError(this.code, this.message, {
      evidence: this.evidence,
      cause: this.cause,
      targetState,
      details: this.details,
    });
    copy.stack = this.stack;
    return copy;
  }

  /** The same error, marked as having happened after the target started to change. */
  withTargetTouched(): ReimageError {
    return this.withTargetState('changed');
  }
}

export function isReimageError(value: unknown): value is ReimageError {
  return value instanceof ReimageError;
}

/** Node's own errors carry `code`, `path`, `syscall`; this narrows an unknown to one. */
export interface SystemError extends Error {
  code: string;
  path?: string;
  syscall?: string;
  errno?: number;
}

export function isSystemError(value: unknown): value is SystemError {
  return value instanceof Error && typeof (value as { code?: unknown }).code === 'string';
}

/** Renders evidence as `key: value` lines for the console and logs. */
export function formatEvidence(evidence: Evidence): string[] {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(evidence)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    // Evidence often quotes untrusted input (a path from a bundle, a field from a plan): no
    // control characters reach the operator's terminal or the log, and one line stays one line.
    lines.push(`${key}: ${escapeLine(text)}`);
  }
  return lines;
}
