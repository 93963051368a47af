import type { Logger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { quoteInput } from '../core/quote-input.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { sha256File } from './sha256-file.ts';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Verify before destroy: hashes the whole image file (compressed bytes, as given) and compares it
 * with `sha256`. Returns the digest checked (lowercase), or undefined when none was given (the
 * write is then unverified, and the log says so). A mismatch leaves the target untouched.
 */
export async function checkImageDigest(
  imagePath: string,
  sha256: string | undefined,
  o: { log: Logger; onProgress: OnProgress; signal: AbortSignal | undefined },
): Promise<string | undefined> {
  const expected = parseExpectedSha256(sha256);
  if (expected === undefined) {
    o.log.warn('the image was not verified: no --sha256 given');
    return undefined;
  }
  const actual = await sha256File(imagePath, {
    onProgress: o.onProgress,
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  });
  return compareImageDigest(imagePath, expected, actual, o.log);
}

/** The expected digest, lowercase; REIMAGE_IMAGE_DIGEST_INVALID when it is not one. */
export function parseExpectedSha256(sha256: string | undefined): string | undefined {
  if (sha256 === undefined) return undefined;
  const expected = sha256.trim().toLowerCase();
  if (!SHA256_HEX.test(expected)) {
    throw new ReimageError(
      'REIMAGE_IMAGE_DIGEST_INVALID',
      `${quoteInput(sha256)} is not a SHA-256 digest (64 hex digits). Give the digest "sha256sum IMAGE" prints (or "reimage image inspect IMAGE").`,
      {
        evidence: { field: 'sha256', actual: sha256 },
      },
    );
  }
  return expected;
}

/**
 * Compares the digest of the whole image file, taken elsewhere (decodeOnce hashes what it
 * decodes), with the expected one: REIMAGE_IMAGE_DIGEST_MISMATCH, or the digest checked.
 */
export function compareImageDigest(imagePath: string, expected: string, actual: string, log: Logger): string {
  if (actual !== expected) {
    throw new ReimageError(
      'REIMAGE_IMAGE_DIGEST_MISMATCH',
      `The image ${imagePath} does not match the expected SHA-256; the target was not touched. Fetch the image again.`,
      { evidence: { path: imagePath, expected, actual } },
    );
  }
  log.info(`image verified: sha256 ${actual}`);
  return expected;
}

/**
 * The image file was read again while it was written: if it no longer matches the digest checked
 * before, it changed in between, and the target holds something unverified (its LBA 0 is not
 * committed).
 */
export function refuseChangedImage(imagePath: string, checkedSha256: string | undefined, readSha256: string): void {
  if (checkedSha256 === undefined || readSha256 === checkedSha256) return;
  throw new ReimageError(
    'REIMAGE_IMAGE_CHANGED',
    `The image ${imagePath} changed while it was being written; the target holds an unverified image (its first sector is still the old one). Write it again.`,
    { evidence: { path: imagePath, expected: checkedSha256, actual: readSha256 }, targetTouched: true },
  );
}
