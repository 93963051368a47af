import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { isAbortError } from '../core/exit-codes.ts';
import { ignoreProgress, type OnProgress } from '../core/progress.ts';
import { isReimageError, ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { attachLoopDevice, type Mounted, type PartitionInfo, resolvePartition } from '../disk/index.ts';
import { describePlan, type Plan } from '../plan/index.ts';
import { type CaptureStageResult, captureStage } from './capture-stage.ts';
import { Journal, type StageName } from './journal.ts';
import { restoreStage, runAfterHooks } from './restore-stage.ts';
import type { RunLog } from './run-log.ts';
import { unmountAll } from './unmount-all.ts';
import { markTouched, withRetries } from './with-retries.ts';
import { writeStage } from './write-stage.ts';

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

/** What a run did; written as report.json into the plan's restore.logs. */
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
  readonly newPartitions: readonly PartitionInfo[];
}

async function reimageVersion(): Promise<string> {
  const text = await readFile(new URL('../../package.json', import.meta.url), 'utf8');
  return (JSON.parse(text) as { version: string }).version;
}

/** The disk as a block device: a disk image file (outside the initramfs) goes on a loop device. */
async function openDisk(plan: Plan, log: RunLog, cleanups: (() => Promise<void>)[]): Promise<string> {
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
  if (diskStat.isBlockDevice()) return plan.disk;
  if (!diskStat.isFile()) {
    throw new ReimageError('REIMAGE_DISK_NOT_FOUND', `${plan.disk} is neither a block device nor a disk image file.`, {
      evidence: { field: 'disk', path: plan.disk },
    });
  }
  const loop = await attachLoopDevice(plan.disk);
  cleanups.push(() => loop.detach());
  log.info(`disk image ${plan.disk} attached as ${loop.device}`);
  return loop.device;
}

/** report.json and copies of the log files, into the logs directory of the mounted new root. */
async function writeLogs(logsDir: string, report: RunReport, logFiles: readonly string[], log: RunLog): Promise<void> {
  await mkdir(logsDir, { recursive: true });
  await writeFile(join(logsDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  for (const file of logFiles) {
    await copyFile(file, join(logsDir, basename(file))).catch((error: unknown) =>
      log.warn(`could not copy ${file} into the new root: ${String(error)}`),
    );
  }
}

/**
 * The three stages of a reimage over one plan: capture, write, restore. Failures in the capture
 * stage leave the disk untouched (and the initramfs reboots into the old OS); the write and
 * restore stages are retried, and their errors are marked touched. The runner never reboots:
 * its caller (the initramfs /init) carries out `finish` (docs/adr/0005-runner-failure-policy.md).
 */
export async function runPlan(options: RunPlanOptions): Promise<RunReport> {
  const { plan, log, signal, workDir } = options;
  const onProgress = options.onProgress ?? ignoreProgress;
  const maxAttempts = options.maxAttempts ?? 3;
  const startedAt = new Date();
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const journal = new Journal(join(workDir, 'journal.jsonl'));
  const planText = await readFile(options.planPath);
  const cleanups: (() => Promise<void>)[] = [];

  log.info(`reimage ${await reimageVersion()} (node ${process.version}) on ${hostname()}: plan ${options.planPath}`);
  for (const line of describePlan(plan)) log.info(line);

  try {
    const diskDevice = await openDisk(plan, log, cleanups);

    let started = Date.now();
    log.info('stage 1/3 capture: mounting the old system read-only');
    journal.record('capture', 'start', 1);
    let captured: CaptureStageResult;
    try {
      captured = await captureStage({ plan, diskDevice, workDir, log, onProgress, signal });
    } catch (error) {
      journal.record('capture', 'failed', 1, isReimageError(error) ? error.code : String(error));
      // Capture only reads: whatever went wrong, the disk is as it was, and /init must reboot
      // into the old OS (exit 3), not halt as it would for an unexplained error (exit 1).
      if (signal?.aborted === true || isAbortError(error)) {
        throw new ReimageError('REIMAGE_RUN_INTERRUPTED', 'The capture stage was interrupted; nothing was written.', {
          evidence: { stage: 'capture' },
          cause: error,
          targetState: 'untouched',
        });
      }
      if (isReimageError(error)) throw error;
      throw new ReimageError(
        'REIMAGE_RUN_CAPTURE_FAILED',
        `Capturing the machine's state failed before anything was written: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    journal.record('capture', 'done', 1);
    const captureReport = { durationMs: Date.now() - started, attempts: 1 };

    started = Date.now();
    const written = await withRetries({
      stage: 'write',
      maxAttempts,
      journal,
      log,
      signal,
      refusalsAreFinal: true,
      failureCode: 'REIMAGE_RUN_WRITE_FAILED',
      failureWhat: 'Writing the image failed',
      attempt: (attempt) => {
        log.info(`stage 2/3 write: writing the image onto ${plan.disk} (attempt ${attempt} of ${maxAttempts})`);
        return writeStage({ plan, diskDevice, captured, log, onProgress, signal });
      },
    });
    const writeReport = { durationMs: Date.now() - started, attempts: written.attempts };

    started = Date.now();
    const mounts: Mounted[] = [];
    const restored = await withRetries({
      stage: 'restore',
      maxAttempts,
      journal,
      log,
      signal,
      failureCode: 'REIMAGE_RUN_RESTORE_FAILED',
      failureWhat: 'Restoring the retained state failed',
      attempt: (attempt) => {
        log.info(`stage 3/3 restore: mounting the new layout (attempt ${attempt} of ${maxAttempts})`);
        return restoreStage({
          plan,
          partitionDevice: (ref, field) => resolvePartition(diskDevice, ref, { field }),
          workDir,
          bundlePath: captured.bundlePath,
          mounts,
          log,
          onProgress,
          signal,
        });
      },
      afterFailure: () => unmountAll(mounts).catch((error: unknown) => log.warn(`unmount failed: ${String(error)}`)),
    });
    const { restore, verify, newRoot } = restored.value;

    // Everything from here on happens to a disk that already holds the new image.
    try {
      await runAfterHooks({ plan, newRoot, log, signal });

      const { write, newPartitions } = written.value;
      const report: RunReport = {
        result: 'ok',
        reimageVersion: await reimageVersion(),
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        host: hostname(),
        disk: plan.disk,
        plan: { file: options.planPath, sha256: createHash('sha256').update(planText).digest('hex') },
        image: {
          path: plan.image.path,
          sha256: plan.image.sha256,
          compressedSizeBytes: captured.compressedSizeBytes,
          format: write.format,
          imageSizeBytes: write.imageSizeBytes,
        },
        stages: {
          capture: captureReport,
          write: writeReport,
          restore: { durationMs: Date.now() - started, attempts: restored.attempts },
        },
        bytesWritten: write.bytesWritten,
        bytesSkipped: write.bytesSkipped,
        entriesCaptured: captured.capture.entries,
        entriesRestored: restore.entriesRestored,
        entriesVerified: verify.entriesChecked,
        missingOptional: captured.capture.missingOptional,
        warnings: [...log.warnings],
        peakRssBytes: process.resourceUsage().maxRSS * 1024,
        newPartitions,
      };

      // The logs, the journal and the report go into the new root while it is still mounted.
      await writeLogs(
        join(newRoot, plan.restore.logs),
        report,
        [log.file, journal.file, ...(options.extraLogFiles ?? [])],
        log,
      );
      log.info(`report and logs written to ${plan.restore.logs} in the new root`);
      await unmountAll(mounts);
      await runCommand('sync', []);
      log.info(
        `reimage complete in ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1)} s; finish: ${plan.finish}`,
      );
      return report;
    } catch (error) {
      await unmountAll(mounts).catch((unmountError: unknown) => log.warn(`unmount failed: ${String(unmountError)}`));
      throw markTouched(error, 'REIMAGE_RUN_FINISH_FAILED', 'Finishing the reimage failed');
    }
  } finally {
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => log.warn(`cleanup failed: ${String(error)}`));
    }
  }
}
