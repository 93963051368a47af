import { join } from 'node:path';
import type { Logger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { type Mounted, mountReadWrite, resolvePartition } from '../disk/index.ts';
import type { Plan } from '../plan/index.ts';
import { type RestoreSummary, restoreBundle, type VerifySummary, verifyBundle } from '../retain/index.ts';

export interface RestoreStageResult {
  readonly newRoot: string;
  /** Still mounted: the caller writes the logs, then unmounts (unmountAll). */
  readonly mounts: Mounted[];
  readonly restore: RestoreSummary;
  readonly verify: VerifySummary;
}

/**
 * Stage 3: mount the new layout in the plan's order, restore the bundle, verify every entry
 * against the manifest (a difference is a failure, not a warning), run the after-hooks
 * chrooted in the new root. On failure, whatever it mounted is left in `mounts` for the
 * caller to unmount before a retry.
 */
export async function restoreStage(o: {
  plan: Plan;
  diskDevice: string;
  workDir: string;
  bundlePath: string;
  mounts: Mounted[];
  log: Logger;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<RestoreStageResult> {
  const { plan, diskDevice, bundlePath, mounts, log, onProgress, signal } = o;
  const newRoot = join(o.workDir, 'new-root');
  for (const mount of plan.restore.mounts) {
    const device = await resolvePartition(diskDevice, mount.partition, { field: 'restore.mounts' });
    mounts.push(await mountReadWrite(device, join(newRoot, mount.at)));
    log.info(`mounted ${device} at ${mount.at}`);
  }
  const restore = await restoreBundle({
    root: newRoot,
    bundlePath,
    owners: plan.retain.owners,
    log,
    signal,
    onProgress,
  });
  log.info(`restored ${restore.entriesRestored} entries`);
  const verify = await verifyBundle({ root: newRoot, bundlePath, owners: plan.retain.owners, signal });
  if (!verify.ok) {
    for (const difference of verify.differences) {
      log.warn(
        `verify: ${difference.path}: ${difference.what}: expected ${difference.expected}, found ${difference.actual}`,
      );
    }
    throw new ReimageError(
      'REIMAGE_RETAIN_VERIFY_MISMATCH',
      `${verify.differences.length} retained entries differ from the bundle after the restore; the log lists them.`,
      { evidence: { differences: verify.differences.length }, targetTouched: true },
    );
  }
  log.info(`verified ${verify.entriesChecked} retained entries against the manifest`);
  for (const command of plan.restore.after) {
    log.info(`after-hook (chrooted in the new root): ${command}`);
    const result = await runCommand('chroot', [newRoot, '/bin/sh', '-c', command], { allowFailure: true, signal });
    for (const line of `${result.stdout}${result.stderr}`.split('\n')) if (line !== '') log.info(`  | ${line}`);
    if (result.exitCode !== 0) {
      throw new ReimageError(
        'REIMAGE_RUN_AFTER_HOOK_FAILED',
        `The after-hook "${command}" exited ${result.exitCode}. Fix the command in restore.after.`,
        { evidence: { field: 'restore.after', command, exitCode: result.exitCode }, targetTouched: true },
      );
    }
  }
  return { newRoot, mounts, restore, verify };
}
