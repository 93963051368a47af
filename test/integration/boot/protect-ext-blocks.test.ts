// Piece D of the refuge: refuge bytes lying FREE in a new ext4 partition that the armed run
// mounts read-write before the commit. Proved on real filesystems (4 KiB blocks with
// metadata_csum/64bit/flex_bg, Debian 12's mke2fs defaults; and 1 KiB blocks) inside a
// partition at 1 MiB of a disk image, reached as the recovery run reaches it: a loop device at
// an offset of the whole disk (itself a loop device here). 0xA5 is written raw on the whole
// disk over several free ranges (some not block-aligned), the blocks are protected, the
// filesystem is mounted with the new-partition options and filled to ENOSPC twice; the 0xA5
// bytes must survive, and a control run without protection shows the fill does reach them.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type BlockRun,
  blockRunsTouching,
  intersectRuns,
  parseBlockUninitGroups,
  subtractRuns,
} from '../../../src/boot/ext-block-runs.ts';
import { parseDumpe2fs } from '../../../src/boot/ext4-allocation.ts';
import { mountNewPartitionReadWrite } from '../../../src/boot/mount-new-partition.ts';
import { maxProtectedBytes, protectExtBlocks, releaseExtBlocks } from '../../../src/boot/protect-ext-blocks.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import type { ByteRange } from '../../../src/disk/byte-range.ts';
import type { LoopDevice } from '../../../src/disk/loop-device.ts';
import { attachLoopAt } from '../../../src/disk/offset-loop.ts';

const MIB = 1024 * 1024;
const PARTITION_START_BYTES = MIB;
const PATTERN = 0xa5;

const run = (command: string, args: readonly string[]): string =>
  execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** e2fsck -fn: exit 0 is a clean filesystem. */
function fsckClean(device: string): { ok: boolean; output: string } {
  const result = spawnSync('e2fsck', ['-fn', device], { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

function readBytes(device: string, offsetBytes: number, lengthBytes: number): Buffer {
  const buffer = Buffer.alloc(lengthBytes);
  const fd = openSync(device, 'r');
  try {
    readSync(fd, buffer, 0, lengthBytes, offsetBytes);
  } finally {
    closeSync(fd);
  }
  return buffer;
}

function sha256Device(device: string, sizeBytes: number): string {
  const hash = createHash('sha256');
  for (let offset = 0; offset < sizeBytes; offset += 4 * MIB) {
    hash.update(readBytes(device, offset, Math.min(4 * MIB, sizeBytes - offset)));
  }
  return hash.digest('hex');
}

interface Disk {
  readonly dir: string;
  readonly whole: string;
  readonly partition: string;
  readonly partitionSizeBytes: number;
  readonly preBadBlocks: readonly number[];
  cleanup(): Promise<void>;
}

/** A disk image with one msdos partition at 1 MiB holding a fresh ext4, both as loop devices. */
async function makeDisk(o: {
  blockSizeBytes: number;
  partitionSizeBytes: number;
  preBadBlock?: number;
}): Promise<Disk> {
  const dir = mkdtempSync(join(tmpdir(), 'reimage-protect-'));
  const image = join(dir, 'disk.img');
  writeFileSync(image, '');
  run('truncate', ['-s', String(PARTITION_START_BYTES + o.partitionSizeBytes + MIB), image]);
  spawnSync('sfdisk', ['-q', image], {
    input: `label: dos\nstart=2048, size=${o.partitionSizeBytes / 512}, type=83\n`,
    encoding: 'utf8',
  });
  const whole = run('losetup', ['--find', '--show', image]).trim();
  let partition: LoopDevice | undefined;
  try {
    partition = await attachLoopAt(whole, { offsetBytes: PARTITION_START_BYTES, sizeBytes: o.partitionSizeBytes });
    const badList = join(dir, 'bad.txt');
    writeFileSync(badList, o.preBadBlock === undefined ? '' : `${o.preBadBlock}\n`);
    // -E nodiscard: mke2fs must not discard (zero) the loop, so what the test writes is all there is.
    run('mke2fs', [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-b',
      String(o.blockSizeBytes),
      '-E',
      'nodiscard',
      '-l',
      badList,
      partition.device,
    ]);
  } catch (error) {
    await partition?.detach();
    run('losetup', ['-d', whole]);
    throw error;
  }
  const loop = partition;
  return {
    dir,
    whole,
    partition: loop.device,
    partitionSizeBytes: o.partitionSizeBytes,
    preBadBlocks: o.preBadBlock === undefined ? [] : [o.preBadBlock],
    async cleanup() {
      spawnSync('umount', [join(dir, 'mnt')]);
      await loop.detach();
      spawnSync('losetup', ['-d', whole]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface ExtView {
  readonly blockSizeBytes: number;
  readonly blockCount: number;
  readonly free: BlockRun[];
  readonly blockUninit: BlockRun[];
  readonly bad: number[];
}

function viewExt(device: string): ExtView {
  const dump = run('dumpe2fs', [device]);
  const allocation = parseDumpe2fs(dump);
  const blockCount = Number(/^Block count:\s+(\d+)/m.exec(dump)?.[1]);
  const bad = run('dumpe2fs', ['-b', device])
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map(Number);
  return {
    blockSizeBytes: allocation.blockSizeBytes,
    blockCount,
    free: subtractRuns([{ firstBlock: 0, blockCount }], allocation.ranges),
    blockUninit: parseBlockUninitGroups(dump),
    bad,
  };
}

/**
 * Refuge-like ranges in free space (bytes from the filesystem's start): 21 blocks from the very
 * first free block, unaligned at both ends (libext2fs allocates the bad-block inode's first
 * indirect block at the lowest free block once 12 blocks are listed: the 13th of this range); 300 blocks (more than the inode's 12 direct blocks, so indirect blocks are needed); a
 * run in a BLOCK_UNINIT group if there is one (the kernel computes such a bitmap, never reads it);
 * the last free block, ending at the filesystem's end.
 */
function pickFreeRanges(view: ExtView): ByteRange[] {
  const bs = view.blockSizeBytes;
  const first = view.free[0] as BlockRun;
  const big = view.free.find((r) => r !== first && r.blockCount >= 400) as BlockRun;
  // A default 4 KiB filesystem this small has none (mke2fs never marks the last group, nor the
  // journal's); then the last free run stands in.
  const uninitGroup = view.blockUninit.at(-1);
  const inLastGroup = (uninitGroup === undefined ? view.free.slice(-1) : intersectRuns(view.free, [uninitGroup])).find(
    (r) => r.blockCount >= 64,
  ) as BlockRun;
  const last = view.free.at(-1) as BlockRun;
  assert.ok(first.blockCount >= 22 && big !== undefined && inLastGroup !== undefined, 'free space to place ranges in');
  const lastBlock = last.firstBlock + last.blockCount - 1;
  assert.equal(lastBlock, view.blockCount - 1, 'the last block is free');
  return [
    { offsetBytes: first.firstBlock * bs + 100, lengthBytes: 20 * bs },
    { offsetBytes: (big.firstBlock + 10) * bs, lengthBytes: 300 * bs - 1000 },
    { offsetBytes: (inLastGroup.firstBlock + 8) * bs, lengthBytes: 16 * bs },
    { offsetBytes: lastBlock * bs + 7, lengthBytes: bs - 7 },
  ];
}

function writePattern(disk: Disk, ranges: readonly ByteRange[]): void {
  const fd = openSync(disk.whole, 'r+');
  try {
    for (const range of ranges) {
      writeSync(
        fd,
        Buffer.alloc(range.lengthBytes, PATTERN),
        0,
        range.lengthBytes,
        PARTITION_START_BYTES + range.offsetBytes,
      );
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Ranges whose bytes on the whole disk are no longer all 0xA5. */
function damagedRanges(disk: Disk, ranges: readonly ByteRange[]): ByteRange[] {
  return ranges.filter((range) => {
    const bytes = readBytes(disk.whole, PARTITION_START_BYTES + range.offsetBytes, range.lengthBytes);
    return !bytes.equals(Buffer.alloc(range.lengthBytes, PATTERN));
  });
}

/** Writes until ENOSPC: one big file of zeros, then one-block files for what is left. */
function fillToEnospc(dir: string, tag: string, blockSizeBytes: number): void {
  spawnSync('dd', ['if=/dev/zero', `of=${join(dir, `${tag}-big`)}`, 'bs=1M', 'conv=fsync'], { stdio: 'ignore' });
  for (let i = 0; i < 1_000_000; i++) {
    try {
      writeFileSync(join(dir, `${tag}-${i}`), Buffer.alloc(blockSizeBytes, 0x11), { flush: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
      throw error;
    }
  }
  run('sync', ['-f', dir]);
}

/** Mounts with the new-partition options, fills, deletes, fills again, unmounts. */
async function mountAndFillTwice(disk: Disk, blockSizeBytes: number): Promise<string> {
  const mounted = await mountNewPartitionReadWrite(disk.partition, join(disk.dir, 'mnt'));
  let options = '';
  try {
    options = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .find((line) => line.split(' ')[1] === mounted.dir)
      ?.split(' ')[3] as string;
    fillToEnospc(mounted.dir, 'a', blockSizeBytes);
    for (const name of readdirSync(mounted.dir)) {
      if (name !== 'lost+found') rmSync(join(mounted.dir, name), { recursive: true, force: true });
    }
    run('sync', ['-f', mounted.dir]);
    fillToEnospc(mounted.dir, 'b', blockSizeBytes);
  } finally {
    await mounted.unmount();
  }
  return options;
}

const CASES = [
  { name: '4 KiB blocks (metadata_csum, 64bit, flex_bg)', blockSizeBytes: 4096, partitionSizeBytes: 288 * MIB },
  { name: '1 KiB blocks', blockSizeBytes: 1024, partitionSizeBytes: 32 * MIB },
] as const;

describe('protectExtBlocks keeps free refuge blocks of a new ext4 intact through a read-write fill', () => {
  before(() => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root (loop devices, mounts)');
  });

  for (const c of CASES) {
    describe(c.name, () => {
      let disk: Disk;
      let ranges: ByteRange[];
      before(async () => {
        // A bad block the filesystem has from mke2fs: protect and release must keep it.
        disk = await makeDisk({ ...c, preBadBlock: c.partitionSizeBytes / c.blockSizeBytes - 200 });
      });
      after(async () => disk?.cleanup());

      it('has the features the armed run meets, and a pre-existing bad block', () => {
        const features = run('dumpe2fs', ['-h', disk.partition]);
        if (c.blockSizeBytes === 4096) {
          for (const feature of ['metadata_csum', '64bit', 'flex_bg'])
            assert.match(features, new RegExp(`features:.*\\b${feature}\\b`));
        }
        const view = viewExt(disk.partition);
        assert.equal(view.blockSizeBytes, c.blockSizeBytes);
        assert.deepEqual(view.bad, disk.preBadBlocks);
      });

      it('protects, twice (a resumed run), the fill leaves the 0xA5 bytes alone, release frees them', async () => {
        const view = viewExt(disk.partition);
        ranges = pickFreeRanges(view);
        const runs = blockRunsTouching(ranges, view.blockSizeBytes);
        if (c.blockSizeBytes === 1024) {
          assert.ok(intersectRuns(runs, view.blockUninit).length > 0, 'one range lies in a BLOCK_UNINIT group');
        }
        writePattern(disk, ranges);

        // A run cut short right after the blocks were marked in use (before e2fsck listed them):
        // they look in use, yet must be taken as the refuge's own.
        const setb = join(disk.dir, 'setb');
        writeFileSync(setb, runs.map((r) => `setb ${r.firstBlock} ${r.blockCount}\n`).join(''));
        run('debugfs', ['-w', '-f', setb, disk.partition]);
        const first = await protectExtBlocks(disk.partition, ranges);
        const blockCount = runs.reduce((sum, r) => sum + r.blockCount, 0);
        assert.deepEqual(first, { blocks: blockCount, alreadyProtected: 0 });
        const again = await protectExtBlocks(disk.partition, ranges);
        assert.deepEqual(again, { blocks: blockCount, alreadyProtected: blockCount });
        const protectedView = viewExt(disk.partition);
        assert.deepEqual(intersectRuns(runs, protectedView.free), [], 'no protected block is free');
        assert.deepEqual(
          intersectRuns(runs, protectedView.blockUninit),
          [],
          'no protected block is in a BLOCK_UNINIT group',
        );
        assert.ok(
          disk.preBadBlocks.every((b) => protectedView.bad.includes(b)),
          'the old bad block is still listed',
        );
        assert.deepEqual(damagedRanges(disk, ranges), [], 'protecting wrote nothing over the refuge');

        const options = await mountAndFillTwice(disk, c.blockSizeBytes);
        assert.match(options, /(^|,)noinit_itable(,|$)/);
        assert.deepEqual(damagedRanges(disk, ranges), [], 'the 0xA5 ranges survive two fills to ENOSPC');
        const filled = fsckClean(disk.partition);
        assert.ok(filled.ok, filled.output);

        const released = await releaseExtBlocks(disk.partition, ranges);
        assert.deepEqual(released, { blocks: blockCount, freeBlocks: blockCount });
        const clean = fsckClean(disk.partition);
        assert.ok(clean.ok, clean.output);
        // The armed run releases before its commit, and a cut between the two boots the recovery
        // path from these very blocks: the release must not write a byte into them.
        assert.deepEqual(damagedRanges(disk, ranges), [], 'releasing wrote nothing over the refuge');
        const releasedView = viewExt(disk.partition);
        assert.deepEqual(subtractRuns(runs, releasedView.free), [], 'every released block is free again');
        assert.deepEqual(releasedView.bad, disk.preBadBlocks, 'only the bad block the filesystem had is left');
        // Releasing again changes nothing.
        assert.deepEqual(await releaseExtBlocks(disk.partition, ranges), { blocks: 0, freeBlocks: blockCount });

        // A run cut short with only the first range listed: protecting again completes the list
        // without an indirect block landing on (and zeroing) a refuge block.
        const partial = join(disk.dir, 'partial');
        const firstRun = runs[0] as BlockRun;
        const partialBlocks = Array.from({ length: firstRun.blockCount }, (_, i) => firstRun.firstBlock + i);
        writeFileSync(partial, `${[...partialBlocks, ...disk.preBadBlocks].sort((a, b) => a - b).join('\n')}\n`);
        // Listed as protectExtBlocks would have (blocks marked in use first: a raw e2fsck -L
        // would put the list's first indirect block on the range's 13th block).
        run('debugfs', ['-w', '-f', setb, disk.partition]);
        spawnSync('e2fsck', ['-fy', '-L', partial, disk.partition]);
        assert.deepEqual(viewExt(disk.partition).bad.length, firstRun.blockCount + disk.preBadBlocks.length);
        assert.deepEqual(await protectExtBlocks(disk.partition, ranges), {
          blocks: blockCount,
          alreadyProtected: firstRun.blockCount,
        });
        assert.deepEqual(damagedRanges(disk, ranges), [], 'completing a partial list wrote nothing over the refuge');
        await releaseExtBlocks(disk.partition, ranges);
        const end = fsckClean(disk.partition);
        assert.ok(end.ok, end.output);
      });

      it('refuses a range over blocks in use (an inode table, the journal) and one past the end, changing nothing', async () => {
        const view = viewExt(disk.partition);
        const bs = view.blockSizeBytes;
        const itable = /Inode table at (\d+)-(\d+)/.exec(run('dumpe2fs', [disk.partition]))?.[1];
        const digestBefore = sha256Device(disk.partition, disk.partitionSizeBytes);
        const free = view.free[0] as BlockRun;
        await assert.rejects(
          protectExtBlocks(disk.partition, [
            { offsetBytes: free.firstBlock * bs, lengthBytes: bs },
            { offsetBytes: Number(itable) * bs + 10, lengthBytes: 20 },
          ]),
          (e: unknown) =>
            isReimageError(e) && e.code === 'REIMAGE_REFUGE_BLOCKS_IN_USE' && e.message.includes(itable as string),
        );
        await assert.rejects(
          protectExtBlocks(disk.partition, [{ offsetBytes: (view.blockCount - 1) * bs, lengthBytes: bs + 1 }]),
          (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_REFUGE_PROTECT_OUTSIDE',
        );
        assert.equal(sha256Device(disk.partition, disk.partitionSizeBytes), digestBefore, 'not a byte changed');
        const clean = fsckClean(disk.partition);
        assert.ok(clean.ok, clean.output);
      });
    });
  }

  for (const c of CASES) {
    it(`control (${c.name}): without protection the same fill overwrites the free ranges`, async () => {
      const disk = await makeDisk(c);
      try {
        const ranges = pickFreeRanges(viewExt(disk.partition));
        writePattern(disk, ranges);
        await mountAndFillTwice(disk, c.blockSizeBytes);
        assert.deepEqual(damagedRanges(disk, ranges), ranges, 'every unprotected range was written by the fill');
      } finally {
        await disk.cleanup();
      }
    });
  }
});

describe('protectExtBlocks and the bad-block inode size limit (2 GiB less one block)', () => {
  it('takes exactly the limit, refuses one block more before writing anything', async () => {
    const disk = await makeDisk({ blockSizeBytes: 4096, partitionSizeBytes: 2560 * MIB });
    try {
      const view = viewExt(disk.partition);
      const take = (blocks: number): ByteRange[] => {
        const ranges: ByteRange[] = [];
        for (const free of view.free) {
          const count = Math.min(blocks, free.blockCount);
          if (count > 0) ranges.push({ offsetBytes: free.firstBlock * 4096, lengthBytes: count * 4096 });
          blocks -= count;
        }
        return ranges;
      };
      const limitBlocks = maxProtectedBytes(4096) / 4096;
      assert.equal(limitBlocks, 524287);
      await assert.rejects(
        protectExtBlocks(disk.partition, take(limitBlocks + 1)),
        (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_REFUGE_PROTECT_UNSUPPORTED',
      );
      assert.deepEqual(viewExt(disk.partition).bad, [], 'nothing was listed');
      assert.deepEqual(await protectExtBlocks(disk.partition, take(limitBlocks)), {
        blocks: limitBlocks,
        alreadyProtected: 0,
      });
      const clean = fsckClean(disk.partition);
      assert.ok(clean.ok, clean.output);
    } finally {
      await disk.cleanup();
    }
  });
});

describe('attachLoopAt', () => {
  it('refuses a window running past the end of the disk (losetup would shorten it silently)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reimage-offset-loop-'));
    try {
      const image = join(dir, 'disk.img');
      writeFileSync(image, Buffer.alloc(4 * MIB));
      await assert.rejects(
        attachLoopAt(image, { offsetBytes: MIB, sizeBytes: 4 * MIB }),
        (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_DISK_LOOP_SIZE_MISMATCH',
      );
      assert.equal(run('losetup', ['-j', image]).trim(), '', 'no loop device left attached');
      const loop = await attachLoopAt(image, { offsetBytes: MIB, sizeBytes: 2 * MIB, readOnly: true });
      try {
        assert.equal(run('blockdev', ['--getsize64', loop.device]).trim(), String(2 * MIB));
        assert.equal(run('blockdev', ['--getro', loop.device]).trim(), '1');
      } finally {
        await loop.detach();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
