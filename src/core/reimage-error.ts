/**
 * The one error type of reimage. Callers branch on `code`, never on message text.
 *
 * `code` is stable (`REIMAGE_<AREA>_<WHAT>`); `message` says what was wrong and what to do;
 * `evidence` carries the facts (file, field, path, expected vs actual); `targetTouched` says
 * whether the disk (or target file) had already started to change when the error happened —
 * the exit code tells an operator that first of all (see src/cli/exit-codes.ts).
 */
export type Evidence = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>;

export interface ReimageErrorOptions {
  readonly evidence?: Evidence;
  readonly cause?: unknown;
  /** True once any byte of the target disk may have changed. Default false. */
  readonly targetTouched?: boolean;
}

export class ReimageError extends Error {
  readonly code: string;
  readonly evidence: Evidence;
  readonly targetTouched: boolean;

  constructor(code: string, message: string, options: ReimageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReimageError';
    this.code = code;
    this.evidence = options.evidence ?? {};
    this.targetTouched = options.targetTouched ?? false;
  }

  /** The same error, marked as having happened after the target started to change. */
  withTargetTouched(): ReimageError {
    if (this.targetTouched) return this;
    const copy = new ReimageError(this.code, this.message, {
      evidence: this.evidence,
      cause: this.cause,
      targetTouched: true,
    });
    copy.stack = this.stack;
    return copy;
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
    lines.push(`${key}: ${text}`);
  }
  return lines;
}
