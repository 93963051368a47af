import { isReimageError, isSystemError } from '../core/reimage-error.ts';

/**
 * The one place where errors become exit codes. The first thing an operator needs from an
 * exit code is whether the disk (the target) was touched: 2 and 3 promise it was not.
 * Documented in docs/exit-codes.md; keep both in step.
 */
export const ExitCode = {
  ok: 0,
  /** A bug or an error reimage did not foresee; the log says whether the target changed. */
  internal: 1,
  /** The input is wrong (arguments, plan, list file); nothing was changed. */
  invalidInput: 2,
  /** Refused or failed before any change to the target (bad digest, target too small, mounted, missing path). */
  refusedUntouched: 3,
  /** Failed after the target started to change: it is incomplete. */
  failedTouched: 4,
  /** Finished, but verification found differences. */
  verifyMismatch: 5,
  /** Stopped by a signal (Ctrl-C); see the log for whether the target changed. */
  interrupted: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Codes whose cause is the operator's input. Anything else that is untouched is a refusal. */
const INVALID_INPUT_CODES = new Set([
  'REIMAGE_CLI_USAGE',
  'REIMAGE_PLAN_INVALID',
  'REIMAGE_PLAN_UNREADABLE',
  'REIMAGE_IMAGE_DIGEST_INVALID',
  'REIMAGE_RETAIN_LIST_INVALID',
  'REIMAGE_RETAIN_LIST_UNREADABLE',
]);

/** Codes that mean "done, but what is there is not what should be". */
const VERIFY_MISMATCH_CODES = new Set([
  'REIMAGE_RETAIN_VERIFY_MISMATCH',
  'REIMAGE_WRITE_VERIFY_MISMATCH',
  'REIMAGE_DEMO_IDENTITY_MISMATCH',
]);

/** Codes that mean the operator (or a signal) stopped the run. */
const INTERRUPTED_CODES = new Set(['REIMAGE_WRITE_ABORTED']);

/** node:util parseArgs rejects unknown options and missing values with these codes. */
export function isArgumentError(error: unknown): error is Error & { code: string } {
  return isSystemError(error) && error.code.startsWith('ERR_PARSE_ARGS_');
}

export function exitCodeFor(error: unknown): ExitCodeValue {
  if (error instanceof Error && error.name === 'AbortError') return ExitCode.interrupted;
  if (isArgumentError(error)) return ExitCode.invalidInput;
  if (isReimageError(error) && INTERRUPTED_CODES.has(error.code)) return ExitCode.interrupted;
  if (!isReimageError(error)) return ExitCode.internal;
  if (VERIFY_MISMATCH_CODES.has(error.code)) return ExitCode.verifyMismatch;
  if (error.targetTouched) return ExitCode.failedTouched;
  if (INVALID_INPUT_CODES.has(error.code)) return ExitCode.invalidInput;
  return ExitCode.refusedUntouched;
}
