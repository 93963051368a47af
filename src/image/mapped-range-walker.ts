import type { ByteRange } from '../disk/index.ts';

/** A run of decoded image bytes that lies in the map: where it goes and where it is in the map. */
export interface MappedPiece {
  /** Where on the disk (= in the image). */
  readonly diskOffsetBytes: number;
  /** Where in the map: bytes of the ranges, in order, before this one. */
  readonly mappedOffsetBytes: number;
  readonly lengthBytes: number;
}

/**
 * Walks sorted, non-overlapping ranges along the decoded image, which arrives in order: for each
 * decoded run, the pieces of it the map holds. Pure (no I/O); the position only moves forward.
 */
export class MappedRangeWalker {
  readonly #ranges: readonly ByteRange[];
  /** Mapped bytes before each range. */
  readonly #mappedBefore: number[];
  #index = 0;

  constructor(ranges: readonly ByteRange[]) {
    this.#ranges = ranges;
    let sum = 0;
    this.#mappedBefore = ranges.map((range) => {
      const before = sum;
      sum += range.lengthBytes;
      return before;
    });
  }

  /** The pieces of image bytes [startBytes, startBytes + lengthBytes) that the map holds, in order. */
  piecesOf(startBytes: number, lengthBytes: number): MappedPiece[] {
    const endBytes = startBytes + lengthBytes;
    const pieces: MappedPiece[] = [];
    for (;;) {
      const range = this.#ranges[this.#index];
      if (range === undefined || range.offsetBytes >= endBytes) break;
      const rangeEndBytes = range.offsetBytes + range.lengthBytes;
      if (rangeEndBytes <= startBytes) {
        this.#index++;
        continue;
      }
      const fromBytes = Math.max(startBytes, range.offsetBytes);
      const toBytes = Math.min(endBytes, rangeEndBytes);
      pieces.push({
        diskOffsetBytes: fromBytes,
        mappedOffsetBytes: (this.#mappedBefore[this.#index] ?? 0) + (fromBytes - range.offsetBytes),
        lengthBytes: toBytes - fromBytes,
      });
      if (rangeEndBytes > endBytes) break;
      this.#index++;
    }
    return pieces;
  }
}

/**
 * Where on the disk a resumed write starts: the disk offset of mapped byte `durableBytes`, moved
 * back to an `alignBytes` boundary inside its range (rewriting a few durable bytes with the same
 * bytes is harmless, and the resumed first write then stays whole units for O_DIRECT). The end of
 * the last range when everything is durable. Pure.
 */
export function resumeOffsetBytes(ranges: readonly ByteRange[], durableBytes: number, alignBytes: number): number {
  let mappedBefore = 0;
  for (const range of ranges) {
    if (durableBytes < mappedBefore + range.lengthBytes) {
      const diskBytes = range.offsetBytes + Math.max(0, durableBytes - mappedBefore);
      return Math.max(range.offsetBytes, diskBytes - (diskBytes % alignBytes));
    }
    mappedBefore += range.lengthBytes;
  }
  const last = ranges.at(-1);
  return last === undefined ? 0 : last.offsetBytes + last.lengthBytes;
}
