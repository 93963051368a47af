import type { OnProgress, Progress } from '../core/progress.ts';
import { ignoreProgress, throttleProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import type { ByteRange } from '../disk/index.ts';
import { closeTarget, inspectTarget, openTarget, refuseBusyTarget } from '../disk/index.ts';
import { checkMappedRanges, mappedEndBytes, rangesPastImage, rangesPastTarget } from './check-mapped-ranges.ts';
import { decodedChunks } from './decoded-chunks.ts';
import { honestError, type WriteState } from './honest-error.ts';
import { detectImageFormat, imageUnreadable } from './image-format.ts';
import { readSizeHint } from './image-size.ts';
import { MAPPED_SINK_SLAB_BYTES, MappedSink } from './mapped-sink.ts';

/** Default mapped bytes written between two durable checkpoints (fdatasync + onDurable). */
export const DEFAULT_CHECKPOINT_BYTES = 64 * 1024 * 1024;

export interface WriteMappedRangesOptions {
  /** The image as given (raw, zst, gz, bz2, xz); decoded from its start on every run. */
  readonly imagePath: string;
  /** The whole disk (a block device, or a disk image file). Disk coordinates = image coordinates. */
  readonly target: string;
  /** The map: sorted, not overlapping, whole 512-byte sectors, the first one holding LBA 0. */
  readonly ranges: readonly ByteRange[];
  /**
   * Resume: bytes of `ranges`, counted in order, already durable (a figure onDurable was given).
   * They are decoded again but not written. 0 for a first run.
   */
  readonly durableBytes: number;
  /** Mapped bytes written between checkpoints; default DEFAULT_CHECKPOINT_BYTES. */
  readonly checkpointBytes?: number;
  /**
   * Called after each checkpoint's fdatasync, and once at the end, with the mapped bytes now
   * durable; awaited before any more is written (the caller records it in its journal). A throw
   * stops the write and is rethrown as it is (a ReimageError marked touched); the figures given
   * before it stay true.
   */
  readonly onDurable: (durableBytes: number) => Promise<void>;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
}

export interface MappedWriteResult {
  /** Bytes of `ranges` (the figure onDurable ends with). */
  readonly totalBytes: number;
  /** The image's first logical block (LBA 0, the target's logical block size), held back for commitFirstSector. */
  readonly firstSector: Buffer;
  /** Bytes written by this run (resumed and held bytes are not). */
  readonly bytesWritten: number;
  /** Of bytesWritten, bytes that went through the page cache (parts of ranges not whole O_DIRECT units). */
  readonly bytesBuffered: number;
  /** Whether the target took O_DIRECT writes. */
  readonly directIo: boolean;
}

/**
 * The armed write (issue 9, step 2): writes EXACTLY the bytes of `ranges` from the decoded image
 * onto the target — zero runs inside them included, never a byte outside them, never LBA 0 — and
 * returns LBA 0's new block for `commitFirstSector`, which the caller runs later.
 *
 * Progress and resume count mapped bytes in order. The held-back first logical block counts as
 * done as soon as it is decoded: it is the start of the first range, it is rebuilt on every run
 * (the image is decoded from its start each time), and it is written only by the commit. So the
 * figures run from 0 to `totalBytes`, the sum of the ranges, like the caller's totals, and
 * `durableBytes === totalBytes` means "every mapped byte but LBA 0 is on the disk".
 *
 * Every check that can be made comes before the first byte changes; errors after it carry
 * `targetTouched`, and an abort is REIMAGE_WRITE_ABORTED saying whether anything was written.
 */
export async function writeMappedRanges(o: WriteMappedRangesOptions): Promise<MappedWriteResult> {
  const state: WriteState = { step: 'before it started', touched: false, targetPath: undefined };
  const callerFailures = new Set<unknown>();
  const onDurable = async (durableBytes: number): Promise<void> => {
    try {
      await o.onDurable(durableBytes);
    } catch (e) {
      callerFailures.add(e);
      throw e;
    }
  };
  try {
    return await writeMapped({ ...o, onDurable }, state);
  } catch (e) {
    // The caller's own failure (its journal write) is its error, not a failed write of the
    // target: it passes through as it was thrown, marked touched when it is a ReimageError.
    if (callerFailures.has(e) && o.signal?.aborted !== true)
      throw e instanceof ReimageError && state.touched ? e.withTargetTouched() : e;
    throw honestError(e, o.signal, state);
  }
}

async function writeMapped(o: WriteMappedRangesOptions, state: WriteState): Promise<MappedWriteResult> {
  const signal = o.signal;
  const checkpointBytes = o.checkpointBytes ?? DEFAULT_CHECKPOINT_BYTES;
  const format = await detectImageFormat(o.imagePath);
  const target = await inspectTarget(o.target);
  const totalBytes = checkMappedRanges(o.ranges, {
    durableBytes: o.durableBytes,
    checkpointBytes,
    firstBlockBytes: Math.min(target.logicalBlockSizeBytes, target.sizeBytes),
  });
  const endBytes = mappedEndBytes(o.ranges);
  if (endBytes > target.sizeBytes) throw rangesPastTarget(target.path, target.sizeBytes, endBytes);
  await refuseBusyTarget(target);
  let hint: Awaited<ReturnType<typeof readSizeHint>>;
  try {
    hint = await readSizeHint(o.imagePath, format);
  } catch (e) {
    throw imageUnreadable(o.imagePath, e);
  }
  // Where the container records the size (raw, zstd, xz) the map is checked against it now;
  // otherwise (gzip, bzip2) when the decoded stream ends.
  if (hint.exactBytes !== undefined && endBytes > hint.exactBytes)
    throw rangesPastImage(o.imagePath, hint.exactBytes, endBytes);

  state.step = 'while opening the target';
  const opened = await openTarget(target, MAPPED_SINK_SLAB_BYTES);
  state.targetPath = target.path;
  const sink = new MappedSink({
    target,
    opened,
    imagePath: o.imagePath,
    ranges: o.ranges,
    totalBytes,
    durableBytes: o.durableBytes,
    checkpointBytes,
    onDurable: o.onDurable,
    onTouch: () => {
      state.touched = true;
    },
    signal,
  });
  const progress = throttleProgress(o.onProgress ?? ignoreProgress);
  const report = (final: boolean): void => {
    const p: Progress = {
      phase: 'write',
      done: sink.counters.mappedBytesDone,
      total: totalBytes,
      unit: 'bytes',
      counters: { bytesWritten: sink.counters.bytesWritten, bytesResumed: sink.counters.bytesResumed },
    };
    if (final) progress.flush(p);
    else progress.report(p);
  };
  try {
    state.step = 'while writing';
    try {
      for await (const chunk of decodedChunks(o.imagePath, format, signal === undefined ? {} : { signal })) {
        await sink.push(chunk);
        report(false);
      }
      state.step = 'while flushing the target';
      await sink.end();
    } catch (e) {
      // Write nothing more; let the writes in flight settle before the target is closed.
      await sink.settle();
      throw e;
    }
    report(true);
    await closeTarget(opened);
  } catch (e) {
    await closeTarget(opened).catch(() => {});
    throw e;
  }
  return {
    totalBytes,
    firstSector: sink.firstSector,
    bytesWritten: sink.counters.bytesWritten,
    bytesBuffered: sink.counters.bytesBuffered,
    directIo: opened.direct,
  };
}
