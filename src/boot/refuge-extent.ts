import { type ByteRange, mergeRanges } from '../disk/index.ts';

/**
 * One run of the refuge file's bytes: where it is in the file and where on the WHOLE disk
 * (FIEMAP's physical offset, which is from the filesystem's start, plus its partition's start).
 */
export interface RefugeExtent {
  readonly fileOffsetBytes: number;
  readonly diskOffsetBytes: number;
  readonly lengthBytes: number;
}

/**
 * Everything the recovery path reads or writes raw is aligned to this on the disk: a 4Kn disk and
 * O_DIRECT both work, and no logical block is shared with the old filesystem's own data (a 1 KiB
 * ext4 block next to the refuge would otherwise sit in the same 4 KiB as refuge bytes).
 */
export const REFUGE_ALIGNMENT_BYTES = 4096;

/**
 * Joins neighbours that continue each other both in the file and on the disk (FIEMAP splits an
 * ext4 file at every 32768-block unwritten extent, and where writing converted part of one), so
 * two readings of the same blocks compare equal however the filesystem cut them. Order kept. Pure.
 */
export function mergeAdjacentExtents(extents: readonly RefugeExtent[]): RefugeExtent[] {
  const merged: RefugeExtent[] = [];
  for (const extent of extents) {
    if (extent.lengthBytes <= 0) continue;
    const last = merged.at(-1);
    if (
      last !== undefined &&
      last.fileOffsetBytes + last.lengthBytes === extent.fileOffsetBytes &&
      last.diskOffsetBytes + last.lengthBytes === extent.diskOffsetBytes
    ) {
      merged[merged.length - 1] = { ...last, lengthBytes: last.lengthBytes + extent.lengthBytes };
    } else {
      merged.push({ ...extent });
    }
  }
  return merged;
}

/** [start, end) of `range` minus the sorted, merged `excluded`, in order. Pure. */
function subtract(startBytes: number, endBytes: number, excluded: readonly ByteRange[]): [number, number][] {
  const pieces: [number, number][] = [];
  let at = startBytes;
  for (const range of excluded) {
    const rangeEnd = range.offsetBytes + range.lengthBytes;
    if (rangeEnd <= at) continue;
    if (range.offsetBytes >= endBytes) break;
    if (range.offsetBytes > at) pieces.push([at, range.offsetBytes]);
    at = Math.max(at, rangeEnd);
    if (at >= endBytes) break;
  }
  if (at < endBytes) pieces.push([at, endBytes]);
  return pieces;
}

/**
 * The refuge extents the recovery path may use: each extent minus every excluded range (the new
 * image's map, new partitions mounted read-write before the commit), each piece trimmed inward to
 * REFUGE_ALIGNMENT_BYTES on the disk with its file offset moving by the same amount, pieces
 * shorter than that dropped. The input's (file) order is kept. Pure.
 */
export function usableExtents(extents: readonly RefugeExtent[], excluded: readonly ByteRange[]): RefugeExtent[] {
  const sortedExcluded = mergeRanges(excluded);
  const usable: RefugeExtent[] = [];
  for (const extent of extents) {
    const endBytes = extent.diskOffsetBytes + extent.lengthBytes;
    for (const [pieceStart, pieceEnd] of subtract(extent.diskOffsetBytes, endBytes, sortedExcluded)) {
      const alignedStart = Math.ceil(pieceStart / REFUGE_ALIGNMENT_BYTES) * REFUGE_ALIGNMENT_BYTES;
      const alignedEnd = Math.floor(pieceEnd / REFUGE_ALIGNMENT_BYTES) * REFUGE_ALIGNMENT_BYTES;
      if (alignedEnd - alignedStart < REFUGE_ALIGNMENT_BYTES) continue;
      usable.push({
        fileOffsetBytes: extent.fileOffsetBytes + (alignedStart - extent.diskOffsetBytes),
        diskOffsetBytes: alignedStart,
        lengthBytes: alignedEnd - alignedStart,
      });
    }
  }
  return usable;
}

/** Disk ranges minus `excluded`, trimmed inward to REFUGE_ALIGNMENT_BYTES (free space, before any file exists). Pure. */
export function usableRanges(ranges: readonly ByteRange[], excluded: readonly ByteRange[]): ByteRange[] {
  const asExtents = ranges.map((range) => ({
    fileOffsetBytes: range.offsetBytes,
    diskOffsetBytes: range.offsetBytes,
    lengthBytes: range.lengthBytes,
  }));
  return usableExtents(asExtents, excluded).map((extent) => ({
    offsetBytes: extent.diskOffsetBytes,
    lengthBytes: extent.lengthBytes,
  }));
}
