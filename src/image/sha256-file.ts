import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { OnProgress } from '../core/progress.ts';
import { throttleProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { imageUnreadable } from './image-format.ts';

const READ_CHUNK_BYTES = 1024 * 1024;

/** The SHA-256 of a whole file, as lowercase hex, streamed in 1 MiB reads. */
export async function sha256File(
  path: string,
  o: { signal?: AbortSignal; onProgress?: OnProgress } = {},
): Promise<string> {
  let totalBytes: number;
  try {
    totalBytes = (await stat(path)).size;
  } catch (e) {
    throw imageUnreadable(path, e);
  }
  const hash = createHash('sha256');
  const progress = o.onProgress === undefined ? undefined : throttleProgress(o.onProgress);
  let doneBytes = 0;
  try {
    await pipeline(
      createReadStream(path, { highWaterMark: READ_CHUNK_BYTES }),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) {
          hash.update(chunk);
          doneBytes += chunk.length;
          progress?.report({ phase: 'verify image', done: doneBytes, total: totalBytes, unit: 'bytes' });
        }
      },
      o.signal === undefined ? {} : { signal: o.signal },
    );
  } catch (e) {
    if (e instanceof ReimageError) throw e;
    if (e instanceof Error && e.name === 'AbortError') throw e;
    throw imageUnreadable(path, e);
  }
  progress?.flush({ phase: 'verify image', done: doneBytes, total: totalBytes, unit: 'bytes' });
  return hash.digest('hex');
}
