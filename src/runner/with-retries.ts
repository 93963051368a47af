import type { Logger } from '../core/logger.ts';
import { isReimageError, ReimageError } from '../core/reimage-error.ts';
import type { Journal, StageName } from './journal.ts';

/** Marks anything thrown after the disk started to change, so the exit code says so. */
export function markTouched(error: unknown, code: string, what: string): ReimageError {
  if (isReimageError(error)) return error.withTargetTouched();
  return new ReimageError(code, `${what}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
    targetTouched: true,
  });
}

/**
 * Runs a stage that changes the disk, up to `maxAttempts` times, journaling each attempt before
 * it acts. With `refusalsAreFinal`, a refusal raised before the first byte ever changed
 * (`targetTouched` false on the first attempt: target mounted, too small) is rethrown at once
 * and stays untouched — retrying cannot change the answer. Once any attempt may have touched the
 * disk, every later error is marked touched, whatever it says.
 */
export async function withRetries<T>(o: {
  stage: StageName;
  maxAttempts: number;
  journal: Journal;
  log: Logger;
  signal: AbortSignal | undefined;
  failureCode: string;
  failureWhat: string;
  attempt: (attempt: number) => Promise<T>;
  afterFailure?: () => Promise<void>;
  refusalsAreFinal?: boolean;
}): Promise<{ value: T; attempts: number }> {
  let touchedBefore = false;
  for (let attempt = 1; ; attempt += 1) {
    o.journal.record(o.stage, 'start', attempt);
    try {
      const value = await o.attempt(attempt);
      o.journal.record(o.stage, 'done', attempt);
      return { value, attempts: attempt };
    } catch (error) {
      o.journal.record(o.stage, 'failed', attempt, isReimageError(error) ? error.code : String(error));
      await o.afterFailure?.();
      const refusal = isReimageError(error) && !error.targetTouched;
      if (o.refusalsAreFinal === true && refusal && !touchedBefore) throw error;
      touchedBefore = true;
      const marked = markTouched(error, o.failureCode, o.failureWhat);
      o.log.warn(`${o.stage} attempt ${attempt} of ${o.maxAttempts} failed: ${marked.code}: ${marked.message}`);
      if (attempt >= o.maxAttempts || o.signal?.aborted === true) throw marked;
    }
  }
}
