import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fatAllocation, parseFatBootSector } from '../../../src/boot/vfat-allocation.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';

/** A FAT16 boot sector: 512-byte sectors, 4 sectors a cluster, 4 reserved, 2 FATs of 40 sectors, 512 root entries. */
function bootSector(o: { totalSectors?: number; sectorsPerFat?: number; signature?: boolean } = {}): Buffer {
  const sector = Buffer.alloc(512);
  sector.writeUInt16LE(512, 11);
  sector[13] = 4;
  sector.writeUInt16LE(4, 14);
  sector[16] = 2;
  sector.writeUInt16LE(512, 17);
  sector.writeUInt16LE(0, 19);
  sector.writeUInt32LE(o.totalSectors ?? 40_000, 32);
  sector.writeUInt16LE(o.sectorsPerFat ?? 40, 22);
  if (o.signature !== false) {
    sector[510] = 0x55;
    sector[511] = 0xaa;
  }
  return sector;
}

describe('parseFatBootSector', () => {
  it('places the areas and picks the FAT type from the cluster count', () => {
    const geometry = parseFatBootSector(bootSector(), 40_000 * 512);
    assert.equal(geometry.rootDirSectors, 32);
    assert.equal(geometry.firstDataSector, 4 + 2 * 40 + 32);
    assert.equal(geometry.clusterCount, Math.floor((40_000 - 116) / 4));
    assert.equal(geometry.fatBits, 16);
  });
  const refusals: { name: string; sector: Buffer; partitionBytes?: number }[] = [
    { name: 'no signature', sector: bootSector({ signature: false }) },
    { name: 'more sectors than the partition', sector: bootSector(), partitionBytes: 1000 * 512 },
    { name: 'a FAT too small for its clusters', sector: bootSector({ sectorsPerFat: 8 }) },
  ];
  for (const { name, sector, partitionBytes } of refusals) {
    it(`refuses ${name}`, () =>
      assert.throws(
        () => parseFatBootSector(sector, partitionBytes ?? 40_000 * 512),
        (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
      ));
  }
});

describe('fatAllocation', () => {
  const geometry = parseFatBootSector(bootSector(), 40_000 * 512);
  const fatBytes = 40 * 512;
  const dataSector = (cluster: number): number => 116 + (cluster - 2) * 4;

  it('maps reserved sectors, FATs and root directory, and every cluster with a non-zero entry in any FAT copy', () => {
    const fats = Buffer.alloc(2 * fatBytes);
    fats.writeUInt16LE(0xfff8, 0); // the media entries of clusters 0 and 1: not data
    fats.writeUInt16LE(0xffff, 2);
    fats.writeUInt16LE(3, 2 * 2); // a chain 2 -> 3 -> end
    fats.writeUInt16LE(0xffff, 3 * 2);
    fats.writeUInt16LE(0xfff7, 10 * 2); // a bad cluster: kept as it is
    fats.writeUInt16LE(0xffff, fatBytes + 12 * 2); // only the second copy knows cluster 12
    const allocation = fatAllocation(geometry, fats);
    assert.equal(allocation.blockSizeBytes, 512);
    assert.deepEqual(allocation.ranges, [
      { firstBlock: 0, blockCount: dataSector(4) },
      { firstBlock: dataSector(10), blockCount: 4 },
      { firstBlock: dataSector(12), blockCount: 4 },
    ]);
  });

  it('reads FAT12 entries packed in 12 bits', () => {
    const small = parseFatBootSector(bootSector({ totalSectors: 8000, sectorsPerFat: 6 }), 8000 * 512);
    assert.equal(small.fatBits, 12);
    const fats = Buffer.alloc(2 * 6 * 512);
    // Cluster 3 (odd: the high 12 bits of bytes 4-5) ends a chain; cluster 2 stays free.
    fats.writeUInt16LE(0xfff0, 4);
    const first = 4 + 2 * 6 + 32;
    assert.deepEqual(fatAllocation(small, fats).ranges, [
      { firstBlock: 0, blockCount: first },
      { firstBlock: first + 4, blockCount: 4 },
    ]);
  });

  it('refuses FATs not read whole', () =>
    assert.throws(
      () => fatAllocation(geometry, Buffer.alloc(fatBytes)),
      (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
    ));
});
