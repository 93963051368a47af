import { open } from 'node:fs/promises';
import { findArm } from '../../src/arm/find-arm.ts';
import { decodeMapItem, REFUGE_HEAD_BYTES, readItemRaw } from '../../src/boot/index.ts';
import { type ByteRange, mergeRanges, totalBytes } from '../../src/disk/index.ts';
import { rangesWithin } from '../../src/runner/armed-run.ts';

/** Where an armed disk's refuge lies relative to the new image's partitions, read raw from the disk. */
export interface RefugePlacement {
  /** The old partition holding the refuge file. */
  readonly oldPartition: number;
  /** Every byte of the refuge (journal, header and items), disk coordinates, merged. */
  readonly ranges: readonly ByteRange[];
  /** Per new partition the restore mounts read-write: the refuge's bytes inside it (disk coordinates). */
  readonly insideWritable: readonly {
    readonly number: number;
    readonly ranges: readonly ByteRange[];
    readonly bytes: number;
  }[];
}

/**
 * Reads the arm from LBA 0 (as `status` does), then the refuge's `map` item: the new partitions
 * and which of them the restore mounts read-write before the commit.
 */
export async function readRefugePlacement(diskPath: string): Promise<RefugePlacement> {
  const disk = await open(diskPath, 'r');
  try {
    const found = await findArm(disk);
    if (found.kind !== 'armed') throw new Error(`${diskPath} is not armed: ${found.why}`);
    const mapItem = found.header.items.find((item) => item.name === 'map');
    if (mapItem === undefined) throw new Error('the refuge header has no map item');
    const map = decodeMapItem(await readItemRaw(disk, mapItem));
    const ranges = mergeRanges([
      { offsetBytes: found.locator.journalOffsetBytes, lengthBytes: REFUGE_HEAD_BYTES },
      ...found.header.items.flatMap((item) => item.ranges),
    ]);
    const insideWritable = map.writablePartitions.flatMap(({ number }) => {
      const partition = map.partitions.find((p) => p.number === number);
      if (partition === undefined) return [];
      const inside = rangesWithin(ranges, partition.startBytes, partition.sizeBytes).map((range) => ({
        offsetBytes: range.offsetBytes + partition.startBytes,
        lengthBytes: range.lengthBytes,
      }));
      return [{ number, ranges: inside, bytes: totalBytes(inside) }];
    });
    return { oldPartition: found.header.refugeFile.partitionNumber, ranges, insideWritable };
  } finally {
    await disk.close();
  }
}
