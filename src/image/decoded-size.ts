import type { Logger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { throttleProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import type { TargetInfo } from '../disk/index.ts';
import type { BlockMap } from './block-map.ts';
import { decodedChunks } from './decoded-chunks.ts';
import type { ImageFormat } from './image-format.ts';
import { imageUnreadable } from './image-format.ts';
import { bzip2SizeBound, readSizeHint } from './image-size.ts';

/**
 * What is known of the decoded size before writing: exact, or (bzip2) an upper bound that is
 * enough to prove the image fits. The write checks the decoded size against it.
 */
export interface KnownSize {
  readonly maxBytes: number;
  readonly exact: boolean;
  /** Where it came from, for the error that says it was wrong. */
  readonly source: 'block map' | 'caller' | 'container' | 'lbzip2 -t' | 'counting pass' | 'decoded once';
}

/**
 * The decoded size policy (docs/adr/0200, 0204): from the block map, the caller, the container,
 * for bzip2 a bound from lbzip2's integrity test when that bound fits the target, or (last
 * resort) by decoding once and counting. Never a guess.
 */
/**
 * A block map's size and a size the caller gives (the plan's image.size, --image-size) must
 * agree: two sizes that differ mean one is for another image. Refused before anything changes.
 */
export function refuseSizeConflict(blockMap: BlockMap | undefined, callerSizeBytes: number | undefined): void {
  if (blockMap === undefined || callerSizeBytes === undefined || callerSizeBytes === blockMap.imageSizeBytes) return;
  throw new ReimageError(
    'REIMAGE_IMAGE_SIZE_MISMATCH',
    `The image.size (${callerSizeBytes} bytes) and the block map's image size (${blockMap.imageSizeBytes} bytes) differ: one of them is for another image. Run "reimage image inspect" on the image and correct the size (image.size in a plan, --image-size for reimage write). Nothing was written.`,
    {
      evidence: {
        field: 'image.size',
        expected: blockMap.imageSizeBytes,
        actual: callerSizeBytes,
        source: 'block map',
      },
    },
  );
}

export async function decodedSize(o: {
  imagePath: string;
  format: ImageFormat;
  blockMap: BlockMap | undefined;
  callerSizeBytes: number | undefined;
  target: TargetInfo;
  log: Logger;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<KnownSize> {
  refuseSizeConflict(o.blockMap, o.callerSizeBytes);
  if (o.blockMap !== undefined) return { maxBytes: o.blockMap.imageSizeBytes, exact: true, source: 'block map' };
  if (o.callerSizeBytes !== undefined) return { maxBytes: o.callerSizeBytes, exact: true, source: 'caller' };
  let hint: Awaited<ReturnType<typeof readSizeHint>>;
  try {
    hint = await readSizeHint(o.imagePath, o.format);
  } catch (e) {
    throw imageUnreadable(o.imagePath, e);
  }
  if (hint.exactBytes !== undefined) return { maxBytes: hint.exactBytes, exact: true, source: 'container' };
  if (o.format === 'bzip2') {
    // Decoding without output is the cheapest full check bzip2 allows (it records no size), and
    // it proves the stream intact; when the bound fits the target, no counting decode is needed.
    o.log.info('the bzip2 image does not record its size: testing it (lbzip2 -t) to bound its size');
    o.onProgress({ phase: 'measure image', done: 0, unit: 'bytes' });
    const boundBytes = await bzip2SizeBound(o.imagePath, o.signal);
    if (boundBytes !== undefined && boundBytes <= o.target.sizeBytes) {
      return { maxBytes: boundBytes, exact: false, source: 'lbzip2 -t' };
    }
  }
  o.log.info(`the ${o.format} image does not record its size: decoding it once to measure it`);
  return { maxBytes: await countDecodedBytes(o), exact: true, source: 'counting pass' };
}

/** Decodes the whole image once, counting bytes (formats with no recorded size). */
async function countDecodedBytes(o: {
  imagePath: string;
  format: ImageFormat;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<number> {
  const progress = throttleProgress(o.onProgress);
  let sizeBytes = 0;
  for await (const chunk of decodedChunks(o.imagePath, o.format, o.signal === undefined ? {} : { signal: o.signal })) {
    sizeBytes += chunk.length;
    progress.report({ phase: 'measure image', done: sizeBytes, unit: 'bytes' });
  }
  progress.flush({ phase: 'measure image', done: sizeBytes, total: sizeBytes, unit: 'bytes' });
  return sizeBytes;
}

/**
 * REIMAGE_IMAGE_SIZE_MISMATCH: the image decoded to `actualBytes` (or, mid-write, at least that
 * many), which the known size rules out.
 */
export function sizeMismatch(imagePath: string, size: KnownSize, actualBytes: number, ended: boolean): ReimageError {
  const expected = size.exact ? size.maxBytes : `<= ${size.maxBytes}`;
  const decoded = ended ? `decoded to ${actualBytes} bytes` : `decodes to more than ${actualBytes - 1} bytes`;
  return new ReimageError(
    'REIMAGE_IMAGE_SIZE_MISMATCH',
    `The image ${decoded}, not the ${expected} expected (from the ${size.source}). Check the image and its size.`,
    { evidence: { path: imagePath, expected, actual: actualBytes, source: size.source } },
  );
}

/** Whether `decodedBytes` (so far, or in all when `ended`) is allowed by the known size. */
export function sizeAllows(size: KnownSize, decodedBytes: number, ended: boolean): boolean {
  if (decodedBytes > size.maxBytes) return false;
  return !ended || !size.exact || decodedBytes === size.maxBytes;
}
