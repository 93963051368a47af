import { createReadStream } from 'node:fs';
import { type Duplex, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { createDecoder } from './decoder.ts';
import type { ImageFormat } from './image-format.ts';
import { imageUnreadable } from './image-format.ts';
import { garbageReleaser } from './release-garbage.ts';
import { reusableZstdAvailable, zstdChunks } from './zstd-chunks.ts';

/** Compressed bytes per read. */
const READ_CHUNK_BYTES = 1024 * 1024;

export interface DecodedChunksOptions {
  readonly signal?: AbortSignal;
  /** Sees every byte of the file as read (compressed), in order: for the input digest. */
  readonly onInput?: (chunk: Buffer) => void;
}

/**
 * The image's decoded bytes, in order, for any format: the one decode loop, for the counting pass
 * and for the write alike. zstd decodes in this thread into one reused buffer when Node allows
 * (docs/adr/0204); the others go through their decoder (docs/adr/0201). A yielded chunk may be a
 * view of a reused buffer: it is valid only until the next one is asked for, so copy what must
 * be kept. A damaged or truncated stream throws REIMAGE_IMAGE_CORRUPT (the decoder's own
 * complaint), an unreadable file REIMAGE_IMAGE_UNREADABLE; after an abort, the abort's error.
 * Stopping the iteration early stops the decoder.
 */
export async function* decodedChunks(
  imagePath: string,
  format: ImageFormat,
  o: DecodedChunksOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  if (format === 'zstd' && reusableZstdAvailable()) {
    yield* zstdChunks(imagePath, o);
    return;
  }
  const decoder = createDecoder(format, imagePath);
  const input = createReadStream(imagePath, { highWaterMark: READ_CHUNK_BYTES });
  const onInput = o.onInput;
  const stages: Duplex[] = [];
  if (onInput !== undefined) {
    stages.push(
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          onInput(chunk);
          callback(null, chunk);
        },
      }),
    );
  }
  if (decoder.stage !== undefined) stages.push(decoder.stage);
  // The last stage is read here, not by the pipeline: the pipeline feeds it and reports errors.
  const output = stages.at(-1) ?? input;
  const feeding =
    stages.length === 0
      ? Promise.resolve()
      : pipeline([input, ...stages], o.signal === undefined ? {} : { signal: o.signal });
  // Awaited below; until then a rejection must not count as unhandled.
  feeding.catch(() => {});
  const releaseGarbage = garbageReleaser();
  let finished = false;
  try {
    if (stages.length === 0) o.signal?.throwIfAborted();
    for await (const chunk of output as AsyncIterable<Buffer>) {
      if (stages.length === 0) o.signal?.throwIfAborted();
      yield chunk;
      // Decoders hand out a fresh Buffer per chunk (docs/adr/0203).
      releaseGarbage(chunk.length);
    }
    await feeding;
    // A tool's exit status arrives after its output ends: a stream that ends early must never
    // pass for a short image.
    await decoder.finished;
    finished = true;
  } catch (e) {
    decoder.kill();
    await decoder.finished.catch(() => {});
    // After an abort the killed tool's exit status says nothing about the image.
    if (o.signal?.aborted === true) throw e;
    throw decoder.failure() ?? (e instanceof ReimageError ? e : imageUnreadable(imagePath, e));
  } finally {
    if (!finished) {
      // The consumer stopped early (or failed): stop reading and decoding.
      decoder.kill();
      input.destroy();
      for (const stage of stages) stage.destroy();
      await decoder.finished.catch(() => {});
    }
  }
}
