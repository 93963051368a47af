import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ignoreProgress } from '../core/progress.ts';
import {
  checkImageFits,
  closeTarget,
  inspectTarget,
  openTarget,
  readFirstLogicalBlock,
  refuseBusyTarget,
  rereadPartitionTable,
  type TargetInfo,
} from '../disk/index.ts';
import { loadBlockMap } from './block-map.ts';
import { SINK_SLAB_BYTES } from './block-sink.ts';
import { checkImageDigest, compareImageDigest, parseExpectedSha256, refuseChangedImage } from './check-image-digest.ts';
import { commitFirstSector } from './commit-first-sector.ts';
import { decodeOnceIfUseful } from './decode-once.ts';
import { decodedSize, type KnownSize } from './decoded-size.ts';
import { honestError, type WriteState } from './honest-error.ts';
import type { ImageFormat } from './image-format.ts';
import { detectImageFormat } from './image-format.ts';
import { readBack } from './read-back.ts';
import { streamImage } from './stream-image.ts';

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
  /**
   * Most bytes the in-memory decoded copy of a bzip2 or gzip image of unknown size may hold
   * (docs/adr/0206); it is also never more than the compressed image nor a quarter of
   * MemAvailable. 0: keep no copy and measure the image the older way (for a caller that holds
   * the image in RAM already, and should pass imageSizeBytes anyway).
   */
  readonly decodedCopyMaxBytes?: number;
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

/** What writeImageHoldingFirstSector leaves to commitFirstSector. */
export interface HeldWrite {
  readonly summary: WriteSummary;
  /**
   * The target's new first logical block (LBA 0), not yet written; undefined when the image has
   * nothing for it (a block map that does not map LBA 0), and then nothing is to be written there.
   */
  readonly firstSector: Buffer | undefined;
  /** The target the rest of the image went to; commitFirstSector checks it is still the same. */
  readonly target: TargetInfo;
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
    await rereadPartitionTable(held.target, log);
    return held.summary;
  }
  const commitStartedMs = Date.now();
  await commitFirstSector(held.target, held.firstSector, {
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
 * commitFirstSector). Every check that can be made comes before the first byte changes (ADR
 * 0200); every error after it has `targetTouched: true`, and any abort is REIMAGE_WRITE_ABORTED.
 */
export async function writeImageHoldingFirstSector(o: WriteImageOptions): Promise<HeldWrite> {
  const state: WriteState = { step: 'before it started', touched: false, targetPath: undefined };
  try {
    return await writeAllButFirstSector(o, state);
  } catch (e) {
    throw honestError(e, o.signal, state);
  }
}

async function writeAllButFirstSector(o: WriteImageOptions, state: WriteState): Promise<HeldWrite> {
  const startedMs = Date.now();
  const log = o.log ?? silentLogger;
  const onProgress = o.onProgress ?? ignoreProgress;
  const signal = o.signal;

  const format = await detectImageFormat(o.imagePath);
  const blockMap = o.bmapPath === undefined ? undefined : await loadBlockMap(o.bmapPath);
  const target = await inspectTarget(o.targetPath);
  await refuseBusyTarget(target);
  const expectedSha256 = parseExpectedSha256(o.sha256);
  const callerSizeBytes = o.imageSizeBytes;
  state.step = 'while decoding the image to measure it';
  const once = await decodeOnceIfUseful({
    imagePath: o.imagePath,
    format,
    sizeKnown: blockMap !== undefined || callerSizeBytes !== undefined,
    copyMaxBytes: o.decodedCopyMaxBytes,
    log,
    onProgress,
    signal,
  });
  let checkedSha256: string | undefined;
  if (once === undefined) {
    state.step = 'while checking the image digest';
    checkedSha256 = await checkImageDigest(o.imagePath, o.sha256, { log, onProgress, signal });
  } else if (expectedSha256 === undefined) {
    log.warn('the image was not verified: no --sha256 given');
  } else {
    // Before the decoder's verdict: a wrong file is reported as the wrong file, not as damage.
    checkedSha256 = compareImageDigest(o.imagePath, expectedSha256, once.inputSha256, log);
  }
  if (once?.failure !== undefined) throw once.failure;
  state.step = 'while finding the image size';
  const size: KnownSize =
    once?.sizeBytes !== undefined
      ? { maxBytes: once.sizeBytes, exact: true, source: 'decoded once' }
      : await decodedSize({ ...o, format, blockMap, callerSizeBytes, target, log, onProgress, signal });
  checkImageFits(target, size.maxBytes);

  state.step = 'while opening the target';
  const opened = await openTarget(target, SINK_SLAB_BYTES);
  state.targetPath = target.path;
  try {
    const firstSector = await readFirstLogicalBlock(opened, target);
    state.step = 'while writing';
    const onTouch = (): void => {
      state.touched = true;
      o.onTargetTouched?.();
    };
    const verify = o.verify === true;
    const written = await streamImage({
      ...o,
      format,
      blockMap,
      target,
      opened,
      size,
      firstSector,
      verify,
      onProgress,
      onTouch,
      signal,
      decodedOnce: once,
    });
    if (verify) {
      state.step = 'while reading back';
      await readBack({ target, opened, blockMap, written, onProgress, signal });
      log.info('read-back verified');
    }
    state.step = 'while flushing the target';
    await closeTarget(opened);
    refuseChangedImage(o.imagePath, checkedSha256, written.imageSha256);
    const { bytesWritten, bytesSkipped, bytesZeroed } = written.counters;
    const summary: WriteSummary = {
      format,
      imageSha256Verified: checkedSha256 !== undefined,
      imageSha256: written.imageSha256,
      bytesIn: written.bytesIn,
      bytesWritten,
      bytesSkipped,
      bytesZeroed,
      imageSizeBytes: written.imageSizeBytes,
      durationMs: Date.now() - startedMs,
      readBackVerified: verify,
      directIo: opened.direct,
      targetKind: target.kind,
    };
    return { summary, firstSector: written.firstSector, target };
  } catch (e) {
    await closeTarget(opened).catch(() => {});
    throw e;
  }
}
