// The free room of an old filesystem, measured read-only before anything is reserved, checked
// against the filesystems' own counts (dumpe2fs's superblock, xfs_db's fdblocks, statfs) and,
// for its place on the disk, against FIEMAP: a file that takes nearly all free space, removed
// again, must have lain exactly on the free ranges measured (in disk coordinates).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RefugeExtent } from '../../../src/boot/refuge-extent.ts';
import { releaseRefugeFile, reserveRefugeFile } from '../../../src/boot/refuge-file.ts';
import { measureRefugeRoom } from '../../../src/boot/refuge-room.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { type ByteRange, totalBytes } from '../../../src/disk/byte-range.ts';
import { MIB, makeRefugeDisk, type RefugeDisk, run } from './refuge-disk.ts';

/** Free bytes as the filesystem's own superblock counts them (not the free lists measure reads). */
function superblockFreeBytes(kind: 'ext' | 'xfs', device: string): number {
  if (kind === 'ext') {
    const header = run('dumpe2fs', ['-h', device]);
    return Number(/^Free blocks:\s+(\d+)/m.exec(header)?.[1]) * Number(/^Block size:\s+(\d+)/m.exec(header)?.[1]);
  }
  const fields = run('xfs_db', ['-r', '-c', 'sb 0', '-c', 'p fdblocks blocksize', device]);
  return Number(/^fdblocks = (\d+)/m.exec(fields)?.[1]) * Number(/^blocksize = (\d+)/m.exec(fields)?.[1]);
}

describe('measureRefugeRoom on real filesystems', () => {
  let dir: string;
  let msdos: RefugeDisk;
  let gpt: RefugeDisk;

  before(() => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root (loop devices, mounts)');
    dir = mkdtempSync(join(tmpdir(), 'reimage-room-'));
    msdos = makeRefugeDisk(dir, 'msdos', 'dos', 120 * MIB, [
      // An odd start (its blocks are not 4096-aligned on the disk), 20 MiB in: a disk offset
      // lost anywhere shifts ranges by more than the free bytes a filesystem holds back.
      { startSector: 40961, sectors: 64 * 2048, mkfs: ['mkfs.ext4', '-q', '-F', '-b', '4096'] },
      { startSector: 174080, sectors: 8 * 2048, mkfs: ['mkfs.vfat'] },
      { startSector: 192512, sectors: 8 * 2048, mkfs: ['mkswap'] },
    ]);
    gpt = makeRefugeDisk(dir, 'gpt', 'gpt', 420 * MIB, [
      { startSector: 2048, sectors: 64 * 2048, mkfs: ['mkfs.ext4', '-q', '-F', '-b', '1024'] },
      { startSector: 133120, sectors: 320 * 2048, mkfs: ['mkfs.xfs', '-q', '-f'] },
    ]);
  });
  after(() => {
    msdos?.close();
    gpt?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const cases = [
    { name: 'ext4 (4 KiB blocks, odd partition start)', disk: () => msdos, number: 1, kind: 'ext' as const },
    { name: 'ext4 (1 KiB blocks)', disk: () => gpt, number: 1, kind: 'ext' as const },
    { name: 'xfs', disk: () => gpt, number: 2, kind: 'xfs' as const },
  ];

  for (const c of cases) {
    it(`${c.name}: unmounted, exact and equal to the superblock's free count; mounted read-write, statfs's estimate`, async () => {
      const disk = c.disk();
      const partition = disk.partitions.get(c.number);
      assert.ok(partition);
      const measure = (excluded: readonly ByteRange[]) =>
        measureRefugeRoom({
          device: partition.device,
          partitionStartBytes: partition.startBytes,
          partitionSizeBytes: partition.sizeBytes,
          excluded,
        });
      const room = await measure([]);
      assert.equal(room.exact, true);
      assert.equal(room.filesystem, c.kind === 'ext' ? 'ext4' : 'xfs');
      assert.equal(room.freeBytes, superblockFreeBytes(c.kind, partition.device));
      assert.ok(room.usableBytes <= room.freeBytes && room.usableBytes > room.freeBytes * 0.9);
      assert.equal(room.usableBytes % 4096, 0);

      // Excluding two halves split at a 4096 boundary: the usable parts add up to the whole.
      const half = Math.floor((partition.startBytes + partition.sizeBytes / 2) / 4096) * 4096;
      const first = { offsetBytes: 0, lengthBytes: half };
      const second = { offsetBytes: half, lengthBytes: partition.startBytes + partition.sizeBytes - half };
      const [withoutFirst, withoutSecond, withoutAll] = await Promise.all([
        measure([first]),
        measure([second]),
        measure([first, second]),
      ]);
      assert.equal(withoutFirst.usableBytes + withoutSecond.usableBytes, room.usableBytes);
      assert.ok(withoutFirst.usableBytes > 0 && withoutSecond.usableBytes > 0);
      assert.equal(withoutAll.usableBytes, 0);
      assert.equal(withoutAll.freeBytes, room.freeBytes, 'free bytes do not depend on what is excluded');

      const mountPoint = disk.mount(c.number);
      try {
        const mounted = await measure([]);
        const stats = await statfs(mountPoint);
        assert.equal(mounted.exact, false, 'bitmaps of a read-write filesystem lag behind the kernel');
        assert.equal(mounted.freeBytes, stats.bfree * stats.bsize);
        // ext4's statfs counts the same free blocks; xfs's holds back its reserve pool and per-AG set-asides.
        if (c.kind === 'ext') assert.equal(mounted.freeBytes, room.freeBytes);
        else assert.ok(mounted.freeBytes <= room.freeBytes && mounted.freeBytes > room.freeBytes * 0.9);
        // Without ranges, every excluded byte inside the partition is taken off the free count.
        const estimate = Math.max(0, mounted.freeBytes - (half - partition.startBytes));
        assert.equal((await measure([first])).usableBytes, Math.floor(estimate / 4096) * 4096);
      } finally {
        disk.unmount(c.number);
      }
      const readOnly = disk.mount(c.number, true);
      try {
        assert.ok(readOnly);
        const roRoom = await measure([]);
        assert.equal(roRoom.exact, true, 'a read-only mount keeps the bitmaps current');
        assert.equal(roRoom.freeBytes, room.freeBytes);
      } finally {
        disk.unmount(c.number);
      }
    });

    it(`${c.name}: the free ranges lie where FIEMAP later finds a file that takes (nearly) all of them`, async () => {
      const disk = c.disk();
      const partition = disk.partitions.get(c.number);
      assert.ok(partition);
      const measure = (excluded: readonly ByteRange[]) =>
        measureRefugeRoom({
          device: partition.device,
          partitionStartBytes: partition.startBytes,
          partitionSizeBytes: partition.sizeBytes,
          excluded,
        });
      const room = await measure([]);
      // Take as much as the kernel gives (ext4 and xfs each hold some free blocks back from files).
      const mountPoint = disk.mount(c.number);
      let extents: RefugeExtent[] = [];
      try {
        for (let sizeBytes = Math.floor(room.freeBytes / MIB) * MIB; extents.length === 0; sizeBytes -= MIB) {
          try {
            const reserved = await reserveRefugeFile({
              mountPoint,
              partitionStartBytes: partition.startBytes,
              sizeBytes,
            });
            extents = reserved.extents;
            await releaseRefugeFile(reserved.path);
          } catch (error) {
            if (!isReimageError(error) || error.code !== 'REIMAGE_REFUGE_NO_ROOM') throw error;
          }
        }
      } finally {
        disk.unmount(c.number);
      }
      const fileBytes = totalBytes(
        extents.map((e) => ({ offsetBytes: e.diskOffsetBytes, lengthBytes: e.lengthBytes })),
      );
      assert.ok(fileBytes > room.freeBytes * 0.8, `the file took ${fileBytes} of ${room.freeBytes} free bytes`);
      // The file's blocks are free again, so they are inside the measured free ranges: excluding them
      // leaves at most the rest. Had either side its disk offset wrong, they would not line up.
      const rest = await measure(extents.map((e) => ({ offsetBytes: e.diskOffsetBytes, lengthBytes: e.lengthBytes })));
      assert.equal(rest.freeBytes, room.freeBytes, 'the file was released');
      assert.ok(
        rest.usableBytes <= room.freeBytes - fileBytes,
        `${rest.usableBytes} usable bytes outside the file, of ${room.freeBytes - fileBytes} free ones`,
      );
    });
  }

  it('ext4 with a journal to replay: the bitmaps may miss allocations, so the measure is not exact', async () => {
    const partition = gpt.partitions.get(1);
    assert.ok(partition);
    run('debugfs', ['-w', '-R', 'feature needs_recovery', partition.device]);
    try {
      const room = await measureRefugeRoom({
        device: partition.device,
        partitionStartBytes: partition.startBytes,
        partitionSizeBytes: partition.sizeBytes,
        excluded: [],
      });
      assert.equal(room.exact, false);
    } finally {
      run('debugfs', ['-w', '-R', 'feature -needs_recovery', partition.device]);
    }
  });

  for (const [number, type, reason] of [
    [2, 'vfat', /no immutable flag/],
    [3, 'swap', /"swap"/],
  ] as const) {
    it(`refuses ${type} with REIMAGE_REFUGE_FILESYSTEM_UNSUPPORTED saying why`, async () => {
      const partition = msdos.partitions.get(number);
      assert.ok(partition);
      await assert.rejects(
        measureRefugeRoom({
          device: partition.device,
          partitionStartBytes: partition.startBytes,
          partitionSizeBytes: partition.sizeBytes,
          excluded: [],
        }),
        (error: unknown) => {
          assert.ok(isReimageError(error));
          assert.equal(error.code, 'REIMAGE_REFUGE_FILESYSTEM_UNSUPPORTED');
          assert.match(error.message, reason);
          assert.equal(error.targetState, 'untouched');
          return true;
        },
      );
    });
  }
});
