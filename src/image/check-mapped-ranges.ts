import { type Evidence, ReimageError } from '../core/reimage-error.ts';
import type { ByteRange } from '../disk/index.ts';
import { IMAGE_SECTOR_BYTES } from './image-format.ts';

/** The end of the last range: the first byte the armed write never needs. */
export function mappedEndBytes(ranges: readonly ByteRange[]): number {
  const last = ranges.at(-1);
  return last === undefined ? 0 : last.offsetBytes + last.lengthBytes;
}

function invalid(message: string, evidence: Evidence): ReimageError {
  return new ReimageError('REIMAGE_WRITE_RANGES_INVALID', `${message} Nothing was written.`, { evidence });
}

/**
 * Refuses a map the armed write cannot honour, before anything is opened. Pure. The ranges must be
 * whole 512-byte sectors (so a device with 512-byte logical blocks takes every byte through
 * O_DIRECT, and nothing shares a sector with an unmapped byte), sorted and not overlapping
 * (touching is fine), and the first one must hold the whole first logical block of the target,
 * because that block is returned for the commit, never written here, and the commit writes it
 * whole: a map that left part of it out would have the commit write bytes outside the map.
 * `durableBytes` counts bytes of the ranges in order, so it lies in [0, their total].
 */
export function checkMappedRanges(
  ranges: readonly ByteRange[],
  o: { durableBytes: number; checkpointBytes: number; firstBlockBytes: number },
): number {
  let totalBytes = 0;
  let previousEndBytes = 0;
  for (const [index, range] of ranges.entries()) {
    const { offsetBytes, lengthBytes } = range;
    if (!Number.isSafeInteger(offsetBytes) || !Number.isSafeInteger(lengthBytes) || offsetBytes < 0 || lengthBytes <= 0)
      throw invalid(
        `Range ${index} (offset ${offsetBytes}, length ${lengthBytes}) is not a whole, non-empty run of bytes.`,
        {
          index,
          offsetBytes,
          lengthBytes,
        },
      );
    if (offsetBytes % IMAGE_SECTOR_BYTES !== 0 || lengthBytes % IMAGE_SECTOR_BYTES !== 0)
      throw invalid(
        `Range ${index} (offset ${offsetBytes}, length ${lengthBytes}) is not whole ${IMAGE_SECTOR_BYTES}-byte sectors; the map must be.`,
        { index, offsetBytes, lengthBytes },
      );
    if (index > 0 && offsetBytes < previousEndBytes)
      throw invalid(
        `Range ${index} starts at byte ${offsetBytes}, before the previous range ends (${previousEndBytes}): the ranges must be sorted and merged.`,
        { index, offsetBytes, previousEndBytes },
      );
    previousEndBytes = offsetBytes + lengthBytes;
    totalBytes += lengthBytes;
  }
  const first = ranges[0];
  if (first === undefined || first.offsetBytes !== 0 || first.lengthBytes < o.firstBlockBytes)
    throw invalid(
      `The map must begin with the target's whole first logical block (bytes 0-${o.firstBlockBytes - 1}): it is held back for the commit, which writes it whole.`,
      {
        firstOffsetBytes: first?.offsetBytes,
        firstLengthBytes: first?.lengthBytes,
        firstBlockBytes: o.firstBlockBytes,
      },
    );
  if (!Number.isSafeInteger(o.durableBytes) || o.durableBytes < 0 || o.durableBytes > totalBytes)
    throw invalid(`The resume figure ${o.durableBytes} is not between 0 and the mapped bytes (${totalBytes}).`, {
      durableBytes: o.durableBytes,
      totalBytes,
    });
  if (!Number.isSafeInteger(o.checkpointBytes) || o.checkpointBytes <= 0)
    throw invalid(`checkpointBytes ${o.checkpointBytes} is not a positive whole number.`, {
      checkpointBytes: o.checkpointBytes,
    });
  return totalBytes;
}

/** REIMAGE_WRITE_RANGE_PAST_TARGET: the map reaches past the disk it is to be written on. */
export function rangesPastTarget(targetPath: string, targetSizeBytes: number, endBytes: number): ReimageError {
  return new ReimageError(
    'REIMAGE_WRITE_RANGE_PAST_TARGET',
    `The map ends at byte ${endBytes}, past the end of ${targetPath} (${targetSizeBytes} bytes): it was made for another image or disk. Nothing was written; map the image again for this disk.`,
    { evidence: { path: targetPath, targetSizeBytes, endBytes } },
  );
}

/**
 * REIMAGE_WRITE_RANGE_PAST_IMAGE: the map reaches past the image's decoded end. Known before the
 * write when the container records its size (raw, zstd, xz); otherwise found when the decoded
 * stream ends, and then the error is marked touched by the caller.
 */
export function rangesPastImage(imagePath: string, imageSizeBytes: number, endBytes: number): ReimageError {
  return new ReimageError(
    'REIMAGE_WRITE_RANGE_PAST_IMAGE',
    `The map ends at byte ${endBytes}, but the image ${imagePath} decodes to ${imageSizeBytes} bytes: the map is for another image. Map this image again (or fetch the image the map was made from).`,
    { evidence: { path: imagePath, imageSizeBytes, endBytes } },
  );
}
