import { createHash } from 'node:crypto';
import type { OnProgress, Progress } from '../core/progress.ts';
import { throttleProgress } from '../core/progress.ts';
import type { OpenedTarget, TargetInfo } from '../disk/index.ts';
import type { BlockMap } from './block-map.ts';
import { BlockSink, type SinkCounters } from './block-sink.ts';
import type { DecodedOnce } from './decode-once.ts';
import { decodedChunks } from './decoded-chunks.ts';
import { type KnownSize, sizeAllows, sizeMismatch } from './decoded-size.ts';
import type { ImageFormat } from './image-format.ts';
import { zstdChunks } from './zstd-chunks.ts';

export interface StreamResult {
  /** Bytes of the image file read (compressed). */
  readonly bytesIn: number;
  /** SHA-256 of the image file as read (compressed bytes). */
  readonly imageSha256: string;
  readonly imageSizeBytes: number;
  readonly counters: SinkCounters;
  /** What the read-back must find: per mapped range with a map, else one whole-image digest. */
  readonly expectedDigests: readonly string[];
  /** The held first logical block (see BlockSink.firstSector). */
  readonly firstSector: Buffer | undefined;
}

/**
 * Decodes the image into a BlockSink on the opened target, hashing the compressed input as it
 * passes (to catch a file that changed after its check) and reporting progress in bytes. The
 * decoded size must match what was known of it. LBA 0 is held back, never written here.
 */
export async function streamImage(s: {
  imagePath: string;
  format: ImageFormat;
  blockMap: BlockMap | undefined;
  target: TargetInfo;
  opened: OpenedTarget;
  size: KnownSize;
  /** The target's current first logical block; the held copy starts from it. */
  firstSector: Buffer;
  /** Keep the whole image's digest for a read-back without a map. */
  verify: boolean;
  onProgress: OnProgress;
  onTouch: () => void;
  signal: AbortSignal | undefined;
  /**
   * The image as decodeOnce left it in memory: written from that copy (the bytes decoded and
   * hashed before the target changed) instead of decoding the file again.
   */
  decodedOnce?: DecodedOnce | undefined;
}): Promise<StreamResult> {
  const inputHash = createHash('sha256');
  const imageHash = s.verify && s.blockMap === undefined ? createHash('sha256') : undefined;
  const frames = s.decodedOnce?.copy;
  // Written from the copy, the file was read (and hashed) before: count it as read.
  let bytesIn = frames === undefined ? 0 : (s.decodedOnce?.bytesIn ?? 0);
  const sink = new BlockSink({
    target: s.target,
    handle: s.opened.handle,
    bufferedHandle: s.opened.bufferedHandle,
    direct: s.opened.direct,
    slab: s.opened.slab,
    blockMap: s.blockMap,
    imageHash,
    firstSector: s.firstSector,
    maxImageBytes: s.size.maxBytes,
    tooLong: (decodedBytes) => sizeMismatch(s.imagePath, s.size, decodedBytes, false),
    onTouch: s.onTouch,
    ...(s.signal === undefined ? {} : { signal: s.signal }),
  });
  const progress = throttleProgress(s.onProgress);
  const report = (final: boolean): void => {
    const p: Progress = {
      phase: 'write',
      done: sink.counters.imageBytes,
      total: s.size.maxBytes,
      unit: 'bytes',
      counters: { bytesIn, bytesWritten: sink.counters.bytesWritten, bytesSkipped: sink.counters.bytesSkipped },
    };
    if (final) progress.flush(p);
    else progress.report(p);
  };
  const onInput = (chunk: Buffer): void => {
    inputHash.update(chunk);
    bytesIn += chunk.length;
  };
  let imageSizeBytes: number;
  try {
    const signalOption = s.signal === undefined ? {} : { signal: s.signal };
    const chunks =
      frames === undefined
        ? decodedChunks(s.imagePath, s.format, { onInput, ...signalOption })
        : zstdChunks(s.imagePath, { frames, ...signalOption });
    for await (const chunk of chunks) {
      await sink.push(chunk);
      report(false);
    }
    imageSizeBytes = await sink.end();
  } catch (e) {
    // Write nothing more; let the writes in flight settle before the target is closed.
    await sink.settle();
    throw e;
  }
  report(true);
  if (!sizeAllows(s.size, imageSizeBytes, true)) throw sizeMismatch(s.imagePath, s.size, imageSizeBytes, true);
  const expectedDigests =
    s.blockMap !== undefined ? sink.rangeDigests : imageHash !== undefined ? [imageHash.digest('hex')] : [];
  const fromCopy = frames !== undefined ? s.decodedOnce : undefined;
  return {
    bytesIn,
    imageSha256: fromCopy?.inputSha256 ?? inputHash.digest('hex'),
    imageSizeBytes,
    counters: sink.counters,
    expectedDigests,
    firstSector: sink.firstSector,
  };
}
