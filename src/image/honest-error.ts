import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { writeAborted } from './write-aborted.ts';

/** Where a write is, for the one error an interruption or failure turns into. */
export interface WriteState {
  /** Says when, as "… was interrupted <step>". */
  step: string;
  /** True once any byte of the target may have changed. */
  touched: boolean;
  /** Set once the target is open for writing: a failure from then on is a write failure. */
  targetPath: string | undefined;
}

/**
 * The one error a failed write surfaces as. An abort, wherever it lands (the digest check, the
 * counting pass, a decoder killed, a write, the read-back), is REIMAGE_WRITE_ABORTED saying
 * whether the target was touched; anything else keeps its code and gains `targetTouched` once
 * the target may have changed.
 */
export function honestError(e: unknown, signal: AbortSignal | undefined, state: WriteState): unknown {
  if (signal?.aborted === true) {
    if (e instanceof ReimageError && e.code === 'REIMAGE_WRITE_ABORTED')
      return state.touched ? e.withTargetTouched() : e;
    return writeAborted(state.touched, state.step, e);
  }
  let error: unknown = e;
  if (!(e instanceof ReimageError) && state.targetPath !== undefined) {
    error = new ReimageError(
      'REIMAGE_TARGET_WRITE_FAILED',
      `Writing ${state.targetPath} failed (${isSystemError(e) ? e.code : e instanceof Error ? e.message : String(e)}). ${
        state.touched
          ? 'The target holds part of the new image; its first sector (partition table, boot code) is written last, so it is still the old one unless this was that write.'
          : 'Nothing was written.'
      } Check the disk (dmesg) and write the image again.`,
      { evidence: { path: state.targetPath }, cause: e },
    );
  }
  return error instanceof ReimageError && state.touched ? error.withTargetTouched() : error;
}
