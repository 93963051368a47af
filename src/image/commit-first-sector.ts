import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import {
  closeTarget,
  dropBlockDeviceCache,
  inspectTarget,
  openTarget,
  readAt,
  rereadPartitionTable,
  syncTarget,
  type TargetInfo,
  writeAt,
} from '../disk/index.ts';
import { honestError } from './honest-error.ts';
import { writeAborted } from './write-aborted.ts';

/**
 * The writer's last step: writes the new image's first logical block (LBA 0: boot code and the
 * msdos table or GPT's protective MBR) in ONE write at offset 0, flushes it (fsync), reads it back,
 * and makes the kernel re-read the partition table. Until this runs, the target's LBA 0 is the
 * old one, so a write stopped anywhere before presents no new table over half an image
 * (docs/adr/0205). writeImage calls it; the power-loss commit calls it on its own, later.
 *
 * `writtenTarget` and `firstSector` are what writeImageHoldingFirstSector returned: the target the
 * rest of the image went to (its identity is checked again before the write, so a path re-pointed
 * meanwhile is refused), and one logical block of it (fewer bytes only on a target smaller than
 * that). Every error is `targetTouched`: the rest of the image is on the target already.
 */
export async function commitFirstSector(
  writtenTarget: TargetInfo,
  firstSector: Buffer,
  o: { log?: Logger; signal?: AbortSignal } = {},
): Promise<void> {
  try {
    await commit(writtenTarget, firstSector, o.log ?? silentLogger, o.signal);
  } catch (e) {
    // The rest of the image is on the target already: whatever went wrong, it is touched, and an
    // abort anywhere in here is REIMAGE_WRITE_ABORTED like one during the rest of the write.
    throw honestError(e, o.signal, {
      step: 'while writing its first sector',
      touched: true,
      targetPath: writtenTarget.path,
    });
  }
}

async function commit(
  writtenTarget: TargetInfo,
  firstSector: Buffer,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (signal?.aborted === true) throw writeAborted(true, 'before its first sector was written');
  // The path is opened again (the write's descriptors are closed and flushed): it must still name
  // the very target the rest of the image went to, or LBA 0 would land on another disk.
  const target = await inspectTarget(writtenTarget.realPath);
  if (target.identity !== writtenTarget.identity || target.sizeBytes !== writtenTarget.sizeBytes) {
    throw new ReimageError(
      'REIMAGE_TARGET_CHANGED',
      `${writtenTarget.path} no longer names the target the image was written to (${writtenTarget.identity}, now ${target.identity}); its first sector was not written. Find the disk again and write the image again.`,
      {
        evidence: { path: writtenTarget.path, expected: writtenTarget.identity, actual: target.identity },
        targetTouched: true,
      },
    );
  }
  const expectedBytes = Math.min(target.logicalBlockSizeBytes, target.sizeBytes);
  if (firstSector.length !== expectedBytes) {
    // A caller's bug (or another target): never write a partial or oversized first sector.
    throw new Error(
      `commitFirstSector: ${firstSector.length} bytes given, the first logical block of ${target.path} is ${expectedBytes}`,
    );
  }
  let opened: Awaited<ReturnType<typeof openTarget>>;
  try {
    opened = await openTarget(target, Math.max(4096, expectedBytes));
  } catch (e) {
    // The opener's own words promise an untouched target; here the rest of the image is written.
    if (!(e instanceof ReimageError)) throw e;
    throw new ReimageError(
      e.code,
      `Cannot open ${target.path} to write its first sector (${e.code}). The rest of the image is written; its first sector is still the old one. Free the target and write the image again.`,
      { evidence: e.evidence, cause: e, targetTouched: true },
    );
  }
  try {
    const buffer = opened.slab.subarray(0, firstSector.length);
    firstSector.copy(buffer);
    // One logical block in one write: O_DIRECT makes it one request to the device, which cannot
    // tear inside a logical block; the page cache would write back whole pages.
    const direct = opened.direct && firstSector.length % target.directIoAlignmentBytes === 0;
    const handle = direct ? opened.handle : opened.bufferedHandle;
    await writeAt(handle, buffer, 0);
    await syncTarget(opened);
    if (!direct) await dropBlockDeviceCache(target);
    buffer.fill(0);
    const got = await readAt(handle, buffer, 0);
    if (got !== firstSector.length || !buffer.equals(firstSector)) {
      throw new ReimageError(
        'REIMAGE_WRITE_VERIFY_MISMATCH',
        `Reading back the first sector of ${target.path} gave different bytes than were written. The disk may be failing; write again, and replace the disk if it repeats.`,
        { evidence: { path: target.path, range: 'first sector', offsetBytes: 0 }, targetTouched: true },
      );
    }
  } catch (e) {
    await closeTarget(opened).catch(() => {});
    throw e;
  }
  await closeTarget(opened);
  await rereadPartitionTable(target, log);
}
