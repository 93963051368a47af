import { ReimageError } from '../core/reimage-error.ts';
import type { AllocatedBlocks } from './disk-map.ts';

/** The boot sector fields that place a FAT filesystem's areas. */
export interface FatGeometry {
  readonly bytesPerSector: number;
  readonly sectorsPerCluster: number;
  readonly reservedSectors: number;
  readonly fatCount: number;
  readonly sectorsPerFat: number;
  readonly rootDirSectors: number;
  readonly totalSectors: number;
  readonly firstDataSector: number;
  readonly clusterCount: number;
  readonly fatBits: 12 | 16 | 32;
}

function unreadable(what: string, evidence: Record<string, string | number> = {}): ReimageError {
  return new ReimageError(
    'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
    `The new image's FAT filesystem cannot be mapped: ${what}. Check it with "fsck.vfat -n" on the image's partition; nothing was changed.`,
    { evidence },
  );
}

const isPowerOfTwo = (value: number): boolean => value > 0 && (value & (value - 1)) === 0;

/** Reads and checks the BIOS parameter block of a FAT12/16/32 boot sector. Pure. */
export function parseFatBootSector(sector: Uint8Array, partitionSizeBytes: number): FatGeometry {
  if (sector.byteLength < 512 || sector[510] !== 0x55 || sector[511] !== 0xaa) {
    throw unreadable('its boot sector has no signature 55 aa');
  }
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const bytesPerSector = view.getUint16(11, true);
  const sectorsPerCluster = view.getUint8(13);
  const reservedSectors = view.getUint16(14, true);
  const fatCount = view.getUint8(16);
  const rootEntries = view.getUint16(17, true);
  const totalSectors = view.getUint16(19, true) || view.getUint32(32, true);
  const sectorsPerFat = view.getUint16(22, true) || view.getUint32(36, true);
  if (![512, 1024, 2048, 4096].includes(bytesPerSector) || !isPowerOfTwo(sectorsPerCluster)) {
    throw unreadable('its sector or cluster size is not valid', { bytesPerSector, sectorsPerCluster });
  }
  if (reservedSectors === 0 || fatCount === 0 || sectorsPerFat === 0 || totalSectors === 0) {
    throw unreadable('its reserved sectors, FAT count, FAT size or total size is zero');
  }
  if (totalSectors * bytesPerSector > partitionSizeBytes) {
    throw unreadable('it claims more sectors than its partition holds', { totalSectors, partitionSizeBytes });
  }
  const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const firstDataSector = reservedSectors + fatCount * sectorsPerFat + rootDirSectors;
  if (firstDataSector > totalSectors) throw unreadable('its FATs and root directory run past its end');
  const clusterCount = Math.floor((totalSectors - firstDataSector) / sectorsPerCluster);
  // The FAT type follows from the cluster count alone (Microsoft's FAT specification).
  const fatBits = clusterCount < 4085 ? 12 : clusterCount < 65525 ? 16 : 32;
  if ((sectorsPerFat * bytesPerSector * 8) / fatBits < clusterCount + 2) {
    throw unreadable('its FAT is too small for its clusters', { sectorsPerFat, clusterCount });
  }
  return {
    bytesPerSector,
    sectorsPerCluster,
    reservedSectors,
    fatCount,
    sectorsPerFat,
    rootDirSectors,
    totalSectors,
    firstDataSector,
    clusterCount,
    fatBits,
  };
}

function fatEntry(fat: Uint8Array, fatBits: 12 | 16 | 32, cluster: number): number {
  if (fatBits === 32) {
    const at = cluster * 4;
    return (
      ((fat[at] ?? 0) | ((fat[at + 1] ?? 0) << 8) | ((fat[at + 2] ?? 0) << 16) | ((fat[at + 3] ?? 0) << 24)) &
      0x0fffffff
    );
  }
  if (fatBits === 16) return (fat[cluster * 2] ?? 0) | ((fat[cluster * 2 + 1] ?? 0) << 8);
  const at = Math.floor((cluster * 3) / 2);
  const pair = (fat[at] ?? 0) | ((fat[at + 1] ?? 0) << 8);
  return cluster % 2 === 0 ? pair & 0xfff : pair >> 4;
}

/**
 * Allocated sectors of a FAT filesystem, given its geometry and all its FAT copies (read back to
 * back, as they lie on disk): the reserved sectors, the FATs and the FAT12/16 root directory
 * always; then every cluster whose entry is not 0 in ANY copy (in use, end of chain, bad or
 * reserved), so copies that disagree never lose a cluster. Pure.
 */
export function fatAllocation(geometry: FatGeometry, fats: Uint8Array): AllocatedBlocks {
  const fatBytes = geometry.sectorsPerFat * geometry.bytesPerSector;
  if (fats.byteLength < fatBytes * geometry.fatCount) throw unreadable('its FATs could not be read whole');
  const copies = Array.from({ length: geometry.fatCount }, (_, copy) =>
    fats.subarray(copy * fatBytes, (copy + 1) * fatBytes),
  );
  const ranges: { firstBlock: number; blockCount: number }[] = [
    { firstBlock: 0, blockCount: geometry.firstDataSector },
  ];
  for (let cluster = 2; cluster < geometry.clusterCount + 2; cluster++) {
    if (!copies.some((fat) => fatEntry(fat, geometry.fatBits, cluster) !== 0)) continue;
    const firstBlock = geometry.firstDataSector + (cluster - 2) * geometry.sectorsPerCluster;
    const last = ranges.at(-1);
    if (last !== undefined && last.firstBlock + last.blockCount === firstBlock) {
      ranges[ranges.length - 1] = {
        firstBlock: last.firstBlock,
        blockCount: last.blockCount + geometry.sectorsPerCluster,
      };
    } else {
      ranges.push({ firstBlock, blockCount: geometry.sectorsPerCluster });
    }
  }
  return { blockSizeBytes: geometry.bytesPerSector, ranges };
}
