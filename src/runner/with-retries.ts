import { setTimeout as sleep } from 'node:timers/promises';
import type { ErrorCode } from '../core/error-codes.ts';
import { isAbortError } from '../core/exit-codes.ts';
import type { Logger } from '../core/logger.ts';
import { isReimageError, ReimageError } from '../core/reimage-error.ts';
import type { StageName } from './journal.ts';

/** Marks anything thrown after the disk started to change, so the exit code says so. */
export function markTouched(error: unknown, code: ErrorCode, what: string): ReimageError {
  if (isReimageError(error)) return error.withTargetTouched();
  return new ReimageError(code, `${what}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
    targetTouched: true,
  });
}

/**
 * The error for a stage stopped by a signal: it keeps the stage's own interrupt error (the
 * writer's REIMAGE_WRITE_ABORTED knows whether it touched the target), and otherwise says the
 * run was interrupted, with what the runner knows of the disk.
 */
function interrupted(error: unknown, stage: string, touchedBefore: boolean): ReimageError {
  if (isReimageError(error) && error.code === 'REIMAGE_WRITE_ABORTED') {
    return touchedBefore ? error.withTargetTouched() : error;
  }
  // The write and restore stages change the disk as soon as they start; an interrupt that
  // does not say otherwise may have come after their first byte.
  const targetState = touchedBefore ? 'changed' : isReimageError(error) ? error.targetState : 'unknown';
  const advice =
    targetState === 'untouched'
      ? 'Nothing was written; the old system is intact.'
      : 'The disk may hold part of the new system: run the plan again to finish it.';
  return new ReimageError('REIMAGE_RUN_INTERRUPTED', `The ${stage} stage was interrupted. ${advice}`, {
    evidence: { stage },
    cause: error,
    targetState,
  });
}

/** A function, not an inline test: TypeScript would keep the first check's narrowing for later ones. */
function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

/** Where withRetries notes each attempt before it acts: the plain run's journal, or nothing. */
export interface AttemptJournal<S extends string> {
  record(stage: S, event: 'start' | 'done' | 'failed', attempt: number, detail?: string): void;
}

/**
 * Runs a stage that changes the disk, up to `maxAttempts` times, journaling each attempt before
 * it acts (when given a journal: the armed run's steps keep theirs on the disk and resume from
 * it). The policy, in order:
 * - an abort (Ctrl-C, SIGTERM, the caller's signal) stops at once: no further attempt starts;
 * - with `refusalsAreFinal`, a refusal raised before the first byte ever changed
 *   (`targetTouched` false on the first attempt: target mounted, too small) is rethrown at once
 *   and stays untouched — retrying cannot change the answer;
 * - a fatal error (`retryable` false in src/core/error-codes.ts: a wrong digest, a failed
 *   after-hook) is not retried either: the same input would fail the same way;
 * - anything else (transient errors, and errors that are not ours) is retried.
 * Once any attempt may have touched the disk, every later error is marked touched, whatever it says.
 */
export async function withRetries<T, S extends string = StageName>(o: {
  stage: S;
  maxAttempts: number;
  journal?: AttemptJournal<S> | undefined;
  log: Logger;
  signal: AbortSignal | undefined;
  failureCode: ErrorCode;
  failureWhat: string;
  attempt: (attempt: number) => Promise<T>;
  afterFailure?: () => Promise<void>;
  refusalsAreFinal?: boolean;
  /** How long to wait before attempt n+1 after attempt n failed (default: at once). A transient fault may pass. */
  retryDelayMs?: (failedAttempt: number) => number;
}): Promise<{ value: T; attempts: number }> {
  let touchedBefore = false;
  for (let attempt = 1; ; attempt += 1) {
    // Later attempts need no check here: the catch below stops the loop on an abort.
    if (attempt === 1 && o.signal !== undefined && isAborted(o.signal))
      throw interrupted(o.signal.reason, o.stage, false);
    o.journal?.record(o.stage, 'start', attempt);
    try {
      const value = await o.attempt(attempt);
      o.journal?.record(o.stage, 'done', attempt);
      return { value, attempts: attempt };
    } catch (error) {
      o.journal?.record(o.stage, 'failed', attempt, isReimageError(error) ? error.code : String(error));
      await o.afterFailure?.();
      if (isAborted(o.signal) || isAbortError(error)) throw interrupted(error, o.stage, touchedBefore);
      const refusal = isReimageError(error) && !error.targetTouched;
      if (o.refusalsAreFinal === true && refusal && !touchedBefore) throw error;
      touchedBefore = true;
      const marked = markTouched(error, o.failureCode, o.failureWhat);
      o.log.warn(`${o.stage} attempt ${attempt} of ${o.maxAttempts} failed: ${marked.code}: ${marked.message}`);
      if (!marked.retryable) {
        o.log.warn(`${o.stage}: ${marked.code} is not transient; not trying again`);
        throw marked;
      }
      if (attempt >= o.maxAttempts) throw marked;
      const delayMs = o.retryDelayMs?.(attempt) ?? 0;
      if (delayMs > 0) {
        o.log.warn(
          `${o.stage}: trying again in ${(delayMs / 1000).toFixed(0)} s (attempt ${attempt + 1} of ${o.maxAttempts})`,
        );
        try {
          await sleep(delayMs, undefined, o.signal === undefined ? {} : { signal: o.signal });
        } catch (aborted) {
          throw interrupted(aborted, o.stage, true);
        }
      }
    }
  }
}
