/** A run of bytes on a disk or in an image: where it starts and how long it is. */
export interface ByteRange {
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/** Sorts ranges and merges those that overlap or touch; empty ranges are dropped. Pure. */
export function mergeRanges(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = ranges.filter((range) => range.lengthBytes > 0).sort((a, b) => a.offsetBytes - b.offsetBytes);
  const merged: ByteRange[] = [];
  for (const range of sorted) {
    const last = merged.at(-1);
    if (last !== undefined && range.offsetBytes <= last.offsetBytes + last.lengthBytes) {
      const endBytes = Math.max(last.offsetBytes + last.lengthBytes, range.offsetBytes + range.lengthBytes);
      merged[merged.length - 1] = { offsetBytes: last.offsetBytes, lengthBytes: endBytes - last.offsetBytes };
    } else {
      merged.push({ offsetBytes: range.offsetBytes, lengthBytes: range.lengthBytes });
    }
  }
  return merged;
}

/** Sum of the ranges' lengths (of merged ranges: the bytes covered). */
export function totalBytes(ranges: readonly ByteRange[]): number {
  return ranges.reduce((sum, range) => sum + range.lengthBytes, 0);
}
