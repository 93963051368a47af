import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ignoreProgress, throttleProgress } from '../core/progress.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import {
  closeTarget,
  dropBlockDeviceCache,
  findTargetUsers,
  inspectTarget,
  type OpenedTarget,
  openTarget,
  readAt,
  rereadPartitionTable,
  syncTarget,
  type TargetInfo,
  targetBusy,
} from '../disk/index.ts';
import type { BlockMap } from './block-map.ts';
import { loadBlockMap } from './block-map.ts';
import { BLOCK_BYTES, BLOCKS_IN_FLIGHT, BlockSink } from './block-sink.ts';
import { commitFirstSector } from './commit-first-sector.ts';
import { createDecoder } from './decoder.ts';
import type { ImageFormat } from './image-format.ts';
import { detectImageFormat, imageUnreadable } from './image-format.ts';
import { bzip2SizeBound, readSizeHint } from './image-size.ts';
import { garbageReleaser } from './release-garbage.ts';
import { sha256File } from './sha256-file.ts';
import { writeAborted } from './write-aborted.ts';
import { reusableZstdAvailable, zstdChunks } from './zstd-chunks.ts';

export interface WriteImageOptions {
  readonly imagePath: string;
  readonly targetPath: string;
  /** Expected SHA-256 of IMAGE as given (compressed bytes); checked before the target changes. */
  readonly sha256?: string;
  readonly bmapPath?: string;
  /** Read back what was written and compare digests. */
  readonly verify?: boolean;
  /**
   * The decoded size, when the caller knows it (a plan, a manifest). Spares the counting pass
   * for formats that do not record their size (bzip2, gzip); a wrong value fails the write.
   */
  readonly imageSizeBytes?: number;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
  /**
   * Called once, synchronously, just before the first byte of the target changes (a write or a
   * kernel zeroing is about to be issued). For callers that record the state, and for tests.
   */
  readonly onTargetTouched?: () => void;
}

export interface WriteSummary {
  readonly format: ImageFormat;
  /** True when `sha256` was given and the whole image matched it before the target changed. */
  readonly imageSha256Verified: boolean;
  /** SHA-256 of IMAGE as read during the write (compressed bytes). */
  readonly imageSha256: string;
  /** Bytes of IMAGE read (compressed). */
  readonly bytesIn: number;
  /** Bytes pushed to the target with write(2), zeros included when the kernel could not zero. */
  readonly bytesWritten: number;
  /** Bytes not pushed: unmapped by the block map, or zeroed by the kernel (see bytesZeroed). */
  readonly bytesSkipped: number;
  /** Of bytesSkipped, those the kernel was asked to zero (punch hole, write-zeroes). */
  readonly bytesZeroed: number;
  /** Decoded image size. */
  readonly imageSizeBytes: number;
  readonly durationMs: number;
  /** True when --verify read the written bytes back and they matched. */
  readonly readBackVerified: boolean;
  /** Whether the target was written with O_DIRECT (no page cache). */
  readonly directIo: boolean;
  readonly targetKind: TargetInfo['kind'];
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** What writeImageHoldingFirstSector leaves to commitFirstSector. */
export interface HeldWrite {
  readonly summary: WriteSummary;
  /**
   * The target's new first logical block (LBA 0), not yet written; undefined when the image has
   * nothing for it (a block map that does not map LBA 0), and then nothing is to be written there.
   */
  readonly firstSector: Buffer | undefined;
}

/**
 * Streams an image onto a block device or an existing disk image file, its first logical block
 * last: writeImageHoldingFirstSector, then commitFirstSector (one write at offset 0, fsync,
 * partition table re-read). A write stopped anywhere before the end leaves LBA 0 as it was.
 */
export async function writeImage(o: WriteImageOptions): Promise<WriteSummary> {
  const held = await writeImageHoldingFirstSector(o);
  const log = o.log ?? silentLogger;
  if (held.firstSector === undefined) {
    await rereadPartitionTable(await inspectTarget(o.targetPath), log);
    return held.summary;
  }
  const commitStartedMs = Date.now();
  await commitFirstSector(o.targetPath, held.firstSector, {
    log,
    ...(o.signal === undefined ? {} : { signal: o.signal }),
  });
  return {
    ...held.summary,
    bytesWritten: held.summary.bytesWritten + held.firstSector.length,
    durationMs: held.summary.durationMs + (Date.now() - commitStartedMs),
  };
}

/**
 * Writes all of an image but its first logical block, which it returns instead (see
 * commitFirstSector). In order: detect the format, read the block map, check the target (size,
 * not mounted), verify the whole image against `sha256`, then decode and write, then (with
 * `verify`) read back, then flush. Every error thrown once the first byte of the target may have
 * changed has `targetTouched: true`; before that, none does. The target's LBA 0 is never written.
 */
export async function writeImageHoldingFirstSector(o: WriteImageOptions): Promise<HeldWrite> {
  const state: WriteState = { step: 'before it started', touched: false, targetPath: undefined };
  try {
    return await writeAllButFirstSector(o, state);
  } catch (e) {
    throw honestError(e, o.signal, state);
  }
}

/** Where a write is, for the one error an interruption or failure turns into. */
interface WriteState {
  /** Says when, as "… was interrupted <step>". */
  step: string;
  /** True once any byte of the target may have changed. */
  touched: boolean;
  /** Set once the target is open for writing: a failure from then on is a write failure. */
  targetPath: string | undefined;
}

/**
 * The one error a failed write surfaces as. An abort, wherever it lands (the digest check, the
 * counting pass, a decoder killed, a write, the read-back), is REIMAGE_WRITE_ABORTED saying
 * whether the target was touched; anything else keeps its code and gains `targetTouched` once
 * the target may have changed.
 */
function honestError(e: unknown, signal: AbortSignal | undefined, state: WriteState): unknown {
  if (signal?.aborted === true) {
    if (e instanceof ReimageError && e.code === 'REIMAGE_WRITE_ABORTED')
      return state.touched ? e.withTargetTouched() : e;
    return writeAborted(state.touched, state.step, e);
  }
  let error: unknown = e;
  if (!(e instanceof ReimageError) && state.targetPath !== undefined) {
    error = new ReimageError(
      'REIMAGE_TARGET_WRITE_FAILED',
      `Writing ${state.targetPath} failed (${isSystemError(e) ? e.code : e instanceof Error ? e.message : String(e)}).`,
      { evidence: { path: state.targetPath }, cause: e },
    );
  }
  return error instanceof ReimageError && state.touched ? error.withTargetTouched() : error;
}

async function writeAllButFirstSector(o: WriteImageOptions, state: WriteState): Promise<HeldWrite> {
  const startedMs = Date.now();
  const log = o.log ?? silentLogger;
  const onProgress = o.onProgress ?? ignoreProgress;
  const signal = o.signal;

  const format = await detectImageFormat(o.imagePath);
  const blockMap = o.bmapPath === undefined ? undefined : await loadBlockMap(o.bmapPath);
  const target = await inspectTarget(o.targetPath);
  const users = await findTargetUsers(target);
  if (users.length > 0) throw targetBusy(target, users);

  let imageSha256Verified = false;
  const expectedSha256 = o.sha256?.trim().toLowerCase();
  if (expectedSha256 !== undefined) {
    if (!SHA256_HEX.test(expectedSha256)) {
      throw new ReimageError('REIMAGE_IMAGE_DIGEST_INVALID', `"${o.sha256}" is not a SHA-256 digest (64 hex digits).`, {
        evidence: { field: 'sha256', actual: o.sha256 },
      });
    }
    state.step = 'while checking the image digest';
    const actual = await sha256File(o.imagePath, { ...(signal === undefined ? {} : { signal }), onProgress });
    if (actual !== expectedSha256) {
      throw new ReimageError(
        'REIMAGE_IMAGE_DIGEST_MISMATCH',
        `The image ${o.imagePath} does not match the expected SHA-256; the target was not touched. Fetch the image again.`,
        { evidence: { path: o.imagePath, expected: expectedSha256, actual } },
      );
    }
    imageSha256Verified = true;
    log.info(`image verified: sha256 ${actual}`);
  } else {
    log.warn('the image was not verified: no --sha256 given');
  }

  state.step = 'while finding the image size';
  const size = await decodedSize(o, format, blockMap, target, log, onProgress);
  const imageSizeBytes = size.maxBytes;
  if (imageSizeBytes > target.sizeBytes) {
    throw new ReimageError(
      'REIMAGE_TARGET_TOO_SMALL',
      `The image (${imageSizeBytes} bytes) is larger than the target ${target.path} (${target.sizeBytes} bytes); the target was not touched. Use a larger disk.`,
      { evidence: { path: target.path, expected: `>= ${imageSizeBytes}`, actual: target.sizeBytes } },
    );
  }

  state.step = 'while opening the target';
  const opened = await openTarget(target, (BLOCKS_IN_FLIGHT + 1) * BLOCK_BYTES);
  state.targetPath = target.path;
  try {
    // The old first sector, which the held one starts from: bytes of it the image does not
    // cover (unmapped, past a tiny image's end) stay as they were.
    const oldFirstSector = Buffer.alloc(Math.min(target.logicalBlockSizeBytes, target.sizeBytes));
    await readAt(opened.bufferedHandle, oldFirstSector, 0);
    state.step = 'while writing';
    const written = await streamImage({
      o,
      format,
      blockMap,
      target,
      opened,
      size,
      firstSector: oldFirstSector,
      onProgress,
      onTouch: () => {
        state.touched = true;
        o.onTargetTouched?.();
      },
    });
    let readBackVerified = false;
    if (o.verify === true) {
      state.step = 'while reading back';
      await readBack(target, opened, blockMap, written, onProgress, signal);
      readBackVerified = true;
      log.info('read-back verified');
    }
    state.step = 'while flushing the target';
    await closeTarget(opened);
    if (expectedSha256 !== undefined && written.imageSha256 !== expectedSha256) {
      // The file changed between the check and the write: say so, and never commit its LBA 0.
      throw new ReimageError(
        'REIMAGE_IMAGE_CHANGED',
        `The image ${o.imagePath} changed while it was being written; the target holds an unverified image. Write it again.`,
        { evidence: { path: o.imagePath, expected: expectedSha256, actual: written.imageSha256 } },
      );
    }
    const summary: WriteSummary = {
      format,
      imageSha256Verified,
      imageSha256: written.imageSha256,
      bytesIn: written.bytesIn,
      bytesWritten: written.counters.bytesWritten,
      bytesSkipped: written.counters.bytesSkipped,
      bytesZeroed: written.counters.bytesZeroed,
      imageSizeBytes: written.imageSizeBytes,
      durationMs: Date.now() - startedMs,
      readBackVerified,
      directIo: opened.direct,
      targetKind: target.kind,
    };
    return { summary, firstSector: written.firstSector };
  } catch (e) {
    await closeTarget(opened).catch(() => {});
    throw e;
  }
}

/**
 * What is known of the decoded size before writing: exact, or (bzip2) an upper bound that is
 * enough to prove the image fits. The write checks the decoded size against it.
 */
interface KnownSize {
  readonly maxBytes: number;
  readonly exact: boolean;
}

/**
 * The decoded size: from the map, the caller, the container, for bzip2 a bound from lbzip2's
 * integrity test when that bound fits the target, or (last resort) by decoding once and counting.
 */
async function decodedSize(
  o: WriteImageOptions,
  format: ImageFormat,
  blockMap: BlockMap | undefined,
  target: TargetInfo,
  log: Logger,
  onProgress: OnProgress,
): Promise<KnownSize> {
  if (blockMap !== undefined) return { maxBytes: blockMap.imageSizeBytes, exact: true };
  if (o.imageSizeBytes !== undefined) return { maxBytes: o.imageSizeBytes, exact: true };
  let hint: Awaited<ReturnType<typeof readSizeHint>>;
  try {
    hint = await readSizeHint(o.imagePath, format);
  } catch (e) {
    throw imageUnreadable(o.imagePath, e);
  }
  if (hint.exactBytes !== undefined) return { maxBytes: hint.exactBytes, exact: true };
  if (format === 'bzip2') {
    // Decoding without output is the cheapest full check bzip2 allows (it records no size), and
    // it proves the stream intact; when the bound fits the target, no counting decode is needed.
    log.info('the bzip2 image does not record its size: testing it (lbzip2 -t) to bound its size');
    onProgress({ phase: 'measure image', done: 0, unit: 'bytes' });
    const boundBytes = await bzip2SizeBound(o.imagePath, o.signal);
    if (boundBytes !== undefined && boundBytes <= target.sizeBytes) return { maxBytes: boundBytes, exact: false };
  }
  return { maxBytes: await countDecodedBytes(o, format, log, onProgress), exact: true };
}

/** Decodes the whole image once, counting bytes (formats with no recorded size). */
async function countDecodedBytes(
  o: WriteImageOptions,
  format: ImageFormat,
  log: Logger,
  onProgress: OnProgress,
): Promise<number> {
  log.info(`the ${format} image does not record its size: decoding it once to measure it`);
  const progress = throttleProgress(onProgress);
  let sizeBytes = 0;
  if (format === 'zstd' && reusableZstdAvailable()) {
    for await (const chunk of zstdChunks(o.imagePath, o.signal === undefined ? {} : { signal: o.signal })) {
      sizeBytes += chunk.length;
      progress.report({ phase: 'measure image', done: sizeBytes, unit: 'bytes' });
    }
    progress.flush({ phase: 'measure image', done: sizeBytes, total: sizeBytes, unit: 'bytes' });
    return sizeBytes;
  }
  const decoder = createDecoder(format, o.imagePath);
  const releaseGarbage = garbageReleaser();
  try {
    await pipeline(
      createReadStream(o.imagePath, { highWaterMark: 1024 * 1024 }),
      decoder.stage ?? new PassThrough(),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          sizeBytes += chunk.length;
          releaseGarbage(chunk.length);
          progress.report({ phase: 'measure image', done: sizeBytes, unit: 'bytes' });
        }
      },
      o.signal === undefined ? {} : { signal: o.signal },
    );
    await decoder.finished;
  } catch (e) {
    decoder.kill();
    await decoder.finished.catch(() => {});
    // After an abort the killed tool's exit status says nothing about the image.
    if (o.signal?.aborted === true) throw e;
    throw decoder.failure() ?? (e instanceof ReimageError ? e : imageUnreadable(o.imagePath, e));
  }
  progress.flush({ phase: 'measure image', done: sizeBytes, total: sizeBytes, unit: 'bytes' });
  return sizeBytes;
}

interface StreamResult {
  readonly bytesIn: number;
  readonly imageSha256: string;
  readonly imageSizeBytes: number;
  readonly counters: BlockSink['counters'];
  /** What the read-back must find: per mapped range with a map, else one whole-image digest. */
  readonly expectedDigests: readonly string[];
  /** The held first logical block (see BlockSink.firstSector). */
  readonly firstSector: Buffer | undefined;
}

async function streamImage(s: {
  o: WriteImageOptions;
  format: ImageFormat;
  blockMap: BlockMap | undefined;
  target: TargetInfo;
  opened: OpenedTarget;
  size: KnownSize;
  firstSector: Buffer;
  onProgress: OnProgress;
  onTouch: () => void;
}): Promise<StreamResult> {
  const { o, format, blockMap, target, opened } = s;
  const signal = o.signal;
  const inputHash = createHash('sha256');
  const imageHash = o.verify === true && blockMap === undefined ? createHash('sha256') : undefined;
  let bytesIn = 0;
  const sink = new BlockSink({
    target,
    handle: opened.handle,
    bufferedHandle: opened.bufferedHandle,
    direct: opened.direct,
    slab: opened.slab,
    blockMap,
    imageHash,
    firstSector: s.firstSector,
    onTouch: s.onTouch,
    ...(signal === undefined ? {} : { signal }),
  });
  const progress = throttleProgress(s.onProgress);
  const report = (final: boolean): void => {
    const p = {
      phase: 'write',
      done: sink.counters.imageBytes,
      total: s.size.maxBytes,
      unit: 'bytes' as const,
      counters: {
        bytesIn,
        bytesWritten: sink.counters.bytesWritten,
        bytesSkipped: sink.counters.bytesSkipped,
      },
    };
    if (final) progress.flush(p);
    else progress.report(p);
  };
  // Hashes the compressed input as it passes, to catch a file that changed after its check.
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      inputHash.update(chunk);
      bytesIn += chunk.length;
      callback(null, chunk);
    },
  });
  let imageSizeBytes: number;
  if (format === 'zstd' && reusableZstdAvailable()) {
    const onInput = (chunk: Buffer): void => {
      inputHash.update(chunk);
      bytesIn += chunk.length;
    };
    try {
      for await (const chunk of zstdChunks(o.imagePath, { onInput, ...(signal === undefined ? {} : { signal }) })) {
        await sink.push(chunk);
        report(false);
      }
      imageSizeBytes = await sink.end();
    } catch (e) {
      // Let writes in flight settle before the target is closed.
      await sink.end().catch(() => {});
      throw e;
    }
  } else {
    imageSizeBytes = await streamThroughDecoder(o, format, sink, meter, () => report(false));
  }
  report(true);
  if (s.size.exact ? imageSizeBytes !== s.size.maxBytes : imageSizeBytes > s.size.maxBytes) {
    const expected = s.size.exact ? s.size.maxBytes : `<= ${s.size.maxBytes}`;
    throw new ReimageError(
      'REIMAGE_IMAGE_SIZE_MISMATCH',
      `The image decoded to ${imageSizeBytes} bytes, not the ${expected} expected (from its block map, its header, the caller or lbzip2's test). Check the image and its size.`,
      { evidence: { path: o.imagePath, expected, actual: imageSizeBytes } },
    );
  }
  const expectedDigests =
    blockMap !== undefined ? sink.rangeDigests : imageHash !== undefined ? [imageHash.digest('hex')] : [];
  return {
    bytesIn,
    imageSha256: inputHash.digest('hex'),
    imageSizeBytes,
    counters: sink.counters,
    expectedDigests,
    firstSector: sink.firstSector,
  };
}

/** Streams the image through its decoder (a tool or a zlib stream) into the sink; the decoded size. */
async function streamThroughDecoder(
  o: WriteImageOptions,
  format: ImageFormat,
  sink: BlockSink,
  meter: Transform,
  report: () => void,
): Promise<number> {
  const signal = o.signal;
  const decoder = createDecoder(format, o.imagePath);
  const releaseGarbage = garbageReleaser();
  try {
    await pipeline(
      createReadStream(o.imagePath, { highWaterMark: 1024 * 1024 }),
      meter,
      decoder.stage ?? new PassThrough(),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          await sink.push(chunk);
          releaseGarbage(chunk.length);
          report();
        }
      },
      signal === undefined ? {} : { signal },
    );
    await decoder.finished;
    return await sink.end();
  } catch (e) {
    decoder.kill();
    await decoder.finished.catch(() => {});
    // Let writes in flight settle before the target is closed.
    await sink.end().catch(() => {});
    if (signal?.aborted === true) throw e;
    throw decoder.failure() ?? e;
  }
}

/**
 * Reads back what was written and compares digests: each mapped range with a map, else the whole
 * image. Reads go through O_DIRECT when the target took it, so they reach the device rather than
 * the page cache; otherwise a block device's cache is dropped first. The first logical block is
 * not on the target yet: the held copy stands in for it here (it is the one the digests were
 * taken from), and commitFirstSector reads it back after writing it.
 */
async function readBack(
  target: TargetInfo,
  opened: OpenedTarget,
  blockMap: BlockMap | undefined,
  written: StreamResult,
  onProgress: OnProgress,
  signal: AbortSignal | undefined,
): Promise<void> {
  await syncTarget(opened);
  if (!opened.direct) await dropBlockDeviceCache(target);
  const ranges =
    blockMap === undefined
      ? [{ offsetBytes: 0, lengthBytes: written.imageSizeBytes, name: 'image', algorithm: 'sha256' }]
      : blockMap.ranges.map((r) => ({
          offsetBytes: r.offsetBytes,
          lengthBytes: r.lengthBytes,
          name: r.firstBlock === r.lastBlock ? `${r.firstBlock}` : `${r.firstBlock}-${r.lastBlock}`,
          algorithm: blockMap.checksumType ?? 'sha256',
        }));
  const totalBytes = ranges.reduce((sum, r) => sum + r.lengthBytes, 0);
  const progress = throttleProgress(onProgress);
  const buffer = opened.slab.subarray(0, BLOCK_BYTES);
  const sectorBytes = target.logicalBlockSizeBytes;
  const firstSector = written.firstSector;
  let doneBytes = 0;
  for (const [index, range] of ranges.entries()) {
    const hash = createHash(range.algorithm);
    const endBytes = range.offsetBytes + range.lengthBytes;
    for (let at = range.offsetBytes; at < endBytes; at += BLOCK_BYTES) {
      signal?.throwIfAborted();
      const length = Math.min(BLOCK_BYTES, endBytes - at);
      const aligned = opened.direct && at % sectorBytes === 0 && length % sectorBytes === 0;
      const handle = aligned ? opened.handle : opened.bufferedHandle;
      const got = await readAt(handle, buffer.subarray(0, length), at);
      if (firstSector !== undefined && at < firstSector.length) {
        firstSector.copy(buffer, 0, at, Math.min(firstSector.length, at + got));
      }
      hash.update(buffer.subarray(0, got));
      doneBytes += got;
      progress.report({ phase: 'read back', done: doneBytes, total: totalBytes, unit: 'bytes' });
    }
    const actual = hash.digest('hex');
    const expected = written.expectedDigests[index];
    if (expected !== actual) {
      throw new ReimageError(
        'REIMAGE_WRITE_VERIFY_MISMATCH',
        `Reading back ${range.name === 'image' ? 'the image' : `mapped range ${range.name}`} from ${target.path} gave different bytes than were written. The disk may be failing; write again, and replace the disk if it repeats.`,
        { evidence: { path: target.path, range: range.name, offsetBytes: range.offsetBytes, expected, actual } },
      );
    }
  }
  progress.flush({ phase: 'read back', done: doneBytes, total: totalBytes, unit: 'bytes' });
}
