import { createHash } from 'node:crypto';
import type { OnProgress } from '../core/progress.ts';
import { throttleProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { dropBlockDeviceCache, type OpenedTarget, readAt, syncTarget, type TargetInfo } from '../disk/index.ts';
import type { BlockMap } from './block-map.ts';
import { WRITE_BLOCK_BYTES } from './block-sink.ts';
import type { StreamResult } from './stream-image.ts';

/**
 * Reads back what was written and compares digests: each mapped range with a map, else the whole
 * image. Reads go through O_DIRECT when the target took it, so they reach the device rather than
 * the page cache; otherwise a block device's cache is dropped first. The first logical block is
 * not on the target yet: the held copy stands in for it here (it is the one the digests were
 * taken from), and commitFirstSector reads it back from the device after writing it.
 */
export async function readBack(o: {
  target: TargetInfo;
  opened: OpenedTarget;
  blockMap: BlockMap | undefined;
  written: StreamResult;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<void> {
  const { target, opened, blockMap, written } = o;
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
  const progress = throttleProgress(o.onProgress);
  const buffer = opened.slab.subarray(0, WRITE_BLOCK_BYTES);
  const alignBytes = target.directIoAlignmentBytes;
  const firstSector = written.firstSector;
  let doneBytes = 0;
  for (const [index, range] of ranges.entries()) {
    const hash = createHash(range.algorithm);
    const endBytes = range.offsetBytes + range.lengthBytes;
    for (let at = range.offsetBytes; at < endBytes; at += WRITE_BLOCK_BYTES) {
      o.signal?.throwIfAborted();
      const length = Math.min(WRITE_BLOCK_BYTES, endBytes - at);
      const aligned = opened.direct && at % alignBytes === 0 && length % alignBytes === 0;
      const got = await readAt(aligned ? opened.handle : opened.bufferedHandle, buffer.subarray(0, length), at);
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
