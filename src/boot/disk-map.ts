import type { PartitionTable } from '../disk/index.ts';
import { type ByteRange, mergeRanges, totalBytes } from '../disk/index.ts';

/** Runs of allocated blocks of one filesystem, in its own block size, from its start. */
export interface AllocatedBlocks {
  readonly blockSizeBytes: number;
  readonly ranges: readonly { readonly firstBlock: number; readonly blockCount: number }[];
}

/** What was learnt of one partition's filesystem: its allocation, or nothing (then it is mapped whole). */
export type PartitionAllocation =
  | { readonly kind: 'allocated'; readonly filesystem: string; readonly blocks: AllocatedBlocks }
  | { readonly kind: 'whole'; readonly reason: string };

/** The bytes of a disk image the armed write must write; every other byte may be skipped. */
export interface DiskMap {
  readonly imageSizeBytes: number;
  /** Sorted, merged, in bytes from the image's start. */
  readonly ranges: readonly ByteRange[];
  readonly mappedBytes: number;
  /** Partitions mapped whole because their filesystem was not read, with why. */
  readonly wholePartitions: readonly { readonly number: number; readonly reason: string }[];
}

/**
 * The disk-level map: everything before the first partition (boot code, the GPT header and
 * entries, the embedding gap GRUB's core.img uses on msdos), each partition's allocated blocks
 * offset by its start, the GPT's backup entries and header, and whole any partition whose
 * filesystem was not read (an extended container, a BIOS boot partition, a filesystem we do not
 * read). Gaps between partitions are not mapped: no partition owns them. Pure.
 */
export function mapDisk(
  table: PartitionTable,
  allocations: ReadonlyMap<number, PartitionAllocation>,
  imageSizeBytes: number,
): DiskMap {
  const ranges: ByteRange[] = [];
  const wholePartitions: { number: number; reason: string }[] = [];
  const firstStartBytes = Math.min(imageSizeBytes, ...table.partitions.map((partition) => partition.startBytes));
  ranges.push({ offsetBytes: 0, lengthBytes: firstStartBytes });
  // An odd or hostile table may start a partition at LBA 0 or over the GPT entries: the table stays mapped.
  ranges.push(table.primaryRange);
  for (const partition of table.partitions) {
    const allocation = allocations.get(partition.number) ?? { kind: 'whole', reason: 'its filesystem was not read' };
    if (allocation.kind === 'whole') {
      wholePartitions.push({ number: partition.number, reason: allocation.reason });
      ranges.push({ offsetBytes: partition.startBytes, lengthBytes: partition.sizeBytes });
      continue;
    }
    const { blockSizeBytes } = allocation.blocks;
    for (const run of allocation.blocks.ranges) {
      const offsetBytes = run.firstBlock * blockSizeBytes;
      // A filesystem smaller than its partition ends early; one claiming more is clipped to it.
      const lengthBytes = Math.min(run.blockCount * blockSizeBytes, partition.sizeBytes - offsetBytes);
      if (lengthBytes > 0) ranges.push({ offsetBytes: partition.startBytes + offsetBytes, lengthBytes });
    }
  }
  if (table.backupRange !== undefined) ranges.push(table.backupRange);
  const merged = mergeRanges(ranges);
  return { imageSizeBytes, ranges: merged, mappedBytes: totalBytes(merged), wholePartitions };
}
