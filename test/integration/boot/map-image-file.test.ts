// The armed write's map of a new image, from its filesystems' allocation: proved on real images
// (msdos and GPT; ext4 with 1 KiB and 4 KiB blocks, FAT16, FAT32, xfs) by writing ONLY the mapped bytes onto a
// target filled with 0xA5 and reading every file back through a mount. A file's block of real
// zeros is data: a map made from zero runs would leave 0xA5 there.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkBlockMap, findUncovered } from '../../../src/boot/check-block-map.ts';
import type { DiskMap } from '../../../src/boot/disk-map.ts';
import { mapImageFile } from '../../../src/boot/map-image-file.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import type { ByteRange } from '../../../src/disk/byte-range.ts';
import { parsePartitionTable, TABLE_HEAD_BYTES } from '../../../src/disk/partition-table.ts';
import { loadBlockMap } from '../../../src/image/block-map.ts';

const MIB = 1024 * 1024;
const KIB = 1024;
const IMAGE_BYTES = 96 * MIB;
const BIOS_BOOT_GUID = '21686148-6449-6E6F-744E-656564454649';

const run = (command: string, args: readonly string[]): string =>
  execFileSync(command, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    // mtools refuses a FAT whose geometry does not match a floppy's unless told not to check.
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** Files every filesystem gets; `zeros-inside.bin` holds 64 KiB of real zeros between random data. */
function makeFiles(): Map<string, Buffer> {
  return new Map([
    ['random.bin', randomBytes(300 * KIB + 7)],
    ['zeros-inside.bin', Buffer.concat([randomBytes(64 * KIB), Buffer.alloc(64 * KIB), randomBytes(64 * KIB)])],
    ['all-zeros.bin', Buffer.alloc(64 * KIB)],
    ['big.bin', randomBytes(3 * MIB)],
    ['dir/small.txt', Buffer.from('a small file\n')],
  ]);
}

function readRange(path: string, range: ByteRange): Buffer {
  const buffer = Buffer.alloc(range.lengthBytes);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buffer, 0, range.lengthBytes, range.offsetBytes);
  } finally {
    closeSync(fd);
  }
  return buffer;
}

function writeRange(path: string, data: Uint8Array, offsetBytes: number): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offsetBytes);
  } finally {
    closeSync(fd);
  }
}

function covered(map: DiskMap, range: ByteRange): boolean {
  return map.ranges.some(
    (r) => r.offsetBytes <= range.offsetBytes && range.offsetBytes + range.lengthBytes <= r.offsetBytes + r.lengthBytes,
  );
}

function withLoop<T>(
  image: string,
  startBytes: number,
  sizeBytes: number,
  readOnly: boolean,
  fn: (device: string) => T,
): T {
  const args = ['--find', '--show', '--offset', String(startBytes), '--sizelimit', String(sizeBytes)];
  const device = run('losetup', [...args, ...(readOnly ? ['--read-only'] : []), image]).trim();
  try {
    return fn(device);
  } finally {
    run('losetup', ['-d', device]);
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

interface FsSpec {
  readonly number: number;
  readonly kind: 'ext4' | 'vfat' | 'xfs';
  readonly mkfsArgs: readonly string[];
}

interface BuiltImage {
  readonly path: string;
  readonly partitions: { number: number; startBytes: number; sizeBytes: number }[];
  readonly files: Map<string, Buffer>;
  readonly filesystems: readonly FsSpec[];
  /** Contents of the files written then deleted, one per filesystem: their bytes stay on free blocks. */
  readonly deleted: Buffer[];
}

/**
 * A disk image with random bytes in the gap before the first partition (as GRUB's core.img on
 * msdos), filesystems filled through a mount, and a 2 MiB random file written then deleted (its
 * bytes stay in the image on blocks its filesystem calls free).
 */
function buildImage(
  dir: string,
  name: string,
  sfdiskScript: string,
  filesystems: readonly FsSpec[],
  sizeBytes = IMAGE_BYTES,
): BuiltImage {
  const path = join(dir, name);
  run('truncate', ['-s', String(sizeBytes), path]);
  execFileSync('sfdisk', ['-q', path], { input: sfdiskScript });
  const layout = JSON.parse(run('sfdisk', ['-J', path])) as {
    partitiontable: { sectorsize: number; partitions: { node: string; start: number; size: number }[] };
  };
  const partitions = layout.partitiontable.partitions.map((p) => ({
    number: Number(/(\d+)$/.exec(p.node)?.[1]),
    startBytes: p.start * 512,
    sizeBytes: p.size * 512,
  }));
  const first = Math.min(...partitions.map((p) => p.startBytes));
  writeRange(path, randomBytes(first - 34 * 512), 34 * 512);
  const files = makeFiles();
  const deleted: Buffer[] = [];
  for (const fs of filesystems) {
    const partition = partitions.find((p) => p.number === fs.number);
    assert.ok(partition);
    withLoop(path, partition.startBytes, partition.sizeBytes, false, (device) => {
      run(`mkfs.${fs.kind}`, [...fs.mkfsArgs, device]);
    });
    if (fs.kind === 'vfat') {
      deleted.push(fillFat(dir, `${path}@@${partition.startBytes}`, files));
      continue;
    }
    withLoop(path, partition.startBytes, partition.sizeBytes, false, (device) => {
      const mountDir = join(dir, `${name}-p${fs.number}`);
      withMount(device, mountDir, false, () => {
        const gone = randomBytes(2 * MIB);
        deleted.push(gone);
        writeFileSync(join(mountDir, 'deleted.bin'), gone);
        run('sync', []);
        rmSync(join(mountDir, 'deleted.bin'));
        mkdirSync(join(mountDir, 'dir'));
        for (const [file, content] of files) writeFileSync(join(mountDir, file), content);
        run('sync', []);
      });
    });
  }
  return { path, partitions, files, filesystems, deleted };
}

/**
 * Fills a FAT through mtools (this host's kernel has no vfat driver to mount it):
 * the files, then a 2 MiB file written and deleted.
 */
function fillFat(dir: string, fat: string, files: Map<string, Buffer>): Buffer {
  const local = join(dir, 'fat-files');
  mkdirSync(join(local, 'dir'), { recursive: true });
  const gone = randomBytes(2 * MIB);
  writeFileSync(join(local, 'deleted.bin'), gone);
  run('mmd', ['-i', fat, '::dir']);
  for (const [file, content] of files) {
    writeFileSync(join(local, file), content);
    run('mcopy', ['-i', fat, join(local, file), `::${file}`]);
  }
  // Last, so no later file reuses its clusters.
  run('mcopy', ['-i', fat, join(local, 'deleted.bin'), '::deleted.bin']);
  run('mdel', ['-i', fat, '::deleted.bin']);
  rmSync(local, { recursive: true });
  return gone;
}

/** A target of the image's size filled with 0xA5, onto which ONLY the mapped ranges are copied. */
function writeMappedOnly(dir: string, image: string, map: DiskMap): string {
  const target = join(dir, `${image.split('/').at(-1)}.target`);
  writeFileSync(target, Buffer.alloc(statSync(image).size, 0xa5));
  for (const range of map.ranges) {
    for (let at = 0; at < range.lengthBytes; at += 8 * MIB) {
      const piece = { offsetBytes: range.offsetBytes + at, lengthBytes: Math.min(8 * MIB, range.lengthBytes - at) };
      writeRange(target, readRange(image, piece), piece.offsetBytes);
    }
  }
  return target;
}

/** Every file read back through a read-only mount of the target equals what was written. */
function checkFilesOnTarget(dir: string, built: BuiltImage, target: string): void {
  for (const fs of built.filesystems) {
    const partition = built.partitions.find((p) => p.number === fs.number);
    assert.ok(partition);
    withLoop(target, partition.startBytes, partition.sizeBytes, true, (device) => {
      // The filesystem's own checker finds its metadata whole (every bitmap, table and journal block was mapped).
      if (fs.kind === 'ext4') run('e2fsck', ['-fn', device]);
      else if (fs.kind === 'xfs') run('xfs_repair', ['-n', device]);
      else run('fsck.vfat', ['-n', device]);
    });
    if (fs.kind === 'vfat') {
      for (const [file, content] of built.files) {
        const out = join(dir, 'read-back');
        run('mcopy', ['-n', '-i', `${target}@@${partition.startBytes}`, `::${file}`, out]);
        assert.equal(sha256(readFileSync(out)), sha256(content), `vfat ${file} on the target`);
        rmSync(out);
      }
      continue;
    }
    withLoop(target, partition.startBytes, partition.sizeBytes, true, (device) => {
      const mountDir = join(dir, `check-p${fs.number}`);
      withMount(device, mountDir, true, () => {
        for (const [file, content] of built.files) {
          assert.equal(sha256(readFileSync(join(mountDir, file))), sha256(content), `${fs.kind} ${file} on the target`);
        }
      });
    });
  }
}

/** The bytes of each block of an ext4 file, from debugfs (no mount), in image offsets. */
function ext4FileBlocks(image: string, startBytes: number, file: string): ByteRange[] {
  const stats = run('dumpe2fs', ['-h', `${image}?offset=${startBytes}`]);
  const blockBytes = Number(/^Block size:\s+(\d+)/m.exec(stats)?.[1]);
  const blocks = run('debugfs', ['-R', `blocks /${file}`, `${image}?offset=${startBytes}`])
    .trim()
    .split(/\s+/)
    .map(Number);
  return blocks.map((block) => ({ offsetBytes: startBytes + block * blockBytes, lengthBytes: blockBytes }));
}

describe('mapImageFile on real images', () => {
  let dir: string;
  let msdos: BuiltImage;
  let gpt: BuiltImage;

  before(() => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root (loop devices, mounts)');
    dir = mkdtempSync(join(tmpdir(), 'reimage-fsmap-'));
    msdos = buildImage(dir, 'msdos.img', 'label: dos\nstart=2048, size=24MiB, type=c\nsize=48MiB, type=83\n', [
      { number: 1, kind: 'vfat', mkfsArgs: [] },
      // 1 KiB blocks: block 0 lies outside every group and must still be mapped.
      { number: 2, kind: 'ext4', mkfsArgs: ['-q', '-F', '-b', '1024'] },
    ]);
    gpt = buildImage(
      dir,
      'gpt.img',
      `label: gpt\nstart=2048, size=1MiB, type=${BIOS_BOOT_GUID}\nsize=40MiB, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\nsize=48MiB, type=linux\n`,
      [
        { number: 2, kind: 'vfat', mkfsArgs: ['-F', '32', '-s', '1'] },
        { number: 3, kind: 'ext4', mkfsArgs: ['-q', '-F', '-b', '4096'] },
      ],
    );
    // The BIOS boot partition holds GRUB's core.img in real images: bytes no filesystem describes.
    const bios = gpt.partitions.find((p) => p.number === 1);
    assert.ok(bios);
    writeRange(gpt.path, randomBytes(bios.sizeBytes), bios.startBytes);
  });
  after(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the partition tables as sfdisk wrote them', () => {
    for (const built of [msdos, gpt]) {
      const table = parsePartitionTable(
        readRange(built.path, { offsetBytes: 0, lengthBytes: TABLE_HEAD_BYTES }),
        IMAGE_BYTES,
      );
      assert.deepEqual(
        table.partitions.map(({ number, startBytes, sizeBytes }) => ({ number, startBytes, sizeBytes })),
        built.partitions,
      );
    }
  });

  for (const which of ['msdos', 'gpt'] as const) {
    it(`${which}: writing only the mapped bytes onto a 0xA5 target gives back every file, the boot area and the table`, async (t) => {
      const built = which === 'msdos' ? msdos : gpt;
      const map = await mapImageFile(built.path);
      const target = writeMappedOnly(dir, built.path, map);
      checkFilesOnTarget(dir, built, target);
      const first = Math.min(...built.partitions.map((p) => p.startBytes));
      const head = { offsetBytes: 0, lengthBytes: first };
      assert.equal(
        sha256(readRange(target, head)),
        sha256(readRange(built.path, head)),
        'LBA 0 up to the first partition',
      );
      if (which === 'gpt') {
        const tail = { offsetBytes: IMAGE_BYTES - 33 * 512, lengthBytes: 33 * 512 };
        assert.equal(sha256(readRange(target, tail)), sha256(readRange(built.path, tail)), 'the backup GPT');
        const bios = built.partitions.find((p) => p.number === 1);
        assert.ok(bios);
        assert.deepEqual(
          map.wholePartitions.map((w) => w.number),
          [1],
          'the BIOS boot partition is mapped whole',
        );
        assert.ok(covered(map, { offsetBytes: bios.startBytes, lengthBytes: bios.sizeBytes }));
      } else {
        assert.deepEqual(map.wholePartitions, []);
      }
      // Much smaller than the image: the deleted file and the free space are not in it.
      assert.ok(map.mappedBytes < IMAGE_BYTES / 4, `mapped ${map.mappedBytes} of ${IMAGE_BYTES} bytes`);
      t.diagnostic(`${which}: mapped ${map.mappedBytes} bytes of ${IMAGE_BYTES} in ${map.ranges.length} ranges`);
    });
  }

  it('maps the ext4 file block of real zeros, which a zero-run map would skip', async () => {
    for (const built of [msdos, gpt]) {
      const map = await mapImageFile(built.path);
      const ext4 = built.filesystems.find((fs) => fs.kind === 'ext4');
      const partition = built.partitions.find((p) => p.number === ext4?.number);
      assert.ok(partition);
      const blocks = ext4FileBlocks(built.path, partition.startBytes, 'zeros-inside.bin');
      const zeroBlocks = blocks.filter((block) => readRange(built.path, block).every((byte) => byte === 0));
      assert.equal(
        zeroBlocks.reduce((sum, b) => sum + b.lengthBytes, 0),
        64 * KIB,
        'the file holds 64 KiB of zeros on disk',
      );
      for (const block of blocks) assert.ok(covered(map, block), `block at ${block.offsetBytes} is mapped`);
    }
  });

  it('bmaptool as an oracle: it maps every byte of our map that holds data, and the deleted file that we skip', async (t) => {
    for (const built of [msdos, gpt]) {
      const map = await mapImageFile(built.path);
      const bmapPath = `${built.path}.bmap`;
      run('bmaptool', ['create', '-o', bmapPath, built.path]);
      const bmap = await loadBlockMap(bmapPath);
      // bmaptool maps by holes of the image FILE, so it maps the freed blocks of deleted.bin; ours does not.
      const image = readFileSync(built.path);
      for (const gone of built.deleted) {
        const offsetBytes = image.indexOf(gone.subarray(0, 64 * KIB));
        assert.ok(offsetBytes > 0, `the deleted file ${built.deleted.indexOf(gone)} is still in ${built.path}`);
        const range = { offsetBytes, lengthBytes: 64 * KIB };
        assert.ok(!covered(map, range), `ours skips the deleted file at ${offsetBytes}`);
        const bmapCovers = bmap.ranges.some(
          (r) => r.offsetBytes <= offsetBytes && offsetBytes + range.lengthBytes <= r.offsetBytes + r.lengthBytes,
        );
        assert.ok(bmapCovers, `bmaptool maps the deleted file at ${offsetBytes}`);
      }
      // Where bmaptool leaves a hole inside our map, the image reads as zeros there (allocated but
      // never written: lazily initialised inode tables): our map is stricter, never looser.
      let uncoveredBytes = 0;
      for (let uncovered = findUncovered(map, bmap); uncovered !== undefined; ) {
        const gap = uncovered;
        assert.ok(
          readRange(built.path, gap).every((byte) => byte === 0),
          `bytes at ${gap.offsetBytes}`,
        );
        uncoveredBytes += gap.lengthBytes;
        const rest = map.ranges
          .map((r) => ({
            offsetBytes: Math.max(r.offsetBytes, gap.offsetBytes + gap.lengthBytes),
            end: r.offsetBytes + r.lengthBytes,
          }))
          .filter((r) => r.end > r.offsetBytes)
          .map((r) => ({ offsetBytes: r.offsetBytes, lengthBytes: r.end - r.offsetBytes }));
        uncovered = findUncovered({ ...map, ranges: rest }, bmap);
      }
      t.diagnostic(
        `${built.path.split('/').at(-1)}: bmaptool maps ${bmap.mappedBytes} bytes, ours ${map.mappedBytes}, ours not in bmaptool's (all zeros) ${uncoveredBytes}`,
      );
    }
  });

  it('refuses a bmap that leaves out a file block of zeros, and an unreadable filesystem, changing nothing', async () => {
    const map = await mapImageFile(msdos.path);
    const ext4 = msdos.partitions.find((p) => p.number === 2);
    assert.ok(ext4);
    const zero = ext4FileBlocks(msdos.path, ext4.startBytes, 'all-zeros.bin')[0];
    assert.ok(zero);
    // A bmap mapping the whole image except that zero block (as a zero-run map would).
    const blockBytes = 1024;
    const firstBlock = zero.offsetBytes / blockBytes;
    const blocksCount = IMAGE_BYTES / blockBytes;
    const ranges = [
      { firstBlock: 0, lastBlock: firstBlock - 1, offsetBytes: 0, lengthBytes: zero.offsetBytes },
      {
        firstBlock: firstBlock + 1,
        lastBlock: blocksCount - 1,
        offsetBytes: zero.offsetBytes + blockBytes,
        lengthBytes: IMAGE_BYTES - zero.offsetBytes - blockBytes,
      },
    ];
    const holed = {
      version: '2.0',
      imageSizeBytes: IMAGE_BYTES,
      blockSizeBytes: blockBytes,
      blocksCount,
      mappedBlocksCount: blocksCount - 1,
      checksumType: undefined,
      ranges,
      mappedBytes: IMAGE_BYTES - blockBytes,
    };
    assert.throws(
      () => checkBlockMap(map, holed),
      (e: unknown) =>
        isReimageError(e) && e.code === 'REIMAGE_BOOT_BMAP_INCOMPLETE' && e.evidence.offsetBytes === zero.offsetBytes,
    );

    // A damaged ext4 superblock: refused, the image bit for bit as it was.
    const broken = join(dir, 'broken.img');
    writeFileSync(broken, readFileSync(msdos.path));
    // Its block count and friends, not its magic (a partition without the magic is mapped whole).
    writeRange(broken, randomBytes(48), ext4.startBytes + 1024 + 4);
    const before = sha256(readFileSync(broken));
    await assert.rejects(mapImageFile(broken), (e: unknown) => {
      assert.ok(isReimageError(e), String(e));
      assert.equal(e.code, 'REIMAGE_BOOT_FILESYSTEM_UNREADABLE');
      assert.equal(e.targetState, 'untouched');
      return true;
    });
    assert.equal(sha256(readFileSync(broken)), before);
  });
  it('xfs: writing only the mapped bytes onto a 0xA5 target gives back every file', async (t) => {
    // mkfs.xfs wants 300 MiB at least; the image is sparse, the target is written whole.
    const built = buildImage(
      dir,
      'xfs.img',
      'label: gpt\nstart=2048, size=320MiB, type=linux\n',
      [{ number: 1, kind: 'xfs', mkfsArgs: ['-q', '-f'] }],
      330 * MIB,
    );
    const map = await mapImageFile(built.path);
    assert.deepEqual(map.wholePartitions, [], 'xfs is read, not mapped whole');
    const target = writeMappedOnly(dir, built.path, map);
    checkFilesOnTarget(dir, built, target);
    const image = readFileSync(built.path);
    const gone = built.deleted[0];
    assert.ok(gone);
    const deletedAt = image.indexOf(gone.subarray(0, 64 * KIB));
    assert.ok(
      deletedAt > 0 && !covered(map, { offsetBytes: deletedAt, lengthBytes: 64 * KIB }),
      'the deleted file is skipped',
    );
    const partition = built.partitions[0];
    assert.ok(partition);
    // The internal log (tens of MiB) is allocated, so the map is larger than for ext4, still far below the image.
    assert.ok(map.mappedBytes < partition.sizeBytes / 2, `mapped ${map.mappedBytes}`);
    t.diagnostic(`xfs: mapped ${map.mappedBytes} bytes of ${statSync(built.path).size} in ${map.ranges.length} ranges`);
    rmSync(target);
  });
});
