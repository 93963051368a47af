// LBA 0 is written last (docs/adr/0205): until commitFirstSector, the target's first logical
// block is the one it had before the write started, whatever path wrote the rest.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { inspectTarget } from '../../../src/disk/index.ts';
import {
  commitFirstSector,
  type WriteImageOptions,
  writeImage,
  writeImageHoldingFirstSector,
} from '../../../src/image/index.ts';
import {
  attachLoop,
  buildImageSet,
  detachLoop,
  type ImageSet,
  MIB,
  readRange,
  removeDir,
  requireTools,
  run,
  sha256,
  writeAtPath,
} from './image-fixture.ts';

const TARGET_BYTES = 16 * MIB;
const SECTOR_BYTES = 512;

/** A 12 MiB GPT disk image (header and entries at LBA 1-33, a backup at the end) with random data. */
function buildGptImage(dir: string): string {
  const path = join(dir, 'gpt.img');
  run('truncate', ['-s', String(12 * MIB), path]);
  const result = spawnSync('sfdisk', ['-q', path], { input: 'label: gpt\nstart=2048, size=8192\nstart=10240\n' });
  assert.equal(result.status, 0, String(result.stderr));
  writeAtPath(path, randomBytes(3 * MIB), MIB);
  writeAtPath(path, randomBytes(2 * MIB), 6 * MIB);
  return path;
}

/** An image whose first 2 MiB are zeros (LBA 0 included): the kernel-zeroing path covers byte 0. */
function buildZeroFirstImage(dir: string): string {
  const path = join(dir, 'zero-first.img');
  run('truncate', ['-s', String(10 * MIB), path]);
  writeAtPath(path, randomBytes(MIB), 2 * MIB);
  writeAtPath(path, randomBytes(MIB), 8 * MIB);
  return path;
}

/** Old contents of a target: random bytes everywhere, so any write shows. */
function fillRandom(path: string, sizeBytes: number): Buffer {
  const bytes = randomBytes(sizeBytes);
  writeAtPath(path, bytes, 0);
  return bytes;
}

describe('the first logical block is written last', () => {
  let set: ImageSet;
  let gpt: string;
  let zeroFirst: string;
  let backing: string;
  let loop: string | undefined;

  before(() => {
    requireTools();
    set = buildImageSet();
    gpt = buildGptImage(set.dir);
    zeroFirst = buildZeroFirstImage(set.dir);
    run('zstd', ['-q', '-f', gpt, '-o', `${gpt}.zst`]);
    run('gzip', ['-k', '-f', gpt]);
    run('bzip2', ['-k', '-f', zeroFirst]);
    run('bmaptool', ['create', '-o', `${gpt}.bmap`, gpt]);
    backing = join(set.dir, 'backing.img');
    run('truncate', ['-s', String(TARGET_BYTES), backing]);
    loop = attachLoop(backing);
  });

  after(() => {
    if (loop !== undefined) detachLoop(loop);
    if (set !== undefined) removeDir(set.dir);
  });

  /** Everything but the first `sectorBytes` holds the image; the first `sectorBytes` are the old ones. */
  function assertAllButFirstSector(device: string, image: Buffer, old: Buffer, sectorBytes: number): void {
    assert.equal(sha256(readRange(device, 0, sectorBytes)), sha256(old.subarray(0, sectorBytes)), 'LBA 0 still old');
    assert.equal(
      sha256(readRange(device, sectorBytes, image.length - sectorBytes)),
      sha256(image.subarray(sectorBytes)),
      'everything else written, a GPT header and entries at LBA 1-33 included',
    );
  }

  const cases: ReadonlyArray<{ name: string; image: () => string; raw: () => string; bmap?: () => string }> = [
    { name: 'raw GPT image', image: () => gpt, raw: () => gpt },
    { name: 'zstd GPT image (in-process decoder)', image: () => `${gpt}.zst`, raw: () => gpt },
    { name: 'gzip GPT image (stream decoder)', image: () => `${gpt}.gz`, raw: () => gpt },
    {
      name: 'zstd GPT image with a block map mapping LBA 0',
      image: () => `${gpt}.zst`,
      raw: () => gpt,
      bmap: () => `${gpt}.bmap`,
    },
    {
      name: 'bzip2 image whose zero run covering LBA 0 goes to the kernel',
      image: () => `${zeroFirst}.bz2`,
      raw: () => zeroFirst,
    },
  ];

  for (const c of cases) {
    it(`holds LBA 0 back until the commit: ${c.name}`, async () => {
      assert.ok(loop !== undefined);
      const old = fillRandom(loop, TARGET_BYTES);
      const image = readFileSync(c.raw());
      const held = await writeImageHoldingFirstSector({
        imagePath: c.image(),
        targetPath: loop,
        verify: true,
        ...(c.bmap === undefined ? {} : { bmapPath: c.bmap() }),
      });
      assert.equal(held.summary.readBackVerified, true, 'the read-back covers LBA 0 through the held copy');
      assert.ok(held.firstSector !== undefined);
      assert.equal(sha256(held.firstSector), sha256(image.subarray(0, SECTOR_BYTES)));
      if (c.bmap === undefined) assertAllButFirstSector(loop, image, old, SECTOR_BYTES);
      else {
        assert.equal(
          sha256(readRange(loop, 0, SECTOR_BYTES)),
          sha256(old.subarray(0, SECTOR_BYTES)),
          'LBA 0 still old',
        );
        assert.equal(
          sha256(readRange(loop, SECTOR_BYTES, 33 * SECTOR_BYTES)),
          sha256(image.subarray(SECTOR_BYTES, 34 * SECTOR_BYTES)),
        );
      }
      await commitFirstSector(held.target, held.firstSector);
      assert.equal(sha256(readRange(loop, 0, SECTOR_BYTES)), sha256(image.subarray(0, SECTOR_BYTES)), 'LBA 0 new');
      if (c.bmap === undefined) assert.equal(sha256(readRange(loop, 0, image.length)), sha256(image));
    });
  }

  it('writes nothing at LBA 0 when the block map does not map it', async () => {
    assert.ok(loop !== undefined);
    // The image's first 4 KiB is a hole, so bmaptool leaves block 0 unmapped.
    const image = join(set.dir, 'hole-first.img');
    run('truncate', ['-s', String(4 * MIB), image]);
    writeAtPath(image, randomBytes(MIB), MIB);
    run('bmaptool', ['create', '-o', `${image}.bmap`, image]);
    const old = fillRandom(loop, TARGET_BYTES);
    const held = await writeImageHoldingFirstSector({ imagePath: image, targetPath: loop, bmapPath: `${image}.bmap` });
    assert.equal(held.firstSector, undefined);
    await writeImage({ imagePath: image, targetPath: loop, bmapPath: `${image}.bmap`, verify: true });
    assert.equal(
      sha256(readRange(loop, 0, MIB)),
      sha256(old.subarray(0, MIB)),
      'the unmapped first MiB kept its bytes',
    );
  });

  it('commitFirstSector refuses a block of the wrong size, and a held target, leaving LBA 0 old', async () => {
    assert.ok(loop !== undefined);
    const old = fillRandom(loop, TARGET_BYTES);
    const target = await inspectTarget(loop);
    await assert.rejects(commitFirstSector(target, Buffer.alloc(4096)), /first logical block/);
    // Something else holds the device exclusively (as a mount would).
    const held = openSync(loop, constants.O_RDONLY | constants.O_EXCL);
    try {
      await assert.rejects(commitFirstSector(target, randomBytes(SECTOR_BYTES)), (e: unknown) => {
        assert.ok(isReimageError(e), String(e));
        assert.equal(e.code, 'REIMAGE_TARGET_BUSY');
        assert.equal(e.targetTouched, true, 'the rest of the image is on it');
        assert.doesNotMatch(e.message, /not touched/);
        return true;
      });
    } finally {
      closeSync(held);
    }
    assert.equal(sha256(readRange(loop, 0, SECTOR_BYTES)), sha256(old.subarray(0, SECTOR_BYTES)));
  });

  it('holds one 4 KiB logical block on a 4Kn device', async () => {
    const backing4k = join(set.dir, 'backing-4k.img');
    run('truncate', ['-s', String(TARGET_BYTES), backing4k]);
    const device = run('losetup', ['-f', '--show', '--sector-size', '4096', backing4k]).trim();
    try {
      const old = fillRandom(device, TARGET_BYTES);
      const image = readFileSync(gpt);
      const held = await writeImageHoldingFirstSector({ imagePath: `${gpt}.zst`, targetPath: device });
      assert.equal(held.firstSector?.length, 4096);
      assertAllButFirstSector(device, image, old, 4096);
      await writeImage({ imagePath: `${gpt}.zst`, targetPath: device, verify: true });
      assert.equal(sha256(readRange(device, 0, image.length)), sha256(image));
    } finally {
      detachLoop(device);
    }
  });

  for (const c of cases) {
    it(`an abort right after the first write leaves LBA 0 old: ${c.name}`, async () => {
      assert.ok(loop !== undefined);
      const old = fillRandom(loop, TARGET_BYTES);
      const o: WriteImageOptions = {
        imagePath: c.image(),
        targetPath: loop,
        ...(c.bmap === undefined ? {} : { bmapPath: c.bmap() }),
      };
      // Retried as the runner does: each attempt stops after its first write.
      for (let attempt = 1; attempt <= 2; attempt++) {
        const controller = new AbortController();
        await assert.rejects(
          writeImage({ ...o, signal: controller.signal, onTargetTouched: () => controller.abort() }),
          (e: unknown) => {
            assert.ok(isReimageError(e), String(e));
            assert.equal(e.code, 'REIMAGE_WRITE_ABORTED');
            assert.equal(e.targetTouched, true);
            return true;
          },
        );
        assert.equal(
          sha256(readRange(loop, 0, SECTOR_BYTES)),
          sha256(old.subarray(0, SECTOR_BYTES)),
          `attempt ${attempt}`,
        );
      }
      await writeImage(o);
      const image = readFileSync(c.raw());
      assert.equal(sha256(readRange(loop, 0, SECTOR_BYTES)), sha256(image.subarray(0, SECTOR_BYTES)));
    });
  }
});
