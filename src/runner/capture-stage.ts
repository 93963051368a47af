import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from '../core/logger.ts';
import { type OnProgress, throttleProgress } from '../core/progress.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { checkImageFits, inspectTarget, type Mounted, mountReadOnly, resolvePartition } from '../disk/index.ts';
import { loadBlockMap, refuseSizeConflict } from '../image/index.ts';
import type { Plan } from '../plan/index.ts';
import { type CaptureSummary, captureBundle, requestsFromPlanPaths } from '../retain/index.ts';
import { unmountAll } from './unmount-all.ts';

/** Files a run keeps in its work dir that must not outlive it there: the image copy and the bundle (keys). */
export const RUN_SCRATCH_FILES = ['image', 'image.bmap', 'retain.tar'] as const;

export interface CaptureStageResult {
  /** The verified image, in the work dir (RAM in the initramfs). */
  readonly imagePath: string;
  readonly bmapPath: string | undefined;
  readonly bundlePath: string;
  readonly compressedSizeBytes: number;
  readonly capture: CaptureSummary;
}

/** Copies the image into the work dir while hashing it, so what is written is what was checked. */
async function loadImageIntoRam(
  source: string,
  destination: string,
  onProgress: OnProgress,
  signal: AbortSignal | undefined,
): Promise<{ sha256: string; sizeBytes: number }> {
  let totalBytes: number;
  try {
    totalBytes = (await stat(source)).size;
  } catch (error) {
    throw new ReimageError(
      'REIMAGE_IMAGE_UNREADABLE',
      `The image file ${source} cannot be read (${isSystemError(error) ? error.code : String(error)}). Check image.path and image.partition in the plan.`,
      { evidence: { path: source, field: 'image.path' }, cause: error },
    );
  }
  const hash = createHash('sha256');
  let sizeBytes = 0;
  const { report, flush } = throttleProgress(onProgress);
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      sizeBytes += chunk.length;
      report({ phase: 'load image into RAM', done: sizeBytes, total: totalBytes, unit: 'bytes' });
      callback(null, chunk);
    },
  });
  await pipeline(createReadStream(source), meter, createWriteStream(destination, { mode: 0o600 }), { signal });
  flush({ phase: 'load image into RAM', done: sizeBytes, total: totalBytes, unit: 'bytes' });
  return { sha256: hash.digest('hex'), sizeBytes };
}

/**
 * Stage 1: mount the old system read-only, load the image into RAM and check its digest (and,
 * with a block map or image.size, its size against the disk), capture the retention bundle into RAM,
 * unmount. It only reads: any failure here leaves the disk exactly as it was.
 */
export async function captureStage(o: {
  plan: Plan;
  diskDevice: string;
  workDir: string;
  log: Logger;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<CaptureStageResult> {
  const { plan, diskDevice, workDir, log, onProgress, signal } = o;
  const [imageName, bmapName, bundleName] = RUN_SCRATCH_FILES;
  const imagePath = join(workDir, imageName);
  const bmapPath = plan.image.bmap === undefined ? undefined : join(workDir, bmapName);
  const bundlePath = join(workDir, bundleName);
  const mounts: Mounted[] = [];
  try {
    const imageDevice = await resolvePartition(diskDevice, plan.image.partition, { field: 'image.partition' });
    const retainDevice = await resolvePartition(diskDevice, plan.retain.partition, { field: 'retain.partition' });
    const imageMount = await mountReadOnly(imageDevice, join(workDir, 'old-image'), log);
    mounts.push(imageMount);
    const retainMount =
      retainDevice === imageDevice ? imageMount : await mountReadOnly(retainDevice, join(workDir, 'old-root'), log);
    if (retainMount !== imageMount) mounts.push(retainMount);

    const loaded = await loadImageIntoRam(join(imageMount.dir, plan.image.path), imagePath, onProgress, signal);
    if (loaded.sha256 !== plan.image.sha256) {
      throw new ReimageError(
        'REIMAGE_IMAGE_DIGEST_MISMATCH',
        `The image ${plan.image.path} does not match the plan's digest: it is damaged or not the image the plan is for. Nothing was written.`,
        {
          evidence: {
            path: plan.image.path,
            field: 'image.sha256',
            expected: plan.image.sha256,
            actual: loaded.sha256,
          },
        },
      );
    }
    log.info(`image ${plan.image.path} (${loaded.sizeBytes} bytes) loaded into RAM; SHA-256 matches the plan`);

    if (plan.image.bmap !== undefined && bmapPath !== undefined) {
      try {
        await copyFile(join(imageMount.dir, plan.image.bmap), bmapPath);
      } catch (error) {
        throw new ReimageError(
          'REIMAGE_BMAP_UNREADABLE',
          `The block map ${plan.image.bmap} cannot be read. Check image.bmap in the plan.`,
          {
            evidence: { field: 'image.bmap', path: plan.image.bmap },
            cause: error,
          },
        );
      }
      const blockMap = await loadBlockMap(bmapPath);
      refuseSizeConflict(blockMap, plan.image.size);
      checkImageFits(await inspectTarget(diskDevice), blockMap.imageSizeBytes);
    } else if (plan.image.size !== undefined) {
      // Known without decoding: an image too large for the disk is refused before anything changes.
      // The writer checks the decoded bytes against it as it writes.
      checkImageFits(await inspectTarget(diskDevice), plan.image.size);
    }

    const capture = await captureBundle({
      root: retainMount.dir,
      requests: requestsFromPlanPaths(plan.retain.paths),
      bundlePath,
      // No hostName: the manifest then records the old root's /etc/hostname, the machine's
      // name, rather than the initramfs's.
      log,
      signal,
      onProgress,
    });
    log.info(`retention bundle: ${capture.entries} entries captured into RAM`);
    return { imagePath, bmapPath, bundlePath, compressedSizeBytes: loaded.sizeBytes, capture };
  } finally {
    await unmountAll(mounts);
  }
}
