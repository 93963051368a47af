// The refuge file on real filesystems in partitions of disk images (msdos and GPT; ext4 with 4 KiB
// and 1 KiB blocks, xfs, ext3 without extents): reserved, written THROUGH the file, then read RAW
// from the disk image at the extents' disk offsets and compared byte for byte. That proves the
// FIEMAP extents plus the partition's start name the very bytes the recovery path will read.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { open, stat, statfs, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RefugeExtent, usableExtents } from '../../../src/boot/refuge-extent.ts';
import {
  REFUGE_FILE_NAME,
  readRefugeExtents,
  releaseRefugeFile,
  reserveRefugeFile,
  setRefugeImmutable,
} from '../../../src/boot/refuge-file.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { MIB, makeRefugeDisk, type RefugeDisk, readRaw, run } from './refuge-disk.ts';

/** Writes `data` through the file at its start and flushes it. */
async function writeThroughFile(path: string, data: Buffer): Promise<void> {
  const file = await open(path, 'r+');
  try {
    await file.write(data, 0, data.length, 0);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** Every extent's bytes read raw from the disk image equal the file's bytes at its file offset. */
function assertRawMatches(imagePath: string, extents: readonly RefugeExtent[], data: Buffer, what: string): void {
  for (const extent of extents) {
    const raw = readRaw(imagePath, extent.diskOffsetBytes, extent.lengthBytes);
    const expected = data.subarray(extent.fileOffsetBytes, extent.fileOffsetBytes + extent.lengthBytes);
    assert.ok(raw.equals(expected), `${what}: raw bytes at disk offset ${extent.diskOffsetBytes} differ from the file`);
  }
}

/** The extents cover the file from 0 to its size, in order, each inside the partition. */
function assertCovers(
  extents: readonly RefugeExtent[],
  sizeBytes: number,
  partition: { startBytes: number; sizeBytes: number },
): void {
  let at = 0;
  for (const extent of extents) {
    assert.equal(extent.fileOffsetBytes, at, 'file order without holes');
    assert.ok(extent.diskOffsetBytes >= partition.startBytes, 'inside the partition');
    assert.ok(extent.diskOffsetBytes + extent.lengthBytes <= partition.startBytes + partition.sizeBytes);
    at += extent.lengthBytes;
  }
  assert.equal(at, sizeBytes);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<Error> {
  let caught: unknown;
  await promise.catch((error: unknown) => {
    caught = error;
  });
  assert.ok(isReimageError(caught), `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

/** Fills a filesystem with 16 KiB files until it is full, then deletes every other one. */
function fragment(mountPoint: string): number {
  const chunk = Buffer.alloc(16 * 1024, 0x5a);
  let count = 0;
  for (;;) {
    try {
      writeFileSync(join(mountPoint, `f${count}`), chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
      throw error;
    }
    count++;
  }
  for (let i = 0; i < count; i += 2) rmSync(join(mountPoint, `f${i}`));
  run('sync', []);
  return count;
}

/** Releases a refuge a failed test left behind (so one failure does not cascade), then unmounts. */
async function leave(disk: RefugeDisk, number: number): Promise<void> {
  const mountPoint = disk.mountPoint(number);
  if (mountPoint !== undefined) await releaseRefugeFile(join(mountPoint, REFUGE_FILE_NAME));
  disk.unmount(number);
}

describe('the refuge file on real filesystems', () => {
  let dir: string;
  let msdos: RefugeDisk;
  let gpt: RefugeDisk;

  before(() => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root (loop devices, mounts)');
    dir = mkdtempSync(join(tmpdir(), 'reimage-refuge-'));
    // p2 starts at an odd sector: the filesystem's blocks are not 4096-aligned on the disk.
    msdos = makeRefugeDisk(dir, 'msdos', 'dos', 200 * MIB, [
      { startSector: 2048, sectors: 16 * 2048 },
      { startSector: 40961, sectors: 64 * 2048, mkfs: ['mkfs.ext4', '-q', '-F', '-b', '4096'] },
      { startSector: 180224, sectors: 24 * 2048, mkfs: ['mkfs.ext3', '-q', '-F', '-b', '1024'] },
    ]);
    gpt = makeRefugeDisk(dir, 'gpt', 'gpt', 420 * MIB, [
      { startSector: 2048, sectors: 64 * 2048, mkfs: ['mkfs.ext4', '-q', '-F', '-b', '1024'] },
      // mkfs.xfs wants 300 MiB at least.
      { startSector: 133120, sectors: 320 * 2048, mkfs: ['mkfs.xfs', '-q', '-f'] },
    ]);
  });
  after(() => {
    msdos?.close();
    gpt?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const cases = [
    { name: 'ext4 (4 KiB blocks) in an msdos partition at an odd sector', disk: () => msdos, number: 2 },
    { name: 'ext4 (1 KiB blocks) in a GPT partition', disk: () => gpt, number: 1 },
    { name: 'xfs in a GPT partition', disk: () => gpt, number: 2 },
    { name: 'ext3 (no extents: zeros written instead of fallocate)', disk: () => msdos, number: 3 },
  ];
  for (const c of cases) {
    it(`${c.name}: the extents name the file's bytes on the disk, before and after writing`, async () => {
      const disk = c.disk();
      const partition = disk.partitions.get(c.number);
      assert.ok(partition);
      const mountPoint = disk.mount(c.number);
      try {
        const sizeBytes = 6 * MIB + 4096;
        const reserved = await reserveRefugeFile({ mountPoint, partitionStartBytes: partition.startBytes, sizeBytes });
        assert.equal(reserved.path, join(mountPoint, REFUGE_FILE_NAME));
        assertCovers(reserved.extents, sizeBytes, partition);
        // Allocated, not a sparse hole: the file owns its blocks before a byte is written.
        assert.ok((await stat(reserved.path)).blocks * 512 >= sizeBytes, 'the file owns its blocks');
        const data = randomBytes(sizeBytes);
        await writeThroughFile(reserved.path, data);
        // Writing converts unwritten extents; the blocks must be the same ones.
        const after = await readRefugeExtents(reserved.path, partition.startBytes);
        assert.deepEqual(after, reserved.extents, 'the extents did not move when written');
        assertRawMatches(disk.imagePath, after, data, c.name);
        // The usable (4096-aligned) pieces are a subset, at the same file-to-disk distance.
        const usable = usableExtents(after, []);
        assert.ok(usable.length > 0);
        assertRawMatches(disk.imagePath, usable, data, `${c.name}, usable`);
        await releaseRefugeFile(reserved.path);
      } finally {
        await leave(disk, c.number);
      }
    });
  }

  it('rounds a size up to 4096 bytes', async () => {
    const partition = msdos.partitions.get(2);
    assert.ok(partition);
    const mountPoint = msdos.mount(2);
    try {
      const reserved = await reserveRefugeFile({
        mountPoint,
        partitionStartBytes: partition.startBytes,
        sizeBytes: 5000,
      });
      assertCovers(reserved.extents, 8192, partition);
      await releaseRefugeFile(reserved.path);
    } finally {
      await leave(msdos, 2);
    }
  });

  for (const c of [
    { name: 'ext4 (4 KiB blocks)', disk: () => msdos, number: 2, blockBytes: 4096 },
    { name: 'ext4 (1 KiB blocks)', disk: () => gpt, number: 1, blockBytes: 1024 },
  ]) {
    it(`${c.name}, fragmented free space: a many-extent file maps byte for byte`, async (t) => {
      const disk = c.disk();
      const partition = disk.partitions.get(c.number);
      assert.ok(partition);
      const mountPoint = disk.mount(c.number);
      try {
        const files = fragment(mountPoint);
        const { bfree, bsize } = await statfs(mountPoint);
        // More than any free run left between the kept files: it must take the holes.
        const sizeBytes = Math.floor((bfree * bsize * 0.6) / 4096) * 4096;
        const reserved = await reserveRefugeFile({ mountPoint, partitionStartBytes: partition.startBytes, sizeBytes });
        assertCovers(reserved.extents, sizeBytes, partition);
        assert.ok(reserved.extents.length >= 20, `only ${reserved.extents.length} extents`);
        const data = randomBytes(sizeBytes);
        await writeThroughFile(reserved.path, data);
        const after = await readRefugeExtents(reserved.path, partition.startBytes);
        assert.deepEqual(after, reserved.extents);
        assertRawMatches(disk.imagePath, after, data, c.name);
        t.diagnostic(`${c.name}: ${files} files, every other deleted; ${sizeBytes} bytes in ${after.length} extents`);
        await releaseRefugeFile(reserved.path);
      } finally {
        await leave(disk, c.number);
        // The next test starts from an empty filesystem again.
        run('mkfs.ext4', ['-q', '-F', '-b', String(c.blockBytes), partition.device]);
      }
    });
  }

  for (const c of [
    { name: 'ext4', disk: () => msdos, number: 2 },
    { name: 'xfs', disk: () => gpt, number: 2 },
  ]) {
    it(`${c.name}: immutable, the file can be neither removed nor written; release clears and removes it`, async () => {
      const disk = c.disk();
      const partition = disk.partitions.get(c.number);
      assert.ok(partition);
      const mountPoint = disk.mount(c.number);
      try {
        const reserved = await reserveRefugeFile({
          mountPoint,
          partitionStartBytes: partition.startBytes,
          sizeBytes: MIB,
        });
        await setRefugeImmutable(reserved.path, true);
        assert.match(run('lsattr', ['-d', reserved.path]).split(' ')[0] ?? '', /i/);
        await assert.rejects(unlink(reserved.path), { code: 'EPERM' });
        await assert.rejects(open(reserved.path, 'r+'), { code: 'EPERM' });
        assert.deepEqual(await readRefugeExtents(reserved.path, partition.startBytes), reserved.extents);
        await setRefugeImmutable(reserved.path, false);
        await setRefugeImmutable(reserved.path, true);
        const before = await statfs(mountPoint);
        await releaseRefugeFile(reserved.path);
        await assert.rejects(open(reserved.path, 'r'), { code: 'ENOENT' });
        // xfs frees an unlinked file's blocks in the background (inodegc) and neither statfs nor
        // syncfs waits for it; unmounting does.
        disk.unmount(c.number);
        disk.mount(c.number);
        const afterFree = (await statfs(mountPoint)).bfree;
        assert.ok(afterFree > before.bfree, `the blocks are free again (${before.bfree} -> ${afterFree})`);
        await releaseRefugeFile(reserved.path); // a missing file is fine
      } finally {
        await leave(disk, c.number);
      }
    });
  }

  it('refuses to reserve over an existing name or a planted symlink, leaving both alone', async () => {
    const partition = msdos.partitions.get(2);
    assert.ok(partition);
    const mountPoint = msdos.mount(2);
    try {
      const first = await reserveRefugeFile({ mountPoint, partitionStartBytes: partition.startBytes, sizeBytes: MIB });
      const error = await expectCode(
        reserveRefugeFile({ mountPoint, partitionStartBytes: partition.startBytes, sizeBytes: 2 * MIB }),
        'REIMAGE_REFUGE_EXISTS',
      );
      assert.match(error.message, /earlier arm left it.*reimage disarm/);
      assert.deepEqual(await readRefugeExtents(first.path, partition.startBytes), first.extents, 'the first is kept');
      await releaseRefugeFile(first.path);
      const victim = join(dir, 'victim');
      writeFileSync(victim, 'not yours');
      symlinkSync(victim, first.path);
      await expectCode(
        reserveRefugeFile({ mountPoint, partitionStartBytes: partition.startBytes, sizeBytes: MIB }),
        'REIMAGE_REFUGE_EXISTS',
      );
      assert.equal(run('cat', [victim]), 'not yours');
      await releaseRefugeFile(first.path); // removes the symlink itself, never its target
      assert.equal(run('cat', [victim]), 'not yours');
    } finally {
      await leave(msdos, 2);
    }
  });

  for (const c of [
    { name: 'ext4', disk: () => msdos, number: 2 },
    { name: 'xfs', disk: () => gpt, number: 2 },
    { name: 'ext3 (zeros written)', disk: () => msdos, number: 3 },
  ]) {
    it(`${c.name}: no room → REIMAGE_REFUGE_NO_ROOM naming the filesystem and sizes; the partial file is removed`, async () => {
      const disk = c.disk();
      const partition = disk.partitions.get(c.number);
      assert.ok(partition);
      const mountPoint = disk.mount(c.number);
      try {
        const before = await statfs(mountPoint);
        const error = await expectCode(
          reserveRefugeFile({ mountPoint, partitionStartBytes: partition.startBytes, sizeBytes: partition.sizeBytes }),
          'REIMAGE_REFUGE_NO_ROOM',
        );
        assert.match(
          error.message,
          new RegExp(`${mountPoint}.*${partition.sizeBytes}-byte refuge \\(\\d+ bytes free\\)`),
        );
        await assert.rejects(open(join(mountPoint, REFUGE_FILE_NAME), 'r'), { code: 'ENOENT' });
        // Remounted: xfs frees an unlinked file's blocks in the background until then.
        disk.unmount(c.number);
        disk.mount(c.number);
        assert.equal((await statfs(mountPoint)).bfree, before.bfree, 'every block is free again');
      } finally {
        await leave(disk, c.number);
      }
    });
  }

  it('an abort after the file was created removes it and stays an abort', async () => {
    const partition = msdos.partitions.get(2);
    assert.ok(partition);
    const mountPoint = msdos.mount(2);
    try {
      const controller = new AbortController();
      const reserving = reserveRefugeFile({
        mountPoint,
        partitionStartBytes: partition.startBytes,
        sizeBytes: MIB,
        signal: controller.signal,
      });
      // reserveRefugeFile is at its first await (creating the file): the abort lands after it.
      controller.abort();
      await assert.rejects(reserving, { name: 'AbortError' });
      await assert.rejects(open(join(mountPoint, REFUGE_FILE_NAME), 'r'), { code: 'ENOENT' });
    } finally {
      await leave(msdos, 2);
    }
  });

  it('reads a freshly written (delayed-allocation) file only after the kernel placed its blocks: FIEMAP syncs first', async () => {
    const partition = gpt.partitions.get(1);
    assert.ok(partition);
    const mountPoint = gpt.mount(1);
    try {
      const path = join(mountPoint, 'written-not-synced');
      const data = randomBytes(3 * MIB);
      writeFileSync(path, data); // no fsync: ext4 has not chosen blocks yet
      const extents = await readRefugeExtents(path, partition.startBytes);
      assertRawMatches(gpt.imagePath, extents, data, 'delalloc file');
      rmSync(path);
    } finally {
      await leave(gpt, 1);
    }
  });
});
