import { type FileHandle, open } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import {
  type PartitionTable,
  readAt,
  readPartitionTable,
  TABLE_SECTOR_BYTES,
  type TablePartition,
} from '../disk/index.ts';
import { type DiskMap, mapDisk, type PartitionAllocation } from './disk-map.ts';
import { readExt4Allocation } from './ext4-allocation.ts';
import { fatAllocation, parseFatBootSector } from './vfat-allocation.ts';
import { readXfsAllocation } from './xfs-allocation.ts';

export type FilesystemKind = 'ext' | 'vfat' | 'xfs' | 'unknown';

const EXT_MAGIC_AT = 1024 + 56;

/** Which filesystem a partition's first 2 KiB announce, by magic numbers. Pure. */
export function detectFilesystem(start: Uint8Array): FilesystemKind {
  if (start[EXT_MAGIC_AT] === 0x53 && start[EXT_MAGIC_AT + 1] === 0xef) return 'ext';
  const text = (from: number, to: number): string => Buffer.from(start.subarray(from, to)).toString('latin1');
  if (text(0, 4) === 'XFSB') return 'xfs';
  if (start[510] === 0x55 && start[511] === 0xaa && (text(54, 57) === 'FAT' || text(82, 87) === 'FAT32')) return 'vfat';
  return 'unknown';
}

/** Up to `lengthBytes` from `offsetBytes` (fewer at the end of the file). */
async function readBytesAt(file: FileHandle, offsetBytes: number, lengthBytes: number): Promise<Buffer> {
  const buffer = Buffer.alloc(lengthBytes);
  return buffer.subarray(0, await readAt(file, buffer, offsetBytes));
}

async function allocationOf(
  imagePath: string,
  file: FileHandle,
  partition: TablePartition,
  table: PartitionTable,
): Promise<PartitionAllocation> {
  if (partition.extended) {
    // The container itself holds only its extended boot records; its logical partitions are
    // mapped as partitions of their own.
    if (table.extendedRecords === undefined) return { kind: 'whole', reason: 'an msdos extended partition' };
    return {
      kind: 'allocated',
      filesystem: 'msdos extended boot records',
      blocks: {
        blockSizeBytes: TABLE_SECTOR_BYTES,
        ranges: table.extendedRecords.map((record) => ({
          firstBlock: (record.offsetBytes - partition.startBytes) / TABLE_SECTOR_BYTES,
          blockCount: 1,
        })),
      },
    };
  }
  const kind = detectFilesystem(await readBytesAt(file, partition.startBytes, 2048));
  switch (kind) {
    case 'ext':
      return {
        kind: 'allocated',
        filesystem: 'ext',
        blocks: await readExt4Allocation(imagePath, partition.startBytes),
      };
    case 'vfat': {
      const geometry = parseFatBootSector(await readBytesAt(file, partition.startBytes, 512), partition.sizeBytes);
      const fatsAt = partition.startBytes + geometry.reservedSectors * geometry.bytesPerSector;
      const fatsBytes = geometry.fatCount * geometry.sectorsPerFat * geometry.bytesPerSector;
      return {
        kind: 'allocated',
        filesystem: 'vfat',
        blocks: fatAllocation(geometry, await readBytesAt(file, fatsAt, fatsBytes)),
      };
    }
    case 'xfs':
      return {
        kind: 'allocated',
        filesystem: 'xfs',
        blocks: await readXfsAllocation(imagePath, partition.startBytes, partition.sizeBytes),
      };
    case 'unknown':
      return { kind: 'whole', reason: 'no filesystem reimage reads (ext, vfat, xfs)' };
  }
}

/**
 * Maps a raw disk image file from its own partition table and filesystems: the bytes the armed
 * write must write. Reads only; an unreadable table or filesystem refuses with nothing changed.
 */
export async function mapImageFile(imagePath: string): Promise<DiskMap> {
  let file: FileHandle;
  try {
    file = await open(imagePath, 'r');
  } catch (e) {
    throw new ReimageError('REIMAGE_IMAGE_UNREADABLE', `Cannot read the image ${imagePath} to map it.`, {
      evidence: { path: imagePath },
      cause: e,
    });
  }
  try {
    const imageSizeBytes = (await file.stat()).size;
    const table = await readPartitionTable(file, imageSizeBytes);
    const allocations = new Map<number, PartitionAllocation>();
    for (const partition of table.partitions) {
      allocations.set(partition.number, await allocationOf(imagePath, file, partition, table));
    }
    return mapDisk(table, allocations, imageSizeBytes);
  } finally {
    await file.close();
  }
}
