import { join } from 'node:path';
import type { Logger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { type Mounted, mountReadWrite } from '../disk/index.ts';
import type { Plan } from '../plan/index.ts';
import { type RestoreSummary, restoreBundle, type VerifySummary, verifyBundle } from '../retain/index.ts';

export interface RestoreStageResult {
  /** Where the new layout is mounted; still mounted on return (the caller writes the logs). */
  readonly newRoot: string;
  readonly restore: RestoreSummary;
  readonly verify: VerifySummary;
}

/**
 * Stage 3: mount the new layout in the plan's order, restore the bundle, verify every entry
 * against the manifest (a difference is a failure, not a warning). On failure, whatever it
 * mounted is left in `mounts` for the caller to unmount before a retry.
 */
export async function restoreStage(o: {
  plan: Plan;
  /** The device of a new partition a restore mount names (on the disk, or a loop at its offset). */
  partitionDevice: (ref: Plan['restore']['mounts'][number]['partition'], field: string) => Promise<string>;
  /** How a new partition is mounted read-write (the armed run's way keeps the refuge safe). */
  mount?: (device: string, dir: string) => Promise<Mounted>;
  workDir: string;
  bundlePath: string;
  mounts: Mounted[];
  log: Logger;
  onProgress: OnProgress;
  signal: AbortSignal | undefined;
}): Promise<RestoreStageResult> {
  const { plan, bundlePath, mounts, log, onProgress, signal } = o;
  const newRoot = join(o.workDir, 'new-root');
  for (const [index, mount] of plan.restore.mounts.entries()) {
    const device = await o.partitionDevice(mount.partition, `restore.mounts[${index}].partition`);
    mounts.push(await (o.mount ?? mountReadWrite)(device, join(newRoot, mount.at)));
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
  return { newRoot, restore, verify };
}

/** How long one after-hook may run before it counts as hung. */
const AFTER_HOOK_TIMEOUT_MS = 10 * 60_000;

/**
 * The plan's after-hooks, run once each, in order, chrooted in the mounted new root, with a
 * timeout so a hook that blocks cannot hang the machine. They run after the restore was
 * verified and are not retried: a hook need not be safe to run twice.
 */
export async function runAfterHooks(o: {
  plan: Plan;
  newRoot: string;
  log: Logger;
  signal: AbortSignal | undefined;
}): Promise<void> {
  const { plan, newRoot, log } = o;
  for (const [index, command] of plan.restore.after.entries()) {
    log.info(`after-hook ${index + 1} of ${plan.restore.after.length} (chrooted in the new root): ${command}`);
    const timeout = AbortSignal.timeout(AFTER_HOOK_TIMEOUT_MS);
    const signal = o.signal === undefined ? timeout : AbortSignal.any([o.signal, timeout]);
    let result: Awaited<ReturnType<typeof runCommand>>;
    try {
      result = await runCommand('chroot', [newRoot, '/bin/sh', '-c', command], { allowFailure: true, signal });
    } catch (error) {
      throw new ReimageError(
        'REIMAGE_RUN_AFTER_HOOK_FAILED',
        `The after-hook "${command}" did not finish within ${AFTER_HOOK_TIMEOUT_MS / 60_000} minutes or could not start. Fix restore.after[${index}].`,
        { evidence: { field: `restore.after[${index}]`, command }, cause: error, targetTouched: true },
      );
    }
    for (const line of `${result.stdout}${result.stderr}`.split('\n')) if (line !== '') log.info(`  | ${line}`);
    if (result.exitCode !== 0) {
      throw new ReimageError(
        'REIMAGE_RUN_AFTER_HOOK_FAILED',
        `The after-hook "${command}" exited ${result.exitCode}. Fix restore.after[${index}].`,
        { evidence: { field: `restore.after[${index}]`, command, exitCode: result.exitCode }, targetTouched: true },
      );
    }
  }
}
