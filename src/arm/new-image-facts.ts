import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type DiskMap, mapImageFile } from '../boot/index.ts';
import type { Logger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { type PartitionTable, readAt, readPartitionTable } from '../disk/index.ts';
import { writeImage } from '../image/index.ts';
import { describePartitionRef, type PartitionRef, type Plan } from '../plan/index.ts';

/** What arm learns of the new image before it reserves anything. */
export interface NewImageFacts {
  /** The image as given (compressed): its SHA-256 matched the plan's. */
  readonly format: string;
  readonly sha256: string;
  readonly compressedSizeBytes: number;
  /** The decoded size (the bytes the disk will hold). */
  readonly sizeBytes: number;
  readonly table: PartitionTable;
  /** The bytes the armed write writes, from the new filesystems' allocation (never zero runs). */
  readonly map: DiskMap;
  /** The new image's first 512 bytes: the commit writes them last. */
  readonly firstSector: Buffer;
  /** New partitions mounted read-write before the commit (restore.mounts), with their filesystem. */
  readonly writablePartitions: readonly { readonly number: number; readonly filesystem: string | undefined }[];
}

/** `blkid -p` of the bytes at an offset of an image file: TYPE, LABEL, UUID. */
async function probeAt(imagePath: string, offsetBytes: number, sizeBytes: number): Promise<Record<string, string>> {
  const { stdout } = await runCommand(
    'blkid',
    ['-p', '-o', 'export', '-O', String(offsetBytes), '-S', String(sizeBytes), imagePath],
    { allowFailure: true },
  );
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

/** The new image's partition a restore mount names (a number, or a label/UUID found in the image). */
async function resolveNewPartition(
  imagePath: string,
  table: PartitionTable,
  ref: PartitionRef,
  field: string,
): Promise<{ number: number; filesystem: string | undefined }> {
  for (const partition of table.partitions) {
    const fields = await probeAt(imagePath, partition.startBytes, partition.sizeBytes);
    const matches =
      typeof ref === 'number'
        ? partition.number === ref
        : 'label' in ref
          ? fields.LABEL === ref.label
          : fields.UUID?.toLowerCase() === ref.uuid.toLowerCase();
    if (matches) return { number: partition.number, filesystem: fields.TYPE };
  }
  throw new ReimageError(
    'REIMAGE_ARM_LAYOUT_INVALID',
    `The plan's ${field} names ${describePartitionRef(ref)}, which the new image does not have (its partitions: ${table.partitions.map((p) => p.number).join(', ') || 'none'}). Fix ${field} for the new image's layout.`,
    { evidence: { field, partition: JSON.stringify(ref) } },
  );
}

/**
 * Decodes the new image into a sparse scratch file (checking its digest before the first byte is
 * decoded onto the scratch file, as the writer does), reads its partition table and maps its
 * filesystems. Reads the old disk not at all; the scratch file is removed before returning.
 */
export async function learnNewImage(o: {
  plan: Plan;
  imagePath: string;
  diskSizeBytes: number;
  workDir: string;
  log: Logger;
  signal?: AbortSignal;
}): Promise<NewImageFacts> {
  const decodedPath = join(o.workDir, 'new-image.raw');
  // A sparse file as large as the disk: an image that does not fit fails the write here.
  const scratch = await open(decodedPath, 'w', 0o600);
  try {
    await scratch.truncate(o.diskSizeBytes);
  } finally {
    await scratch.close();
  }
  try {
    const summary = await writeImage({
      imagePath: o.imagePath,
      targetPath: decodedPath,
      sha256: o.plan.image.sha256,
      ...(o.plan.image.size === undefined ? {} : { imageSizeBytes: o.plan.image.size }),
      log: o.log,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
    const file = await open(decodedPath, 'r+');
    let table: PartitionTable;
    const firstSector = Buffer.alloc(512);
    try {
      await file.truncate(summary.imageSizeBytes);
      await readAt(file, firstSector, 0);
      table = await readPartitionTable(file, summary.imageSizeBytes);
    } finally {
      await file.close();
    }
    const map = await mapImageFile(decodedPath);
    const writablePartitions: { number: number; filesystem: string | undefined }[] = [];
    for (const [index, mount] of o.plan.restore.mounts.entries()) {
      const found = await resolveNewPartition(
        decodedPath,
        table,
        mount.partition,
        `restore.mounts[${index}].partition`,
      );
      if (!writablePartitions.some((p) => p.number === found.number)) writablePartitions.push(found);
    }
    return {
      format: summary.format,
      sha256: summary.imageSha256,
      compressedSizeBytes: summary.bytesIn,
      sizeBytes: summary.imageSizeBytes,
      table,
      map,
      firstSector,
      writablePartitions,
    };
  } catch (error) {
    if (error instanceof ReimageError && error.code === 'REIMAGE_TARGET_TOO_SMALL') {
      throw new ReimageError(
        'REIMAGE_ARM_LAYOUT_INVALID',
        `The new image ${o.plan.image.path} does not fit the disk (${o.diskSizeBytes} bytes). Nothing was changed.`,
        { evidence: { field: 'image.path', diskSizeBytes: o.diskSizeBytes }, cause: error },
      );
    }
    // The writer's words are about its target, which here is arm's own scratch file: the disk
    // itself has not been opened for writing, so whatever failed left it untouched.
    if (error instanceof ReimageError) {
      throw new ReimageError(error.code, error.message, {
        evidence: error.evidence,
        cause: error.cause,
        details: error.details,
        targetState: 'untouched',
      });
    }
    throw error;
  } finally {
    await rm(decodedPath, { force: true });
  }
}
