// The armed write of a real disk image, mapped from its own filesystems (mapImageFile): only the
// mapped bytes go onto a 0xA5 target, LBA 0 comes with the commit, and the result is a disk whose
// ext4 passes `e2fsck -fn` with every file intact (the block of real zeros inside a file too),
// while the bytes of a deleted file (free blocks, unmapped) never reach the target.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mapImageFile } from '../../../src/boot/index.ts';
import { inspectTarget } from '../../../src/disk/index.ts';
import { commitFirstSector, writeMappedRanges } from '../../../src/image/index.ts';
import {
  attachLoop,
  detachLoop,
  dirtyFile,
  MIB,
  readRange,
  removeDir,
  requireTools,
  run,
  sha256,
} from './image-fixture.ts';
import { expectedTarget, firstDifference } from './mapped-image-fixture.ts';

const IMAGE_BYTES = 96 * MIB;
const TARGET_BYTES = 128 * MIB;

interface FsImage {
  readonly raw: string;
  readonly zstd: string;
  readonly startBytes: number;
  readonly sizeBytes: number;
  readonly files: Map<string, Buffer>;
  readonly deleted: Buffer;
}

function withLoopAt<T>(
  file: string,
  startBytes: number,
  sizeBytes: number,
  readOnly: boolean,
  fn: (d: string) => T,
): T {
  const args = ['--find', '--show', '--offset', String(startBytes), '--sizelimit', String(sizeBytes)];
  const device = run('losetup', [...args, ...(readOnly ? ['--read-only'] : []), file]).trim();
  try {
    return fn(device);
  } finally {
    spawnSync('losetup', ['-d', device]);
  }
}

function withMount<T>(device: string, dir: string, readOnly: boolean, fn: () => T): T {
  mkdirSync(dir, { recursive: true });
  run('mount', [...(readOnly ? ['-o', 'ro'] : []), device, dir]);
  try {
    return fn();
  } finally {
    run('umount', [dir]);
  }
}

/** A disk image (msdos or GPT) with one ext4 partition, filled through a mount, compressed with zstd. */
function buildExt4Image(dir: string, name: string, sfdiskScript: string, mkfsArgs: readonly string[]): FsImage {
  const raw = join(dir, name);
  run('truncate', ['-s', String(IMAGE_BYTES), raw]);
  execFileSync('sfdisk', ['-q', raw], { input: sfdiskScript });
  const layout = JSON.parse(run('sfdisk', ['-J', raw])) as {
    partitiontable: { partitions: { start: number; size: number }[] };
  };
  const partition = layout.partitiontable.partitions[0];
  assert.ok(partition);
  const startBytes = partition.start * 512;
  const sizeBytes = partition.size * 512;
  const files = new Map<string, Buffer>([
    ['random.bin', randomBytes(300 * 1024 + 7)],
    ['zeros-inside.bin', Buffer.concat([randomBytes(64 * 1024), Buffer.alloc(256 * 1024), randomBytes(64 * 1024)])],
    ['big.bin', randomBytes(9 * MIB)],
    ['dir/small.txt', Buffer.from('a small file\n')],
  ]);
  const deleted = randomBytes(4 * MIB);
  withLoopAt(raw, startBytes, sizeBytes, false, (device) => {
    run('mkfs.ext4', [...mkfsArgs, device]);
    const mountDir = join(dir, `${name}-mnt`);
    withMount(device, mountDir, false, () => {
      mkdirSync(join(mountDir, 'dir'));
      for (const [file, content] of files) writeFileSync(join(mountDir, file), content);
      // Last, so no later file reuses its blocks: its bytes stay in the image, on free blocks.
      writeFileSync(join(mountDir, 'deleted.bin'), deleted);
      run('sync', []);
      rmSync(join(mountDir, 'deleted.bin'));
    });
  });
  run('zstd', ['-q', '-f', raw, '-o', `${raw}.zst`]);
  return { raw, zstd: `${raw}.zst`, startBytes, sizeBytes, files, deleted };
}

describe('writeMappedRanges of a real ext4 image, mapped by mapImageFile', () => {
  let dir: string;
  const cases: { name: string; sfdisk: string; mkfs: readonly string[]; fileTarget: boolean }[] = [
    {
      name: 'gpt-4k.img',
      sfdisk: 'label: gpt\nstart=2048, size=80MiB, type=linux\n',
      mkfs: ['-q', '-F', '-b', '4096'],
      fileTarget: false,
    },
    // 1 KiB blocks: ranges that are not whole 4 KiB units, onto a disk image file (4 KiB O_DIRECT units).
    {
      name: 'msdos-1k.img',
      sfdisk: 'label: dos\nstart=2048, size=80MiB, type=83\n',
      mkfs: ['-q', '-F', '-b', '1024'],
      fileTarget: true,
    },
  ];

  before(() => {
    requireTools();
    dir = mkdtempSync(join(tmpdir(), 'reimage-mapped-fs-'));
  });
  after(() => {
    if (dir !== undefined) removeDir(dir);
  });

  for (const c of cases) {
    it(`${c.name}: only the mapped bytes, then the commit: e2fsck -fn passes, every file intact`, async (t) => {
      const image = buildExt4Image(dir, c.name, c.sfdisk, c.mkfs);
      const map = await mapImageFile(image.raw);
      const backing = dirtyFile(dir, `${c.name}.target`, TARGET_BYTES);
      const device = c.fileTarget ? undefined : attachLoop(backing);
      try {
        const targetPath = device ?? backing;
        const figures: number[] = [];
        const result = await writeMappedRanges({
          imagePath: image.zstd,
          target: targetPath,
          ranges: map.ranges,
          durableBytes: 0,
          checkpointBytes: 4 * MIB,
          onDurable: async (figure) => {
            figures.push(figure);
          },
        });
        assert.equal(result.totalBytes, map.mappedBytes);
        assert.equal(figures.at(-1), map.mappedBytes);
        if (device !== undefined) spawnSync('blockdev', ['--flushbufs', device]);
        const imageBytes = readRange(image.raw, 0, IMAGE_BYTES);
        // Before the commit: exactly the map, LBA 0 still old.
        const got = readRange(backing, 0, TARGET_BYTES);
        const at = firstDifference(got, expectedTarget(imageBytes, map.ranges, TARGET_BYTES, 512));
        assert.equal(at, -1, `the target differs from "the map's bytes over 0xA5" at byte ${at}`);
        // The deleted file's bytes lie on free blocks: not mapped, never written.
        assert.ok(imageBytes.includes(image.deleted.subarray(MIB, MIB + 4096)), 'the image still holds them');
        assert.ok(!got.includes(image.deleted.subarray(MIB, MIB + 4096)), 'the target does not');

        await commitFirstSector(await inspectTarget(targetPath), result.firstSector);
        if (device !== undefined) spawnSync('blockdev', ['--flushbufs', device]);
        assert.equal(sha256(readRange(backing, 0, 512)), sha256(imageBytes.subarray(0, 512)), 'LBA 0 after the commit');
        withLoopAt(backing, image.startBytes, image.sizeBytes, true, (part) => {
          run('e2fsck', ['-fn', part]);
          const mountDir = join(dir, `${c.name}-check`);
          withMount(part, mountDir, true, () => {
            for (const [file, content] of image.files)
              assert.equal(sha256(readFileSync(join(mountDir, file))), sha256(content), file);
          });
        });
        t.diagnostic(
          `${c.name}: ${map.mappedBytes} bytes mapped of ${IMAGE_BYTES} in ${map.ranges.length} ranges, ${result.bytesBuffered} through the page cache`,
        );
      } finally {
        if (device !== undefined) detachLoop(device);
      }
    });
  }
});
