import { ReimageError } from '../core/reimage-error.ts';
import type { ByteRange } from '../disk/index.ts';
import type { BlockMap } from '../image/index.ts';
import type { DiskMap } from './disk-map.ts';

/**
 * The first run of bytes our map says is allocated that the given bmap does not map, or
 * undefined when the bmap covers them all. A bmap may map more (bmaptool maps by holes, so
 * allocated-but-free blocks and zero runs written out stay in it); it may never map less, or
 * the armed write would skip a file's data. Pure.
 */
export function findUncovered(map: DiskMap, bmap: BlockMap): ByteRange | undefined {
  let index = 0;
  for (const range of map.ranges) {
    let atBytes = range.offsetBytes;
    const endBytes = range.offsetBytes + range.lengthBytes;
    while (atBytes < endBytes) {
      // Skip bmap ranges that end at or before `atBytes` (both lists are sorted).
      let covering = bmap.ranges[index];
      while (covering !== undefined && covering.offsetBytes + covering.lengthBytes <= atBytes) {
        index++;
        covering = bmap.ranges[index];
      }
      if (covering === undefined || covering.offsetBytes > atBytes) {
        const gapEndBytes = Math.min(endBytes, covering?.offsetBytes ?? endBytes);
        return { offsetBytes: atBytes, lengthBytes: gapEndBytes - atBytes };
      }
      atBytes = Math.min(endBytes, covering.offsetBytes + covering.lengthBytes);
    }
  }
  return undefined;
}

/** Refuses a bmap that would skip bytes the image's filesystems hold, naming the first of them. */
export function checkBlockMap(map: DiskMap, bmap: BlockMap, bmapPath = 'the block map'): void {
  if (bmap.imageSizeBytes !== map.imageSizeBytes) {
    throw new ReimageError(
      'REIMAGE_BOOT_BMAP_INCOMPLETE',
      `${bmapPath} is for an image of ${bmap.imageSizeBytes} bytes, not this one of ${map.imageSizeBytes}. Recreate it with "bmaptool create" or leave it out.`,
      { evidence: { path: bmapPath, expected: map.imageSizeBytes, actual: bmap.imageSizeBytes } },
    );
  }
  const uncovered = findUncovered(map, bmap);
  if (uncovered === undefined) return;
  throw new ReimageError(
    'REIMAGE_BOOT_BMAP_INCOMPLETE',
    `${bmapPath} leaves out bytes ${uncovered.offsetBytes}-${uncovered.offsetBytes + uncovered.lengthBytes - 1} of the image, which its filesystems hold; writing by it would lose data. Recreate it with "bmaptool create" or leave it out.`,
    { evidence: { path: bmapPath, offsetBytes: uncovered.offsetBytes, lengthBytes: uncovered.lengthBytes } },
  );
}
