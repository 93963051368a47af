import { ReimageError } from '../core/reimage-error.ts';

/**
 * REIMAGE_WRITE_ABORTED, saying whether the target was touched: the writer knows, and the
 * operator needs that first. A touched target still has its old first sector (docs/adr/0205).
 */
export function writeAborted(targetTouched: boolean, when: string, cause?: unknown): ReimageError {
  const state = targetTouched
    ? 'the target was changed: it holds part of the new image, and its first sector (partition table, boot code) is still the old one. Write the image again'
    : 'the target was not touched';
  return new ReimageError('REIMAGE_WRITE_ABORTED', `The write was interrupted ${when}; ${state}.`, {
    evidence: { when },
    cause,
    targetTouched,
  });
}
