// The armed write (writeMappedRanges) on loop devices filled with 0xA5: exactly the mapped bytes
// land (real zeros inside the map included), nothing outside the map changes, LBA 0 is held back
// and returned; a resumed write (from a durable figure, after onDurable failed, after an abort)
// ends identical to an uncut one; the durable figure never runs ahead of writes and a flush.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Progress } from '../../../src/core/progress.ts';
import type { ByteRange } from '../../../src/disk/index.ts';
import { writeMappedRanges } from '../../../src/image/index.ts';
import {
  attachLoop,
  detachLoop,
  dirtyFile,
  expectError,
  MIB,
  readRange,
  redirty,
  removeDir,
  requireTools,
  run,
  writeAtPath,
} from './image-fixture.ts';
import {
  buildMappedImage,
  diskOffsetOfMapped,
  expectedTarget,
  firstDifference,
  flushCount,
  HAND_MAP,
  MAPPED_IMAGE_BYTES,
  type MappedImage,
  mappedPrefix,
  ZERO_RANGE,
} from './mapped-image-fixture.ts';

const TARGET_BYTES = 20 * MIB;
const SECTOR_BYTES = 512;
const HAND_MAP_BYTES = HAND_MAP.reduce((sum, range) => sum + range.lengthBytes, 0);

describe('writeMappedRanges', () => {
  let dir: string;
  let image: MappedImage;
  let backing: string;
  let device: string | undefined;
  let expected: Buffer;

  before(() => {
    requireTools();
    dir = mkdtempSync(join(tmpdir(), 'reimage-mapped-'));
    image = buildMappedImage(dir);
    backing = dirtyFile(dir, 'target.img', TARGET_BYTES);
    device = attachLoop(backing);
    expected = expectedTarget(image.bytes, HAND_MAP, TARGET_BYTES, SECTOR_BYTES);
  });

  after(() => {
    if (device !== undefined) detachLoop(device);
    if (dir !== undefined) removeDir(dir);
  });

  /** The target as the loop device left it in its backing file. */
  function targetBytes(): Buffer {
    assert.ok(device !== undefined);
    spawnSync('blockdev', ['--flushbufs', device]);
    return readRange(backing, 0, TARGET_BYTES);
  }

  function assertTarget(want: Buffer, what: string): void {
    const got = targetBytes();
    const at = firstDifference(got, want);
    assert.equal(at, -1, `${what}: the target differs at byte ${at} (got ${got[at]}, want ${want[at]})`);
  }

  for (const format of ['raw', 'zstd', 'gzip', 'bzip2'] as const) {
    it(`writes exactly the mapped bytes of a ${format} image, zeros included, LBA 0 held back`, async () => {
      assert.ok(device !== undefined);
      redirty(device, TARGET_BYTES);
      const figures: number[] = [];
      const progress: Progress[] = [];
      const result = await writeMappedRanges({
        onProgress: (p) => progress.push(p),
        imagePath: image[format],
        target: device,
        ranges: HAND_MAP,
        durableBytes: 0,
        checkpointBytes: 2 * MIB,
        onDurable: async (durableBytes) => {
          figures.push(durableBytes);
        },
      });
      assert.equal(result.totalBytes, HAND_MAP_BYTES);
      assert.equal(result.bytesWritten, HAND_MAP_BYTES - SECTOR_BYTES);
      assert.ok(result.directIo, 'a loop device takes O_DIRECT');
      assert.equal(result.bytesBuffered, 0, 'whole sectors of a 512-byte device all go through O_DIRECT');
      assert.deepEqual(result.firstSector, image.bytes.subarray(0, SECTOR_BYTES));
      const got = targetBytes();
      // The range of real zeros is written as zeros: the old 0xA5 there would be wrong data.
      assert.ok(
        got.subarray(ZERO_RANGE.offsetBytes, ZERO_RANGE.offsetBytes + ZERO_RANGE.lengthBytes).every((b) => b === 0),
      );
      assert.ok(
        got.subarray(0, SECTOR_BYTES).every((b) => b === 0xa5),
        'LBA 0 is still the old one',
      );
      assertTarget(expected, format);
      // One figure per 2 MiB written, rising, ending with the whole map.
      assert.ok(figures.length >= 4, `figures: ${figures.join(', ')}`);
      assert.deepEqual(
        figures,
        [...figures].sort((a, b) => a - b),
      );
      assert.equal(figures.at(-1), HAND_MAP_BYTES);
      // Progress counts mapped bytes too, the held-back LBA 0 included, so it ends at the total.
      assert.deepEqual(
        { done: progress.at(-1)?.done, total: progress.at(-1)?.total, phase: progress.at(-1)?.phase },
        { done: HAND_MAP_BYTES, total: HAND_MAP_BYTES, phase: 'write' },
      );
    });
  }

  it('reports a figure only once those bytes are written and the device was flushed', async () => {
    assert.ok(device !== undefined);
    const loop = device;
    redirty(loop, TARGET_BYTES);
    let flushesBefore = flushCount(loop);
    const checks: string[] = [];
    await writeMappedRanges({
      imagePath: image.zstd,
      target: loop,
      ranges: HAND_MAP,
      durableBytes: 0,
      checkpointBytes: MIB,
      onDurable: async (durableBytes) => {
        const flushes = flushCount(loop);
        if (flushes <= flushesBefore) checks.push(`no flush reached the device before figure ${durableBytes}`);
        flushesBefore = flushes;
        // Every mapped byte before the figure (but LBA 0) is on the target already.
        const now = readRange(backing, 0, MAPPED_IMAGE_BYTES);
        for (const range of mappedPrefix(HAND_MAP, durableBytes)) {
          const from = Math.max(range.offsetBytes, SECTOR_BYTES);
          const to = range.offsetBytes + range.lengthBytes;
          if (!now.subarray(from, to).equals(image.bytes.subarray(from, to)))
            checks.push(`figure ${durableBytes}: bytes ${from}-${to} are not written yet`);
        }
      },
    });
    assert.deepEqual(checks, []);
  });

  it('resumes from a durable figure: skips what is durable, ends identical to an uncut write', async () => {
    assert.ok(device !== undefined);
    // Mid-way through the range of 3 MiB, on a 4 KiB boundary of the disk.
    const durableBytes = 64 * 1024 + 300 * 1024 + MIB + 8192;
    const resumeAt = diskOffsetOfMapped(HAND_MAP, durableBytes);
    // A target where the durable part is written (as a cut run leaves it) and the rest is old.
    redirty(device, TARGET_BYTES);
    for (const range of mappedPrefix(HAND_MAP, durableBytes)) {
      const from = Math.max(range.offsetBytes, SECTOR_BYTES);
      writeAtPath(backing, image.bytes.subarray(from, range.offsetBytes + range.lengthBytes), from);
    }
    const figures: number[] = [];
    const result = await writeMappedRanges({
      imagePath: image.gzip,
      target: device,
      ranges: HAND_MAP,
      durableBytes,
      checkpointBytes: MIB,
      onDurable: async (figure) => {
        figures.push(figure);
      },
    });
    assert.equal(result.bytesWritten, HAND_MAP_BYTES - durableBytes);
    assert.deepEqual(result.firstSector, image.bytes.subarray(0, SECTOR_BYTES));
    assert.ok((figures[0] ?? 0) > durableBytes, 'figures go on from the resume point');
    assertTarget(expected, 'resumed');

    // The same resume over a target where the durable part was NOT written: it stays old, so
    // the resumed run wrote nothing before its resume point.
    redirty(device, TARGET_BYTES);
    await writeMappedRanges({
      imagePath: image.zstd,
      target: device,
      ranges: HAND_MAP,
      durableBytes,
      onDurable: async () => {},
    });
    const got = targetBytes();
    assert.ok(
      got.subarray(0, resumeAt).every((b) => b === 0xa5),
      'nothing before the resume point was written',
    );
    assert.ok(got.subarray(resumeAt, MAPPED_IMAGE_BYTES).equals(expected.subarray(resumeAt, MAPPED_IMAGE_BYTES)));
  });

  it('stops when onDurable throws; resuming from the last figure it took ends identical', async () => {
    assert.ok(device !== undefined);
    redirty(device, TARGET_BYTES);
    const taken: number[] = [];
    const journalFull = new Error('journal write failed');
    await assert.rejects(
      writeMappedRanges({
        imagePath: image.bzip2,
        target: device,
        ranges: HAND_MAP,
        durableBytes: 0,
        checkpointBytes: MIB,
        onDurable: async (figure) => {
          if (taken.length === 1) throw journalFull;
          taken.push(figure);
        },
      }),
      (e: unknown) => e === journalFull,
    );
    assert.equal(taken.length, 1);
    const resumeFrom = taken[0] ?? 0;
    assert.ok(resumeFrom > 0 && resumeFrom < HAND_MAP_BYTES);
    const result = await writeMappedRanges({
      imagePath: image.bzip2,
      target: device,
      ranges: HAND_MAP,
      durableBytes: resumeFrom,
      checkpointBytes: MIB,
      onDurable: async () => {},
    });
    assert.ok(result.bytesWritten < HAND_MAP_BYTES - SECTOR_BYTES);
    assertTarget(expected, 'after onDurable failed and a resume');
  });

  it('an abort is REIMAGE_WRITE_ABORTED saying whether the target was touched; resuming ends identical', async () => {
    assert.ok(device !== undefined);
    redirty(device, TARGET_BYTES);
    const early = new AbortController();
    early.abort();
    const untouched = await expectError(
      writeMappedRanges({
        imagePath: image.zstd,
        target: device,
        ranges: HAND_MAP,
        durableBytes: 0,
        onDurable: async () => {},
        signal: early.signal,
      }),
      'REIMAGE_WRITE_ABORTED',
    );
    assert.equal(untouched.targetTouched, false);
    assert.ok(targetBytes().every((b) => b === 0xa5));

    const late = new AbortController();
    let last = 0;
    const touched = await expectError(
      writeMappedRanges({
        imagePath: image.zstd,
        target: device,
        ranges: HAND_MAP,
        durableBytes: 0,
        checkpointBytes: MIB,
        onDurable: async (figure) => {
          last = figure;
          if (figure > 3 * MIB) late.abort();
        },
        signal: late.signal,
      }),
      'REIMAGE_WRITE_ABORTED',
    );
    assert.equal(touched.targetTouched, true);
    await writeMappedRanges({
      imagePath: image.zstd,
      target: device,
      ranges: HAND_MAP,
      durableBytes: last,
      onDurable: async () => {},
    });
    assertTarget(expected, 'after an abort and a resume');
  });

  it('refuses a map past the target or past the image, before writing anything', async () => {
    assert.ok(device !== undefined);
    redirty(device, TARGET_BYTES);
    const pastTarget: ByteRange[] = [...HAND_MAP, { offsetBytes: TARGET_BYTES - 4096, lengthBytes: 8192 }];
    const e1 = await expectError(
      writeMappedRanges({
        imagePath: image.zstd,
        target: device,
        ranges: pastTarget,
        durableBytes: 0,
        onDurable: async () => {},
      }),
      'REIMAGE_WRITE_RANGE_PAST_TARGET',
    );
    assert.equal(e1.targetTouched, false);
    const pastImage: ByteRange[] = [...HAND_MAP, { offsetBytes: MAPPED_IMAGE_BYTES, lengthBytes: 4096 }];
    for (const format of ['raw', 'zstd'] as const) {
      const e2 = await expectError(
        writeMappedRanges({
          imagePath: image[format],
          target: device,
          ranges: pastImage,
          durableBytes: 0,
          onDurable: async () => {},
        }),
        'REIMAGE_WRITE_RANGE_PAST_IMAGE',
      );
      assert.equal(e2.targetTouched, false, format);
      assert.match(e2.message, /decodes to 16777216 bytes/);
    }
    assert.ok(
      targetBytes().every((b) => b === 0xa5),
      'nothing was written',
    );
    // gzip records no size: found when the stream ends, with the map written up to there.
    const e3 = await expectError(
      writeMappedRanges({
        imagePath: image.gzip,
        target: device,
        ranges: pastImage,
        durableBytes: 0,
        onDurable: async () => {},
      }),
      'REIMAGE_WRITE_RANGE_PAST_IMAGE',
    );
    assert.equal(e3.targetTouched, true);
    const got = targetBytes();
    assert.ok(got.subarray(MAPPED_IMAGE_BYTES).every((b) => b === 0xa5));
  });

  it('a disk image file target (4 KiB O_DIRECT units) takes sectors that are not whole units exactly', async () => {
    const file = dirtyFile(dir, 'file-target.img', TARGET_BYTES);
    const result = await writeMappedRanges({
      imagePath: image.zstd,
      target: file,
      ranges: HAND_MAP,
      durableBytes: 0,
      onDurable: async () => {},
    });
    assert.deepEqual(result.firstSector, image.bytes.subarray(0, SECTOR_BYTES));
    // Not whole 4 KiB units, so through the page cache: the 7 sectors at 512 past a 4 KiB
    // boundary, and bytes 512-4095 (the first range starts with the held-back LBA 0).
    assert.ok(result.directIo);
    assert.equal(result.bytesBuffered, 2 * 7 * 512);
    const got = readRange(file, 0, TARGET_BYTES);
    const at = firstDifference(got, expected);
    assert.equal(at, -1, `differs at byte ${at}`);
  });

  it('holds back a whole 4 KiB first block on a 4Kn loop device', async () => {
    const backing4k = dirtyFile(dir, 'target-4k.img', TARGET_BYTES);
    const loop4k = run('losetup', ['-f', '--show', '--sector-size', '4096', backing4k]).trim();
    try {
      const map4k: ByteRange[] = HAND_MAP.filter(
        (range) => range.offsetBytes % 4096 === 0 && range.lengthBytes % 4096 === 0,
      );
      const result = await writeMappedRanges({
        imagePath: image.zstd,
        target: loop4k,
        ranges: map4k,
        durableBytes: 0,
        onDurable: async () => {},
      });
      assert.deepEqual(result.firstSector, image.bytes.subarray(0, 4096));
      spawnSync('blockdev', ['--flushbufs', loop4k]);
      const got = readRange(backing4k, 0, TARGET_BYTES);
      const at = firstDifference(got, expectedTarget(image.bytes, map4k, TARGET_BYTES, 4096));
      assert.equal(at, -1, `differs at byte ${at}`);
    } finally {
      detachLoop(loop4k);
    }
  });
});
