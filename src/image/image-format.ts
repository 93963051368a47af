import { open } from 'node:fs/promises';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';

export type ImageFormat = 'raw' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

/** Longest magic we look at, in bytes. */
export const MAGIC_PROBE_BYTES = 16;

/** A raw disk image usually starts with boot code or zeros; anything with a known magic is compressed. */
const MAGICS: ReadonlyArray<{ format: Exclude<ImageFormat, 'raw'>; bytes: readonly number[] }> = [
  { format: 'gzip', bytes: [0x1f, 0x8b, 0x08] },
  // "BZh" + block size digit 1-9, then the block magic 0x314159265359 (pi) or the end-of-stream magic.
  { format: 'bzip2', bytes: [0x42, 0x5a, 0x68] },
  { format: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd] },
];

/** Formats people do hand us by mistake: named in the refusal so the fix is obvious. */
const UNSUPPORTED_MAGICS: ReadonlyArray<{ name: string; bytes: readonly number[] }> = [
  { name: 'lz4', bytes: [0x04, 0x22, 0x4d, 0x18] },
  { name: 'zip', bytes: [0x50, 0x4b, 0x03, 0x04] },
  { name: '7z', bytes: [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c] },
  { name: 'qcow2', bytes: [0x51, 0x46, 0x49, 0xfb] },
  { name: 'lzma', bytes: [0x5d, 0x00, 0x00] },
];

/** The name of a known but unsupported container the bytes start with, if any. */
export function unsupportedFormatFromMagic(head: Uint8Array): string | undefined {
  return UNSUPPORTED_MAGICS.find(({ bytes }) => head.length >= bytes.length && bytes.every((b, i) => head[i] === b))
    ?.name;
}

/**
 * The format the first bytes of a file announce, or undefined if they announce none.
 * Pure, so it is tested as a table. A bzip2 header also needs a valid block-size digit, so a raw
 * image that happens to start with "BZh" is not mistaken for one.
 */
export function formatFromMagic(head: Uint8Array): Exclude<ImageFormat, 'raw'> | undefined {
  for (const { format, bytes } of MAGICS) {
    if (head.length < bytes.length) continue;
    if (!bytes.every((byte, index) => head[index] === byte)) continue;
    if (format === 'bzip2') {
      const digit = head[3];
      if (digit === undefined || digit < 0x31 || digit > 0x39) continue;
    }
    return format;
  }
  return undefined;
}

/** A raw disk image is a whole number of these: the sector of the disks images are made for. */
export const IMAGE_SECTOR_BYTES = 512;

/**
 * Compressed formats are recognised by magic bytes, never by file name. A file with no known
 * magic is raw when it looks like a disk (its size is a whole number of 512-byte sectors);
 * anything else is refused, because writing a mislabelled archive onto a disk destroys it for nothing.
 */
export async function detectImageFormat(path: string): Promise<ImageFormat> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    throw imageUnreadable(path, e);
  }
  try {
    const head = Buffer.alloc(MAGIC_PROBE_BYTES);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const stats = await handle.stat();
    const format = formatFromMagic(head.subarray(0, bytesRead));
    if (format !== undefined) return format;
    const unsupported = unsupportedFormatFromMagic(head.subarray(0, bytesRead));
    if (unsupported !== undefined) {
      throw new ReimageError(
        'REIMAGE_IMAGE_FORMAT_UNKNOWN',
        `${path} is a ${unsupported} file, which reimage does not write. Convert it to a raw image, optionally compressed with gzip, bzip2, xz or zstd.`,
        { evidence: { path, detected: unsupported, headHex: head.subarray(0, bytesRead).toString('hex') } },
      );
    }
    if (stats.size > 0 && stats.size % IMAGE_SECTOR_BYTES === 0) return 'raw';
    throw new ReimageError(
      'REIMAGE_IMAGE_FORMAT_UNKNOWN',
      `${path} is neither a gzip, bzip2, xz or zstd file nor a raw disk image (its size, ${stats.size} bytes, is not a whole number of ${IMAGE_SECTOR_BYTES}-byte sectors). Check that IMAGE is the right file.`,
      { evidence: { path, sizeBytes: stats.size, headHex: head.subarray(0, bytesRead).toString('hex') } },
    );
  } catch (e) {
    if (e instanceof ReimageError) throw e;
    throw imageUnreadable(path, e);
  } finally {
    await handle.close();
  }
}

export function imageUnreadable(path: string, cause: unknown): ReimageError {
  const reason = isSystemError(cause) ? cause.code : String(cause);
  return new ReimageError(
    'REIMAGE_IMAGE_UNREADABLE',
    `Cannot read the image ${path} (${reason}). Check the path and its permissions.`,
    {
      evidence: { path, reason },
      cause,
    },
  );
}
