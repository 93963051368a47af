import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { memoryLogger } from '../../../src/core/logger.ts';
import { sha256File, type WriteImageOptions, writeImage } from '../../../src/image/index.ts';
import {
  attachLoop,
  buildImageSet,
  detachLoop,
  dirtyFile,
  expectError,
  type ImageSet,
  MIB,
  removeDir,
  requireTools,
  run,
  sha256,
} from './image-fixture.ts';

/** The child processes of this test process (decodeOnce's lbzip2 and zstd must not outlive it). */
function children(): string[] {
  const result = spawnSync('pgrep', ['-P', String(process.pid)], { encoding: 'utf8' });
  return result.stdout.split('\n').filter((line) => line !== '');
}

describe('writeImage decodes a bzip2 or gzip image of unknown size once (docs/adr/0206)', () => {
  let set: ImageSet;
  /** 24 MiB of random data as .bz2: lbzip2 needs a while, so a fault in its middle stops it early. */
  let bigRaw: string;
  let bigBzip2: string;

  before(() => {
    requireTools();
    set = buildImageSet();
    bigRaw = join(set.dir, 'big.img');
    writeFileSync(bigRaw, randomBytes(24 * MIB));
    run('sh', ['-c', 'lbzip2 -n2 -k -f "$0"', bigRaw]);
    bigBzip2 = `${bigRaw}.bz2`;
  });

  after(() => {
    if (set !== undefined) removeDir(set.dir);
  });

  /**
   * Runs `work` against a loop device over a 0xA5-filled file of `sizeBytes`, and detaches it. The
   * backing file is returned too, to check it afterwards.
   */
  async function onLoop<T>(
    name: string,
    sizeBytes: number,
    work: (device: string) => Promise<T>,
  ): Promise<{ result: T; backing: string }> {
    const backing = dirtyFile(set.dir, name, sizeBytes);
    const device = attachLoop(backing);
    try {
      return { result: await work(device), backing };
    } finally {
      detachLoop(device);
    }
  }

  for (const format of ['bzip2', 'gzip'] as const) {
    it(`writes a ${format} image byte for byte from the copy, onto a loop device of exactly its size`, async () => {
      // The write must come from the copy made before the target opened: the file is replaced
      // by garbage once the one decode has read it all, which a second decode would trip over.
      const image = join(set.dir, `swapped-${format}`);
      copyFileSync(set[format], image);
      const garbage = join(set.dir, `garbage-${format}`);
      writeFileSync(garbage, Buffer.concat([readFileSync(image).subarray(0, 16), randomBytes(4096)]));
      const log = memoryLogger();
      const digest = await sha256File(image);
      const sizeBytes = set.rawBytes.length;
      let swapped = false;
      const { result: summary, backing } = await onLoop(`exact-${format}.img`, sizeBytes, (device) =>
        writeImage({
          imagePath: image,
          targetPath: device,
          sha256: digest,
          log,
          onProgress: (p) => {
            if (p.phase === 'measure image' && p.done === p.total && !swapped) {
              renameSync(garbage, image);
              swapped = true;
            }
          },
        }),
      );
      assert.equal(sha256(readFileSync(backing)), sha256(set.rawBytes), 'target holds the image');
      assert.ok(swapped, 'the image file was replaced before the write');
      assert.equal(summary.imageSizeBytes, sizeBytes);
      assert.equal(summary.imageSha256Verified, true);
      assert.equal(summary.imageSha256, digest);
      assert.ok(
        log.lines.some((line) =>
          line.startsWith(`decoded the ${format} image once: ${sizeBytes} bytes; in-memory copy `),
        ),
        log.lines.join('\n'),
      );
      assert.ok(!log.lines.some((line) => line.includes('dropped')), log.lines.join('\n'));
    });
  }

  it('refuses a target 1 MiB too small after the one decode, untouched', async () => {
    const log = memoryLogger();
    let touched = false;
    const { result: error, backing } = await onLoop('small.img', set.rawBytes.length - MIB, (device) =>
      expectError(
        writeImage({
          imagePath: set.bzip2,
          targetPath: device,
          sha256: readFileSha(set.bzip2),
          log,
          onTargetTouched: () => {
            touched = true;
          },
        }),
        'REIMAGE_TARGET_TOO_SMALL',
      ),
    );
    assert.equal(error.targetTouched, false);
    assert.equal(touched, false);
    assert.ok(
      readFileSync(backing).every((byte) => byte === 0xa5),
      'target unchanged',
    );
    assert.ok(
      log.lines.some((line) => line.startsWith('decoded the bzip2 image once')),
      log.lines.join('\n'),
    );
  });

  it('reports a truncated .bz2 as corrupt from the one decode (its exit status), untouched', async () => {
    const truncated = join(set.dir, 'truncated.img.bz2');
    copyFileSync(set.bzip2, truncated);
    truncateSync(truncated, Math.floor(statSync(truncated).size / 2));
    const { result: error, backing } = await onLoop('truncated-target.img', 16 * MIB, (device) =>
      expectError(
        writeImage({ imagePath: truncated, targetPath: device, sha256: readFileSha(truncated) }),
        'REIMAGE_IMAGE_CORRUPT',
      ),
    );
    // The older path would say "lbzip2 -t exited": this is the one decode's verdict.
    assert.match(error.message, /lbzip2 (exited with|killed by)/);
    assert.equal(error.targetTouched, false);
    assert.ok(
      readFileSync(backing).every((byte) => byte === 0xa5),
      'target unchanged',
    );
  });

  it('reports lbzip2 dying mid-stream as corrupt, not as a broken pipe, when the digest matches', async () => {
    const damaged = damagedCopy(bigBzip2, 'damaged-right-digest.bz2');
    const { result: error, backing } = await onLoop('damaged-target.img', 32 * MIB, (device) =>
      expectError(
        writeImage({ imagePath: damaged, targetPath: device, sha256: readFileSha(damaged) }),
        'REIMAGE_IMAGE_CORRUPT',
      ),
    );
    assert.match(error.message, /lbzip2 (exited with|killed by)/);
    assert.equal(error.targetTouched, false);
    assert.ok(
      readFileSync(backing).every((byte) => byte === 0xa5),
      'target unchanged',
    );
  });

  it('reports a wrong digest as a digest mismatch even when the decoder died early (the whole file is hashed)', async () => {
    const damaged = damagedCopy(bigBzip2, 'damaged-wrong-digest.bz2');
    const { result: error, backing } = await onLoop('wrong-digest-target.img', 32 * MIB, (device) =>
      expectError(
        writeImage({ imagePath: damaged, targetPath: device, sha256: 'ab'.repeat(32) }),
        'REIMAGE_IMAGE_DIGEST_MISMATCH',
      ),
    );
    assert.equal(error.evidence.actual, readFileSha(damaged));
    assert.equal(error.targetTouched, false);
    assert.ok(
      readFileSync(backing).every((byte) => byte === 0xa5),
      'target unchanged',
    );
  });

  it('reports a wrong digest on an intact image as a digest mismatch, untouched', async () => {
    const { result: error, backing } = await onLoop('wrong-digest-intact.img', 16 * MIB, (device) =>
      expectError(
        writeImage({ imagePath: set.gzip, targetPath: device, sha256: 'cd'.repeat(32) }),
        'REIMAGE_IMAGE_DIGEST_MISMATCH',
      ),
    );
    assert.equal(error.evidence.actual, readFileSha(set.gzip));
    assert.ok(
      readFileSync(backing).every((byte) => byte === 0xa5),
      'target unchanged',
    );
  });

  it('stops both children on an abort during the one decode: REIMAGE_WRITE_ABORTED, untouched', async () => {
    const controller = new AbortController();
    let childrenWhileDecoding: string[] = [];
    const { result: error, backing } = await onLoop('abort-target.img', 32 * MIB, (device) =>
      expectError(
        writeImage({
          imagePath: bigBzip2,
          targetPath: device,
          signal: controller.signal,
          onProgress: (p) => {
            if (p.phase === 'measure image' && !controller.signal.aborted) {
              childrenWhileDecoding = children();
              controller.abort();
            }
          },
        }),
        'REIMAGE_WRITE_ABORTED',
      ),
    );
    assert.equal(childrenWhileDecoding.length, 2, 'lbzip2 and zstd were running');
    assert.deepEqual(children(), [], 'no decoder left running');
    assert.equal(error.targetTouched, false);
    assert.equal(error.evidence.when, 'while decoding the image to measure it');
    assert.ok(
      readFileSync(backing).every((byte) => byte === 0xa5),
      'target unchanged',
    );
  });

  it('drops a copy that outgrows its budget and decodes the image again for the write', async () => {
    const log = memoryLogger();
    const sizeBytes = set.rawBytes.length;
    const { backing } = await onLoop('budget.img', sizeBytes, (device) =>
      writeImage({
        imagePath: set.bzip2,
        targetPath: device,
        sha256: readFileSha(set.bzip2),
        decodedCopyMaxBytes: 4096,
        log,
      }),
    );
    assert.equal(sha256(readFileSync(backing)), sha256(set.rawBytes), 'target holds the image');
    assert.ok(
      log.lines.some((line) => line.includes(`${sizeBytes} bytes; in-memory copy dropped at`)),
      log.lines.join('\n'),
    );
  });

  it('writes the older way when zstd is not installed', async () => {
    const bin = join(set.dir, 'bin-without-zstd');
    mkdirSync(bin, { recursive: true });
    for (const tool of ['lbzip2', 'pigz', 'fallocate', 'blockdev', 'partx']) {
      const found = spawnSync('sh', ['-c', 'command -v "$0"', tool], { encoding: 'utf8' }).stdout.trim();
      if (found !== '') symlinkSync(found, join(bin, tool));
    }
    const log = memoryLogger();
    const options: Omit<WriteImageOptions, 'targetPath'> = {
      imagePath: set.bzip2,
      sha256: readFileSha(set.bzip2),
      log,
    };
    const written = await onLoop('no-zstd.img', set.rawBytes.length, async (device) => {
      const savedPath = process.env.PATH;
      process.env.PATH = bin;
      try {
        return await writeImage({ ...options, targetPath: device });
      } finally {
        process.env.PATH = savedPath;
      }
    });
    assert.equal(sha256(readFileSync(written.backing)), sha256(set.rawBytes), 'target holds the image');
    assert.ok(!log.lines.some((line) => line.startsWith('decoded the')), log.lines.join('\n'));
  });

  /** A copy of `bz2` with 64 KiB of garbage 1 MiB in: lbzip2 fails there, long before the end. */
  function damagedCopy(bz2: string, name: string): string {
    const path = join(set.dir, name);
    const bytes = readFileSync(bz2);
    randomBytes(64 * 1024).copy(bytes, MIB);
    writeFileSync(path, bytes);
    return path;
  }
});

function readFileSha(path: string): string {
  return sha256(readFileSync(path));
}
