import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ignoreProgress, throttleProgress } from '../core/progress.ts';
import { decodedChunks } from './decoded-chunks.ts';
import type { ImageFormat } from './image-format.ts';
import { detectImageFormat, imageUnreadable } from './image-format.ts';
import { readSizeHint } from './image-size.ts';
import { sha256File } from './sha256-file.ts';

/** What `reimage image inspect` learns about an image file, for a plan's `image` section. */
export interface ImageInspection {
  readonly imagePath: string;
  /** By magic bytes, exactly as the writer detects it. */
  readonly format: ImageFormat;
  /** SHA-256 of the file as given (compressed bytes): a plan's `image.sha256`. */
  readonly sha256: string;
  /** Bytes of the file as given. */
  readonly fileSizeBytes: number;
  /** The decoded size: a plan's `image.size`, the writer's `imageSizeBytes`. */
  readonly imageSizeBytes: number;
  /**
   * Where the decoded size came from: the file itself (raw), the container (xz index, zstd frame
   * headers), or a counting pass (gzip, bzip2, or a zstd stream whose frames omit their size).
   */
  readonly sizeSource: 'file size' | 'container' | 'counting pass';
}

/**
 * Finds an image's format, decoded size and SHA-256 once, so a plan can carry them and the write
 * need not decode the image only to prove it fits the disk. When the container records the size,
 * the file is only hashed; otherwise one decode both counts the decoded bytes and hashes the
 * compressed ones as they are read (decodedChunks' onInput), so the file is read once either way.
 * A damaged stream is REIMAGE_IMAGE_CORRUPT; an unreadable file REIMAGE_IMAGE_UNREADABLE.
 */
export async function inspectImage(
  imagePath: string,
  o: { log?: Logger; onProgress?: OnProgress; signal?: AbortSignal } = {},
): Promise<ImageInspection> {
  const log = o.log ?? silentLogger;
  const onProgress = o.onProgress ?? ignoreProgress;
  const format = await detectImageFormat(imagePath);
  let fileSizeBytes: number;
  let hint: Awaited<ReturnType<typeof readSizeHint>>;
  try {
    fileSizeBytes = (await stat(imagePath)).size;
    hint = await readSizeHint(imagePath, format);
  } catch (e) {
    throw imageUnreadable(imagePath, e);
  }
  const base = { imagePath, format, fileSizeBytes };
  const signalOption = o.signal === undefined ? {} : { signal: o.signal };
  if (hint.exactBytes !== undefined) {
    const sha256 = await sha256File(imagePath, { ...signalOption, onProgress });
    const sizeSource = format === 'raw' ? 'file size' : 'container';
    return { ...base, sha256, imageSizeBytes: hint.exactBytes, sizeSource };
  }
  log.info(`the ${format} image does not record its size: decoding it once to measure it`);
  const hash = createHash('sha256');
  let bytesIn = 0;
  let imageSizeBytes = 0;
  const progress = throttleProgress(onProgress);
  const onInput = (chunk: Buffer): void => {
    hash.update(chunk);
    bytesIn += chunk.length;
  };
  for await (const chunk of decodedChunks(imagePath, format, { ...signalOption, onInput })) {
    imageSizeBytes += chunk.length;
    // The decoded total is what is being found; the compressed bytes read show how far along it is.
    progress.report({ phase: 'measure image', done: imageSizeBytes, unit: 'bytes', counters: { bytesIn } });
  }
  progress.flush({
    phase: 'measure image',
    done: imageSizeBytes,
    total: imageSizeBytes,
    unit: 'bytes',
    counters: { bytesIn },
  });
  return { ...base, sha256: hash.digest('hex'), imageSizeBytes, sizeSource: 'counting pass' };
}
