import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ignoreProgress, type OnProgress, throttleProgress } from '../core/progress.ts';
import { isReimageError, isSystemError, ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { attachLoopDevice, describePartitions, type Mounted, mountReadOnly, mountReadWrite } from '../disk/index.ts';
import { refreshPartitions, resolvePartition } from '../disk/partitions.ts';
import { loadBlockMap, type WriteSummary, writeImage } from '../image/index.ts';
import { describePlan, type Plan } from '../plan/index.ts';
import { captureBundle, type RetainRequest, restoreBundle, verifyBundle } from '../retain/index.ts';
import { Journal, type StageName } from './journal.ts';
import type { RunLog } from './run-log.ts';

export interface RunPlanOptions {
  readonly plan: Plan;
  readonly planPath: string;
  /** Where the image, the bundle, the journal and the log live during the run (RAM in the initramfs). */
  readonly workDir: string;
  readonly log: RunLog;
  readonly onProgress?: OnProgress;
  readonly signal?: AbortSignal;
  /** Attempts for the write and restore stages (the capture stage is never retried: it fails safe). */
  readonly maxAttempts?: number;
  /** Extra log files to copy into the new root (e.g. the initramfs console log). */
  readonly extraLogFiles?: readonly string[];
}

export interface StageReport {
  readonly durationMs: number;
  readonly attempts: number;
}

export interface RunReport {
  readonly result: 'ok';
  readonly reimageVersion: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly host: string;
  readonly disk: string;
  readonly plan: { readonly file: string; readonly sha256: string };
  readonly image: {
    readonly path: string;
    readonly sha256: string;
    readonly compressedSizeBytes: number;
    readonly format: string;
    readonly imageSizeBytes: number;
  };
  readonly stages: Record<StageName, StageReport>;
  readonly bytesWritten: number;
  readonly bytesSkipped: number;
  readonly entriesCaptured: number;
  readonly entriesRestored: number;
  readonly entriesVerified: number;
  readonly missingOptional: readonly string[];
  readonly warnings: readonly string[];
  readonly peakRssBytes: number;
  readonly newPartitions: readonly {
    device: string;
    sizeBytes: number;
    fsType?: string;
    label?: string;
    uuid?: string;
  }[];
}

function retainRequests(plan: Plan): RetainRequest[] {
  return plan.retain.paths.map((entry) =>
    typeof entry === 'string' ? { pattern: entry, optional: false } : { pattern: entry.path, optional: entry.optional },
  );
}

async function reimageVersion(): Promise<string> {
  const text = await readFile(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** Copies the image into the work dir (RAM) while hashing it, so what is written is what was checked. */
async function loadImageIntoRam(
  source: string,
  destination: string,
  onProgress: OnProgress,
  signal: AbortSignal | undefined,
): Promise<{ sha256: string; sizeBytes: number }> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  let totalBytes = 0;
  try {
    totalBytes = (await stat(source)).size;
  } catch (error) {
    throw new ReimageError(
      'REIMAGE_IMAGE_NOT_FOUND',
      `The image file ${source} cannot be read (${isSystemError(error) ? error.code : String(error)}). Check image.path and image.partition in the plan.`,
      { evidence: { path: source, field: 'image.path' }, cause: error },
    );
  }
  const { report, flush } = throttleProgress(onProgress);
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      sizeBytes += chunk.length;
      report({ phase: 'load image into RAM', done: sizeBytes, total: totalBytes });
      callback(null, chunk);
    },
  });
  await pipeline(createReadStream(source), meter, createWriteStream(destination, { mode: 0o600 }), { signal });
  flush({ phase: 'load image into RAM', done: sizeBytes, total: totalBytes });
  return { sha256: hash.digest('hex'), sizeBytes };
}

async function diskSizeBytes(device: string): Promise<number> {
  const { stdout } = await runCommand('blockdev', ['--getsize64', device]);
  return Number(stdout.trim());
}

/** Wraps anything thrown after the disk started to change so the exit code says so. */
function touched(error: unknown, code: string, what: string): ReimageError {
  if (isReimageError(error)) return error.withTargetTouched();
  return new ReimageError(code, `${what}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
    targetTouched: true,
  });
}

async function unmountAll(mounts: Mounted[]): Promise<void> {
  while (mounts.length > 0) {
    const mount = mounts.pop();
    if (mount !== undefined) await mount.unmount();
  }
}

/**
 * The three stages of a reimage — capture, write, restore — over one plan. Failures in the
 * capture stage leave the disk untouched (the error says so, and the initramfs reboots into
 * the old OS); the write and restore stages are retried, and their errors are marked touched.
 * The runner never reboots: its caller (the initramfs /init) carries out `finish`.
 */
export async function runPlan(options: RunPlanOptions): Promise<RunReport> {
  const { plan, log, signal, workDir } = options;
  const onProgress = options.onProgress ?? ignoreProgress;
  const maxAttempts = options.maxAttempts ?? 3;
  const startedAt = new Date();
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const journal = new Journal(join(workDir, 'journal.jsonl'));
  const planText = await readFile(options.planPath);
  const stages: Partial<Record<StageName, StageReport>> = {};
  const cleanups: (() => Promise<void>)[] = [];

  log.info(`reimage ${await reimageVersion()} on ${hostname()}: plan ${options.planPath}`);
  for (const line of describePlan(plan)) log.info(line);

  try {
    // The disk: a block device, or (outside the initramfs) a disk image file on a loop device.
    let diskStat: Awaited<ReturnType<typeof stat>>;
    try {
      diskStat = await stat(plan.disk);
    } catch (error) {
      throw new ReimageError(
        'REIMAGE_DISK_NOT_FOUND',
        `The disk ${plan.disk} does not exist. Check the plan's disk field.`,
        {
          evidence: { field: 'disk', path: plan.disk },
          cause: error,
        },
      );
    }
    let diskDevice = plan.disk;
    if (diskStat.isFile()) {
      const loop = await attachLoopDevice(plan.disk);
      cleanups.push(() => loop.detach());
      diskDevice = loop.device;
      log.info(`disk image ${plan.disk} attached as ${diskDevice}`);
    } else if (!diskStat.isBlockDevice()) {
      throw new ReimageError(
        'REIMAGE_DISK_NOT_FOUND',
        `${plan.disk} is neither a block device nor a disk image file.`,
        {
          evidence: { field: 'disk', path: plan.disk },
        },
      );
    }

    // Stage 1: capture. Everything here reads only; any failure leaves the disk as it was.
    const ramImage = join(workDir, 'image');
    const ramBmap = plan.image.bmap === undefined ? undefined : join(workDir, 'image.bmap');
    const bundlePath = join(workDir, 'retain.tar');
    let compressedSizeBytes = 0;
    let captureSummary: Awaited<ReturnType<typeof captureBundle>>;
    {
      const started = Date.now();
      journal.record('capture', 'start', 1);
      log.info('stage 1/3 capture: mounting the old system read-only');
      const mounts: Mounted[] = [];
      try {
        const imageDevice = await resolvePartition(diskDevice, plan.image.partition, { field: 'image.partition' });
        const retainDevice = await resolvePartition(diskDevice, plan.retain.partition, { field: 'retain.partition' });
        const imageMount = await mountReadOnly(imageDevice, join(workDir, 'old-image'), log);
        mounts.push(imageMount);
        const retainMount =
          retainDevice === imageDevice ? imageMount : await mountReadOnly(retainDevice, join(workDir, 'old-root'), log);
        if (retainMount !== imageMount) mounts.push(retainMount);

        const loaded = await loadImageIntoRam(join(imageMount.dir, plan.image.path), ramImage, onProgress, signal);
        compressedSizeBytes = loaded.sizeBytes;
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
        if (plan.image.bmap !== undefined && ramBmap !== undefined) {
          await copyFile(join(imageMount.dir, plan.image.bmap), ramBmap).catch((error: unknown) => {
            throw new ReimageError(
              'REIMAGE_BMAP_NOT_FOUND',
              `The block map ${plan.image.bmap} cannot be read. Check image.bmap in the plan.`,
              {
                evidence: { field: 'image.bmap', path: plan.image.bmap },
                cause: error,
              },
            );
          });
          const blockMap = await loadBlockMap(ramBmap);
          const diskBytes = await diskSizeBytes(diskDevice);
          if (blockMap.imageSizeBytes > diskBytes) {
            throw new ReimageError(
              'REIMAGE_IMAGE_TOO_LARGE',
              `The image (${blockMap.imageSizeBytes} bytes) is larger than the disk ${plan.disk} (${diskBytes} bytes). Use an image made for this disk.`,
              { evidence: { expected: `at most ${diskBytes}`, actual: blockMap.imageSizeBytes, path: plan.disk } },
            );
          }
        }
        captureSummary = await captureBundle({
          root: retainMount.dir,
          requests: retainRequests(plan),
          bundlePath,
          // No hostName: the manifest then records the old root's /etc/hostname, the machine's
          // name, rather than the initramfs's.
          log,
          signal,
          onProgress,
        });
        log.info(`retention bundle: ${captureSummary.entries} entries captured into RAM`);
      } catch (error) {
        journal.record('capture', 'failed', 1, isReimageError(error) ? error.code : String(error));
        throw error;
      } finally {
        await unmountAll(mounts);
      }
      journal.record('capture', 'done', 1);
      stages.capture = { durationMs: Date.now() - started, attempts: 1 };
    }

    // Stage 2: write. From the first byte on, errors are "touched"; the stage is retried.
    let writeSummary: WriteSummary | undefined;
    let newPartitions: RunReport['newPartitions'] = [];
    {
      const started = Date.now();
      for (let attempt = 1; ; attempt += 1) {
        journal.record('write', 'start', attempt);
        log.info(`stage 2/3 write: writing the image onto ${plan.disk} (attempt ${attempt} of ${maxAttempts})`);
        try {
          writeSummary = await writeImage({
            imagePath: ramImage,
            targetPath: diskDevice,
            sha256: plan.image.sha256,
            bmapPath: ramBmap,
            verify: ramBmap !== undefined,
            log,
            signal,
            onProgress,
          });
          log.info(
            `wrote ${writeSummary.bytesWritten} bytes, skipped ${writeSummary.bytesSkipped} (${writeSummary.format} image of ${writeSummary.imageSizeBytes} bytes)`,
          );
          await refreshPartitions(diskDevice);
          for (const mount of plan.restore.mounts) {
            await resolvePartition(diskDevice, mount.partition, { timeoutMs: 30_000, field: 'restore.mounts' });
          }
          newPartitions = await describePartitions(diskDevice);
          log.info('new partition table:');
          for (const partition of newPartitions) {
            log.info(
              `  ${partition.device} ${partition.sizeBytes} bytes ${partition.fsType ?? '-'} label=${partition.label ?? '-'} uuid=${partition.uuid ?? '-'}`,
            );
          }
          journal.record('write', 'done', attempt);
          stages.write = { durationMs: Date.now() - started, attempts: attempt };
          break;
        } catch (error) {
          journal.record('write', 'failed', attempt, isReimageError(error) ? error.code : String(error));
          // A refusal before the first byte (target mounted, too small) will not change on retry.
          if (isReimageError(error) && !error.targetTouched) throw error;
          const marked = touched(error, 'REIMAGE_RUN_WRITE_FAILED', 'Writing the image failed');
          log.warn(`write attempt ${attempt} failed: ${marked.code}: ${marked.message}`);
          if (attempt >= maxAttempts || signal?.aborted === true) throw marked;
        }
      }
    }

    // Stage 3: restore into the new layout, verify, run after-hooks, leave the logs.
    let restoreSummary: Awaited<ReturnType<typeof restoreBundle>> | undefined;
    let verifySummary: Awaited<ReturnType<typeof verifyBundle>> | undefined;
    {
      const started = Date.now();
      const newRoot = join(workDir, 'new-root');
      for (let attempt = 1; ; attempt += 1) {
        journal.record('restore', 'start', attempt);
        log.info(`stage 3/3 restore: mounting the new layout (attempt ${attempt} of ${maxAttempts})`);
        const mounts: Mounted[] = [];
        try {
          for (const mount of plan.restore.mounts) {
            const device = await resolvePartition(diskDevice, mount.partition, { field: 'restore.mounts' });
            mounts.push(await mountReadWrite(device, join(newRoot, mount.at)));
            log.info(`mounted ${device} at ${mount.at}`);
          }
          restoreSummary = await restoreBundle({
            root: newRoot,
            bundlePath,
            owners: plan.retain.owners,
            log,
            signal,
            onProgress,
          });
          log.info(`restored ${restoreSummary.entriesRestored} entries`);
          verifySummary = await verifyBundle({ root: newRoot, bundlePath, owners: plan.retain.owners, signal });
          if (!verifySummary.ok) {
            for (const difference of verifySummary.differences) {
              log.warn(
                `verify: ${difference.path}: ${difference.what}: expected ${difference.expected}, found ${difference.actual}`,
              );
            }
            throw new ReimageError(
              'REIMAGE_RETAIN_VERIFY_MISMATCH',
              `${verifySummary.differences.length} retained entries differ from the bundle after the restore.`,
              { evidence: { differences: verifySummary.differences.length }, targetTouched: true },
            );
          }
          log.info(`verified ${verifySummary.entriesChecked} retained entries against the manifest`);
          for (const command of plan.restore.after) {
            log.info(`after-hook (chroot ${plan.restore.mounts[0]?.at}): ${command}`);
            const result = await runCommand('chroot', [newRoot, '/bin/sh', '-c', command], {
              allowFailure: true,
              signal,
            });
            for (const line of `${result.stdout}${result.stderr}`.split('\n')) if (line !== '') log.info(`  | ${line}`);
            if (result.exitCode !== 0) {
              throw new ReimageError(
                'REIMAGE_RUN_AFTER_HOOK_FAILED',
                `The after-hook "${command}" exited ${result.exitCode}.`,
                {
                  evidence: { field: 'restore.after', command, exitCode: result.exitCode },
                  targetTouched: true,
                },
              );
            }
          }
          const finishedAt = new Date();
          const report: RunReport = {
            result: 'ok',
            reimageVersion: await reimageVersion(),
            startedAt: startedAt.toISOString(),
            finishedAt: finishedAt.toISOString(),
            host: hostname(),
            disk: plan.disk,
            plan: { file: options.planPath, sha256: createHash('sha256').update(planText).digest('hex') },
            image: {
              path: plan.image.path,
              sha256: plan.image.sha256,
              compressedSizeBytes,
              format: writeSummary?.format ?? 'unknown',
              imageSizeBytes: writeSummary?.imageSizeBytes ?? 0,
            },
            stages: {
              capture: stages.capture ?? { durationMs: 0, attempts: 0 },
              write: stages.write ?? { durationMs: 0, attempts: 0 },
              restore: { durationMs: Date.now() - started, attempts: attempt },
            },
            bytesWritten: writeSummary?.bytesWritten ?? 0,
            bytesSkipped: writeSummary?.bytesSkipped ?? 0,
            entriesCaptured: captureSummary.entries,
            entriesRestored: restoreSummary.entriesRestored,
            entriesVerified: verifySummary.entriesChecked,
            missingOptional: captureSummary.missingOptional,
            warnings: [...log.warnings],
            peakRssBytes: process.resourceUsage().maxRSS * 1024,
            newPartitions,
          };
          const logsDir = join(newRoot, plan.restore.logs);
          await mkdir(logsDir, { recursive: true });
          await writeFile(join(logsDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
          log.info(`report and logs written to ${plan.restore.logs} in the new root`);
          journal.record('restore', 'done', attempt);
          for (const file of [log.file, journal.file, ...(options.extraLogFiles ?? [])]) {
            await copyFile(file, join(logsDir, file.split('/').pop() ?? 'log')).catch(() => undefined);
          }
          await unmountAll(mounts);
          await runCommand('sync', []);
          log.info(
            `reimage complete in ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1)} s; finish: ${plan.finish}`,
          );
          return report;
        } catch (error) {
          journal.record('restore', 'failed', attempt, isReimageError(error) ? error.code : String(error));
          await unmountAll(mounts).catch((unmountError: unknown) =>
            log.warn(`unmount failed: ${String(unmountError)}`),
          );
          const marked = touched(error, 'REIMAGE_RUN_RESTORE_FAILED', 'Restoring the retained state failed');
          log.warn(`restore attempt ${attempt} failed: ${marked.code}: ${marked.message}`);
          if (attempt >= maxAttempts || signal?.aborted === true) throw marked;
        }
      }
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}
