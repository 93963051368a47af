import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ImageFormat } from '../../../src/image/index.ts';
import { detectImageFormat, sha256File, writeImage } from '../../../src/image/index.ts';
import {
  attachLoop,
  buildImageSet,
  detachLoop,
  dirtyFile,
  expectError,
  type ImageSet,
  MIB,
  readRange,
  redirty,
  removeDir,
  requireTools,
  run,
  sha256,
} from './image-fixture.ts';

const TARGET_BYTES = 16 * MIB;
const FORMATS: readonly Exclude<ImageFormat, 'raw'>[] = ['gzip', 'bzip2', 'xz', 'zstd'];

describe('writeImage onto real files and loop devices', () => {
  let set: ImageSet;
  let loopBacking: string;
  let loop: string | undefined;

  before(() => {
    requireTools();
    set = buildImageSet();
    loopBacking = dirtyFile(set.dir, 'loop-backing.img', TARGET_BYTES);
    loop = attachLoop(loopBacking);
  });

  after(() => {
    if (loop !== undefined) detachLoop(loop);
    if (set !== undefined) removeDir(set.dir);
  });

  /** The target holds the image byte for byte, and bytes past its end kept their 0xA5. */
  function assertWritten(targetPath: string, image: Buffer): void {
    const written = readRange(targetPath, 0, image.length);
    assert.equal(sha256(written), sha256(image), 'image bytes on the target');
    const tail = readRange(targetPath, image.length, TARGET_BYTES - image.length);
    assert.ok(
      tail.every((byte) => byte === 0xa5),
      'bytes past the image end unchanged',
    );
  }

  it('detects every format by magic bytes, not by name', async () => {
    const renamed = join(set.dir, 'looks-raw.img');
    copyFileSync(set.xz, renamed);
    assert.equal(await detectImageFormat(renamed), 'xz');
    assert.equal(await detectImageFormat(set.raw), 'raw');
    for (const format of FORMATS) assert.equal(await detectImageFormat(set[format]), format);
  });

  for (const format of ['raw', ...FORMATS] as const) {
    it(`round-trips ${format} onto a dirty regular file, zero runs included`, async () => {
      const target = dirtyFile(set.dir, `target-${format}.img`, TARGET_BYTES);
      const summary = await writeImage({ imagePath: set[format], targetPath: target, verify: true });
      assert.equal(summary.format, format);
      assert.equal(summary.imageSizeBytes, set.rawBytes.length);
      assert.equal(summary.readBackVerified, true);
      assert.equal(summary.imageSha256Verified, false);
      assert.ok(summary.bytesZeroed >= 3 * MIB, `long zero runs go to the kernel (${summary.bytesZeroed})`);
      assert.equal(statSync(target).size, TARGET_BYTES, 'never grown or truncated');
      assertWritten(target, set.rawBytes);
    });

    it(`round-trips ${format} onto a dirty loop device`, async () => {
      assert.ok(loop !== undefined);
      redirty(loop, TARGET_BYTES);
      const summary = await writeImage({ imagePath: set[format], targetPath: loop, verify: true });
      assert.equal(summary.targetKind, 'block-device');
      assert.equal(summary.readBackVerified, true);
      assertWritten(loop, set.rawBytes);
    });
  }

  it('writes an image whose size is not a whole number of sectors (zstd)', async () => {
    assert.ok(loop !== undefined);
    redirty(loop, TARGET_BYTES);
    const image = readFileSync(set.oddRaw);
    const summary = await writeImage({ imagePath: set.oddZstd, targetPath: loop, verify: true });
    assert.equal(summary.imageSizeBytes, 3 * MIB + 1001);
    assertWritten(loop, image);
  });

  it('verifies --sha256 before writing and reports it', async () => {
    const target = dirtyFile(set.dir, 'target-sha.img', TARGET_BYTES);
    const digest = await sha256File(set.zstd);
    const summary = await writeImage({ imagePath: set.zstd, targetPath: target, sha256: digest.toUpperCase() });
    assert.equal(summary.imageSha256Verified, true);
    assert.equal(summary.imageSha256, digest);
    assertWritten(target, set.rawBytes);
  });

  it('refuses a wrong digest with the target untouched, naming both digests', async () => {
    const target = dirtyFile(set.dir, 'target-badsha.img', TARGET_BYTES);
    const before = sha256(readFileSync(target));
    const error = await expectError(
      writeImage({ imagePath: set.bzip2, targetPath: target, sha256: 'ab'.repeat(32) }),
      'REIMAGE_IMAGE_DIGEST_MISMATCH',
    );
    assert.equal(error.targetTouched, false);
    assert.equal(error.evidence.expected, 'ab'.repeat(32));
    assert.equal(error.evidence.actual, await sha256File(set.bzip2));
    assert.equal(sha256(readFileSync(target)), before);
  });

  for (const format of FORMATS) {
    it(`refuses a truncated ${format} file before touching the target`, async () => {
      const truncated = join(set.dir, `truncated-${format}`);
      copyFileSync(set[format], truncated);
      truncateSync(truncated, Math.floor(statSync(truncated).size * 0.6));
      const target = dirtyFile(set.dir, `target-trunc-${format}.img`, TARGET_BYTES);
      const before = sha256(readFileSync(target));
      const error = await expectError(
        writeImage({ imagePath: truncated, targetPath: target }),
        'REIMAGE_IMAGE_CORRUPT',
      );
      assert.equal(error.targetTouched, false, 'the size check decodes it fully first');
      assert.equal(sha256(readFileSync(target)), before);
    });
  }

  for (const format of FORMATS) {
    it(`fails loudly on a corrupt ${format} stream`, async () => {
      const corrupt = join(set.dir, `corrupt-${format}`);
      const bytes = Buffer.from(readFileSync(set[format]));
      // Damage the middle of the compressed data, not the header, so decoding starts.
      const middle = Math.floor(bytes.length / 2);
      for (let i = 0; i < 64; i++) bytes[middle + i] = (bytes[middle + i] ?? 0) ^ 0x5a;
      writeFileSync(corrupt, bytes);
      const target = dirtyFile(set.dir, `target-corrupt-${format}.img`, TARGET_BYTES);
      await expectError(writeImage({ imagePath: corrupt, targetPath: target }), 'REIMAGE_IMAGE_CORRUPT');
    });
  }

  for (const format of ['xz', 'zstd'] as const) {
    it(`a corrupt ${format} stream that records its size: found mid-write (touched, LBA 0 kept), refused untouched with --sha256`, async () => {
      assert.ok(loop !== undefined);
      // xz's index and zstd's frame headers record the size, so no counting pass runs (ADR 0200):
      // damage in the middle of the data is found only when the decoder reaches it.
      const corrupt = join(set.dir, `corrupt-sized-${format}`);
      const bytes = Buffer.from(readFileSync(set[format]));
      const middle = Math.floor(bytes.length / 2);
      for (let i = 0; i < 64; i++) bytes[middle + i] = (bytes[middle + i] ?? 0) ^ 0x5a;
      writeFileSync(corrupt, bytes);

      redirty(loop, TARGET_BYTES);
      const mid = await expectError(writeImage({ imagePath: corrupt, targetPath: loop }), 'REIMAGE_IMAGE_CORRUPT');
      assert.equal(mid.targetTouched, true, 'found mid-write: the exit code says touched');
      assert.ok(
        readRange(loop, 0, 512).every((byte) => byte === 0xa5),
        'LBA 0 is still the old one',
      );
      assert.ok(!readRange(loop, 0, 64 * 1024).every((byte) => byte === 0xa5), 'the write had begun');

      redirty(loop, TARGET_BYTES);
      const before = sha256(readRange(loop, 0, TARGET_BYTES));
      const refused = await expectError(
        writeImage({ imagePath: corrupt, targetPath: loop, sha256: await sha256File(set[format]) }),
        'REIMAGE_IMAGE_DIGEST_MISMATCH',
      );
      assert.equal(refused.targetTouched, false);
      assert.equal(sha256(readRange(loop, 0, TARGET_BYTES)), before, 'not one byte changed');
    });
  }

  it('fails with the target touched when a stream ends early past the size check (block map)', async () => {
    const truncated = join(set.dir, 'truncated-map.zst');
    copyFileSync(set.zstd, truncated);
    truncateSync(truncated, Math.floor(statSync(truncated).size * 0.8));
    const target = dirtyFile(set.dir, 'target-trunc-map.img', TARGET_BYTES);
    const error = await expectError(
      writeImage({ imagePath: truncated, targetPath: target, bmapPath: set.bmap }),
      'REIMAGE_IMAGE_CORRUPT',
    );
    assert.equal(error.targetTouched, true);
  });

  it('refuses a target smaller than the image, untouched (raw and bzip2)', async () => {
    for (const format of ['raw', 'bzip2'] as const) {
      const target = dirtyFile(set.dir, `small-${format}.img`, 8 * MIB);
      const before = sha256(readFileSync(target));
      const error = await expectError(
        writeImage({ imagePath: set[format], targetPath: target }),
        'REIMAGE_TARGET_TOO_SMALL',
      );
      assert.equal(error.targetTouched, false);
      assert.equal(sha256(readFileSync(target)), before);
      assert.equal(statSync(target).size, 8 * MIB);
    }
  });

  it('refuses an unreadable image and an unknown format, untouched', async () => {
    const target = dirtyFile(set.dir, 'target-unknown.img', TARGET_BYTES);
    await expectError(
      writeImage({ imagePath: join(set.dir, 'missing.img'), targetPath: target }),
      'REIMAGE_IMAGE_UNREADABLE',
    );
    const notAnImage = join(set.dir, 'notes.txt');
    writeFileSync(notAnImage, 'this is not a disk image\n');
    await expectError(writeImage({ imagePath: notAnImage, targetPath: target }), 'REIMAGE_IMAGE_FORMAT_UNKNOWN');
    const zip = join(set.dir, 'image.zip');
    writeFileSync(zip, Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(508)]));
    await expectError(writeImage({ imagePath: zip, targetPath: target }), 'REIMAGE_IMAGE_FORMAT_UNKNOWN');
  });

  it('refuses a mounted target, and the backing file of a mounted loop device, untouched', async () => {
    const backing = dirtyFile(set.dir, 'mounted-backing.img', TARGET_BYTES);
    const device = attachLoop(backing);
    const mountPoint = join(set.dir, 'mnt');
    mkdirSync(mountPoint, { recursive: true });
    try {
      // No lazy init: ext4lazyinit would write the inode tables under the mount during the test.
      run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
      run('mount', [device, mountPoint]);
      try {
        const before = sha256(readRange(device, 0, TARGET_BYTES));
        const error = await expectError(writeImage({ imagePath: set.zstd, targetPath: device }), 'REIMAGE_TARGET_BUSY');
        assert.equal(error.targetTouched, false);
        assert.match(error.message, /mounted on/);
        // The backing file of a mounted loop device is refused too.
        await expectError(writeImage({ imagePath: set.zstd, targetPath: backing }), 'REIMAGE_TARGET_BUSY');
        assert.equal(sha256(readRange(device, 0, TARGET_BYTES)), before);
      } finally {
        run('umount', [mountPoint]);
      }
    } finally {
      spawnSync('umount', [mountPoint]);
      detachLoop(device);
    }
  });

  it('refuses a disk one of whose partitions is mounted', async () => {
    const backing = dirtyFile(set.dir, 'part-backing.img', TARGET_BYTES);
    const device = attachLoop(backing);
    const mountPoint = join(set.dir, 'mnt-part');
    mkdirSync(mountPoint, { recursive: true });
    try {
      spawnSync('sfdisk', ['-q', device], { input: 'label: dos\nstart=2048, type=83\n' });
      run('partx', ['-a', device]);
      const partition = `${device}p1`;
      run('mkfs.ext4', ['-q', '-F', partition]);
      run('mount', [partition, mountPoint]);
      try {
        const error = await expectError(writeImage({ imagePath: set.zstd, targetPath: device }), 'REIMAGE_TARGET_BUSY');
        assert.equal(error.targetTouched, false);
        assert.match(error.message, /p1 mounted on/);
      } finally {
        run('umount', [mountPoint]);
      }
    } finally {
      spawnSync('umount', [mountPoint]);
      detachLoop(device);
    }
  });

  it('writes only mapped ranges with a real bmaptool map, checking each', async () => {
    assert.ok(loop !== undefined);
    redirty(loop, TARGET_BYTES);
    const summary = await writeImage({ imagePath: set.zstd, targetPath: loop, bmapPath: set.bmap, verify: true });
    assert.equal(summary.readBackVerified, true);
    assert.ok(summary.bytesSkipped >= 5 * MIB, `the hole is skipped (${summary.bytesSkipped})`);
    // Mapped data arrived; the unmapped hole (6-11 MiB) kept the old bytes, as with bmaptool.
    // Digests, not deepEqual: a failing deepEqual on MiB buffers spends minutes building its diff.
    assert.equal(sha256(readRange(loop, 0, 64 * 1024)), sha256(set.rawBytes.subarray(0, 64 * 1024)));
    assert.equal(
      sha256(readRange(loop, 11 * MIB, MIB / 2)),
      sha256(set.rawBytes.subarray(11 * MIB, 11 * MIB + MIB / 2)),
    );
    assert.ok(readRange(loop, 7 * MIB, MIB).every((byte) => byte === 0xa5));
  });

  it('names the range whose bytes do not match the block map', async () => {
    const dir = join(set.dir, 'corrupt-range');
    mkdirSync(dir);
    const image = join(dir, 'disk.img');
    copyFileSync(set.raw, image);
    // One byte changed inside the mapped range at 11 MiB, after the map was made.
    const bytes = readFileSync(image);
    bytes[11 * MIB + 100] = (bytes[11 * MIB + 100] ?? 0) ^ 0xff;
    writeFileSync(image, bytes);
    run('zstd', ['-q', '-f', image, '-o', `${image}.zst`]);
    const target = dirtyFile(set.dir, 'target-range.img', TARGET_BYTES);
    const error = await expectError(
      writeImage({ imagePath: `${image}.zst`, targetPath: target, bmapPath: set.bmap }),
      'REIMAGE_IMAGE_RANGE_CHECKSUM_MISMATCH',
    );
    assert.equal(error.targetTouched, true);
    assert.equal(error.evidence.range, `${(11 * MIB) / 4096}-${(11 * MIB + 512 * 1024) / 4096 - 1}`);
  });
});

describe('writeImage aborts', () => {
  let set: ImageSet;
  before(() => {
    requireTools();
    set = buildImageSet();
  });
  after(() => {
    if (set !== undefined) removeDir(set.dir);
  });

  it('stops a bzip2 write aborted at its first write, says the target was touched, and writes no more', async () => {
    // 1 MiB of data, 62 MiB of zeros, 1 MiB of data at the end: the first write is the first MiB,
    // and the last MiB reaches the target only if the write goes on after the abort.
    const sizeBytes = 64 * MIB;
    const image = join(set.dir, 'zeros.img.bz2');
    run('sh', [
      '-c',
      '(head -c 1M /dev/urandom; head -c "$1" /dev/zero; head -c 1M /dev/urandom) | lbzip2 -n2 > "$0"',
      image,
      String(sizeBytes - 2 * MIB),
    ]);
    const target = join(set.dir, 'abort-late.img');
    run('truncate', ['-s', String(sizeBytes), target]);
    writeFileSync(target, Buffer.alloc(MIB, 0xa5), { flag: 'r+' });
    const endMarker = Buffer.alloc(MIB, 0xa5);
    const fd = openSync(target, 'r+');
    writeSync(fd, endMarker, 0, MIB, sizeBytes - MIB);
    closeSync(fd);
    const controller = new AbortController();
    let touches = 0;
    const error = await expectError(
      writeImage({
        imagePath: image,
        targetPath: target,
        imageSizeBytes: sizeBytes,
        signal: controller.signal,
        onTargetTouched: () => {
          touches++;
          controller.abort();
        },
      }),
      'REIMAGE_WRITE_ABORTED',
    );
    assert.equal(touches, 1);
    assert.equal(error.targetTouched, true);
    assert.equal(error.evidence.when, 'while writing');
    assert.ok(readRange(target, sizeBytes - MIB, MIB).equals(endMarker), 'nothing written after the abort');
    assert.ok(
      readRange(target, 0, 512).every((byte) => byte === 0xa5),
      'LBA 0 kept',
    );
  });

  for (const { phase, when, options } of [
    // Without the in-memory copy, the older path: a digest pass, then lbzip2 -t.
    {
      phase: 'verify image',
      when: 'while checking the image digest',
      options: { sha256: 'ab'.repeat(32), decodedCopyMaxBytes: 0 },
    },
    { phase: 'measure image', when: 'while finding the image size', options: { decodedCopyMaxBytes: 0 } },
    // The default: one decode (lbzip2 | zstd) measures, hashes and keeps the copy.
    { phase: 'measure image', when: 'while decoding the image to measure it', options: { sha256: 'ab'.repeat(32) } },
  ] as const) {
    it(`stops a bzip2 write aborted ${when}, with the target untouched`, async () => {
      const target = dirtyFile(set.dir, `abort-${when.replaceAll(' ', '-')}.img`, TARGET_BYTES);
      const before = sha256(readFileSync(target));
      const controller = new AbortController();
      const error = await expectError(
        writeImage({
          imagePath: set.bzip2,
          targetPath: target,
          ...options,
          signal: controller.signal,
          onProgress: (p) => {
            if (p.phase === phase) controller.abort();
          },
        }),
        'REIMAGE_WRITE_ABORTED',
      );
      assert.equal(error.targetTouched, false);
      assert.equal(error.evidence.when, when);
      assert.equal(sha256(readFileSync(target)), before);
    });
  }

  it('stops a write aborted during its read-back, touched, with LBA 0 kept', async () => {
    const target = dirtyFile(set.dir, 'abort-read-back.img', TARGET_BYTES);
    const controller = new AbortController();
    const error = await expectError(
      writeImage({
        imagePath: set.zstd,
        targetPath: target,
        verify: true,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.phase === 'read back') controller.abort();
        },
      }),
      'REIMAGE_WRITE_ABORTED',
    );
    assert.equal(error.targetTouched, true);
    assert.equal(error.evidence.when, 'while reading back');
    assert.ok(
      readRange(target, 0, 512).every((byte) => byte === 0xa5),
      'LBA 0 kept',
    );
  });

  it('stops a zstd write aborted before its first block, with the target untouched', async () => {
    const target = dirtyFile(set.dir, 'abort-early.img', TARGET_BYTES);
    const before = sha256(readFileSync(target));
    const controller = new AbortController();
    const error = await expectError(
      writeImage({
        imagePath: set.zstd,
        targetPath: target,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.phase === 'write') controller.abort();
        },
      }),
      'REIMAGE_WRITE_ABORTED',
    );
    assert.equal(error.targetTouched, false);
    assert.equal(sha256(readFileSync(target)), before);
  });
});
