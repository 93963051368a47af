import type { Logger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { describePartitions, type PartitionInfo, resolvePartition } from '../disk/index.ts';
import { type WriteSummary, writeImage } from '../image/index.ts';
import type { Plan } from '../plan/index.ts';
import type { CaptureStageResult } from './capture-stage.ts';
import { markTouched } from './with-retries.ts';

/**
 * Stage 2: stream the verified image onto the disk (only mapped ranges with a block map, read
 * back after), re-read the partition table, wait for the new layout's partitions and log the
 * new table as the original did with blkid.
 */
export async function writeStage(o: {
  plan: Plan;
  diskDevice: string;
  captured: CaptureStageResult;
  log: Logger;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<{ write: WriteSummary; newPartitions: PartitionInfo[] }> {
  const { plan, diskDevice, captured, log, onProgress, signal } = o;
  const write = await writeImage({
    imagePath: captured.imagePath,
    targetPath: diskDevice,
    sha256: plan.image.sha256,
    bmapPath: captured.bmapPath,
    // From the plan (reimage image inspect): spares a bzip2 or gzip image the counting pass; a
    // wrong value fails the write.
    ...(plan.image.size === undefined ? {} : { imageSizeBytes: plan.image.size }),
    // The image is already in RAM here: a decoded copy beside it would break DESIGN's bound (RAM
    // is the compressed image plus the bundle plus a small constant), so none is kept; a plan
    // without a size or a map pays extra decodes instead, and plan validate says how to avoid it.
    decodedCopyMaxBytes: 0,
    // Read-back of the mapped ranges is cheap; without a map it would read the whole disk.
    verify: captured.bmapPath !== undefined,
    log,
    signal,
    onProgress,
  });
  log.info(
    `wrote ${write.bytesWritten} bytes, skipped ${write.bytesSkipped} (${write.format} image of ${write.imageSizeBytes} bytes)`,
  );
  // From here the new image is on the disk: any failure is a failure of a touched disk.
  try {
    // The writer has re-read the table (disk/block-device.ts); the partitions may take a moment.
    for (const [index, mount] of plan.restore.mounts.entries()) {
      await resolvePartition(diskDevice, mount.partition, {
        timeoutMs: 30_000,
        field: `restore.mounts[${index}].partition`,
      });
    }
    const newPartitions = await describePartitions(diskDevice);
    log.info('new partition table:');
    for (const partition of newPartitions) {
      log.info(
        `  ${partition.device} ${partition.sizeBytes} bytes ${partition.fsType ?? '-'} label=${partition.label ?? '-'} uuid=${partition.uuid ?? '-'}`,
      );
    }
    return { write, newPartitions };
  } catch (error) {
    throw markTouched(error, 'REIMAGE_RUN_WRITE_FAILED', 'After writing the image, the new partitions');
  }
}
