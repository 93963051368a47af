// The first-sector commit reaches the very target the rest of the image went to, and the hold-back
// works on disk image files whatever sector size the filesystem under them has (regressions
// found in review: the commit opened the path again without checking it, and a file on a
// 4096-byte-sector filesystem took a direct write at offset 512, which the kernel refuses).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { commitFirstSector, writeImage, writeImageHoldingFirstSector } from '../../../src/image/index.ts';
import { detachLoop, MIB, readRange, removeDir, requireTools, run, sha256 } from './image-fixture.ts';

const SECTOR_BYTES = 512;

describe('the first-sector commit and its target', () => {
  let dir: string;
  let image: Buffer;
  let imagePath: string;

  before(() => {
    requireTools();
    dir = mkdtempSync('/tmp/reimage-first-target-');
    image = randomBytes(4 * MIB);
    imagePath = join(dir, 'small.img');
    writeFileSync(imagePath, image);
  });
  after(() => removeDir(dir));

  it('refuses, touched, to write LBA 0 when the path names another file than the one written', async () => {
    const target = join(dir, 'target.img');
    const oldBytes = randomBytes(8 * MIB);
    writeFileSync(target, oldBytes);
    const held = await writeImageHoldingFirstSector({ imagePath, targetPath: target });
    assert.ok(held.firstSector !== undefined);
    // Another file takes the path (an image file replaced, a device name reused after a re-plug).
    const stranger = join(dir, 'stranger.img');
    const strangerBytes = randomBytes(8 * MIB);
    writeFileSync(stranger, strangerBytes);
    const written = join(dir, 'written.img');
    renameSync(target, written);
    renameSync(stranger, target);
    await assert.rejects(commitFirstSector(held.target, held.firstSector), (e: unknown) => {
      assert.ok(isReimageError(e), String(e));
      assert.equal(e.code, 'REIMAGE_TARGET_CHANGED');
      assert.equal(e.targetState, 'changed', 'the rest of the image is on the written file');
      return true;
    });
    assert.ok(readRange(target, 0, 8 * MIB).equals(strangerBytes), 'the stranger is not written at all');
    assert.equal(sha256(readRange(written, 0, SECTOR_BYTES)), sha256(oldBytes.subarray(0, SECTOR_BYTES)));
  });

  it('writes a disk image file on a filesystem with 4096-byte sectors, LBA 0 last', async () => {
    const backing = join(dir, 'fs4k.img');
    run('truncate', ['-s', String(64 * MIB), backing]);
    const loop = run('losetup', ['--find', '--show', '--sector-size', '4096', backing]).trim();
    const mountDir = join(dir, 'mnt');
    run('mkdir', ['-p', mountDir]);
    try {
      run('mkfs.ext4', ['-q', '-F', loop]);
      run('mount', [loop, mountDir]);
      try {
        const target = join(mountDir, 'target.img');
        const oldBytes = randomBytes(8 * MIB);
        writeFileSync(target, oldBytes);
        const held = await writeImageHoldingFirstSector({ imagePath, targetPath: target });
        assert.ok(held.firstSector !== undefined);
        assert.equal(held.firstSector.length, SECTOR_BYTES, 'a disk image file has 512-byte sectors');
        assert.ok(readRange(target, 0, SECTOR_BYTES).equals(oldBytes.subarray(0, SECTOR_BYTES)), 'LBA 0 still old');
        assert.equal(
          sha256(readRange(target, SECTOR_BYTES, 4 * MIB - SECTOR_BYTES)),
          sha256(image.subarray(SECTOR_BYTES)),
        );
        await commitFirstSector(held.target, held.firstSector);
        assert.equal(sha256(readRange(target, 0, 4 * MIB)), sha256(image));
        // And the whole write in one call, with read-back.
        writeFileSync(target, oldBytes);
        const summary = await writeImage({ imagePath, targetPath: target, verify: true });
        assert.equal(summary.readBackVerified, true);
        assert.equal(sha256(readRange(target, 0, 4 * MIB)), sha256(image));
      } finally {
        run('umount', [mountDir]);
      }
    } finally {
      detachLoop(loop);
    }
  });
});
