import { ERROR_CODES } from './error-codes.ts';
import { isReimageError, type TargetState } from './reimage-error.ts';

/**
 * The one place where errors become exit codes. The first thing an operator needs from an
 * exit code is whether the target was touched: 2 and 3 promise it was not. It lives in core/
 * because the initramfs /init (src/initramfs/init-script.ts) words its messages by it too.
 * docs/exit-codes.md is generated from this table and the registry (src/core/error-codes.ts).
 */
export const ExitCode = {
  ok: 0,
  /** A bug or an error reimage did not foresee; the target state printed with it is unknown unless the verb never writes. */
  internal: 1,
  /** The input is wrong (arguments, a file named that is not there, plan, list file); nothing was changed. */
  invalidInput: 2,
  /** Refused or failed before any change to the target (bad digest, target too small, mounted, missing path). */
  refusedUntouched: 3,
  /** Failed after the target may have started to change: it is incomplete or unknown. */
  failedTouched: 4,
  /** Verification found differences: the image read back wrong, or the restored state differs (the message says which). */
  verifyMismatch: 5,
  /** Stopped by a signal (Ctrl-C, SIGTERM); the message says whether the target changed. */
  interrupted: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError';
}

export function exitCodeFor(error: unknown): ExitCodeValue {
  if (!isReimageError(error)) return isAbortError(error) ? ExitCode.interrupted : ExitCode.internal;
  const { exitClass } = ERROR_CODES[error.code];
  if (exitClass === 'interrupted') return ExitCode.interrupted;
  if (exitClass === 'verifyMismatch') return ExitCode.verifyMismatch;
  if (error.targetTouched || exitClass === 'failedTouched') return ExitCode.failedTouched;
  return exitClass === 'invalidInput' ? ExitCode.invalidInput : ExitCode.refusedUntouched;
}

/** What an error knows of the target; an error that is not ours (a bug) cannot know. */
export function targetStateOf(error: unknown): TargetState {
  return isReimageError(error) ? error.targetState : 'unknown';
}
