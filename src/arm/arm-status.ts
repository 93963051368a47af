import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256ItemRaw } from '../boot/index.ts';
import { silentLogger } from '../core/logger.ts';
import { runCommand } from '../core/run-command.ts';
import { inspectTarget } from '../disk/index.ts';
import { type ArmedDone, findArmedReport } from './armed-report.ts';
import { type FoundArm, findArm, readArmAt } from './find-arm.ts';
import { findRefugeFile } from './find-refuge-file.ts';
import { openOldDisk } from './old-disk.ts';

/** `reimage status --json`, format version 1 (docs/arm.md documents every field). */
export interface ArmStatus {
  readonly format: 'reimage-status';
  readonly version: 1;
  readonly disk: string;
  /**
   * not-armed: LBA 0 boots no refuge. armed: ready, nothing started. running: the recovery run is
   * under way (stage, attempt). refused: the run refused before touching the disk. failed: the disk
   * was touched and an attempt failed (reason). damaged: LBA 0 boots a refuge that cannot be read.
   * done: the armed run committed (its report.json on the new root, or its journal, says so).
   */
  readonly state: 'not-armed' | 'armed' | 'running' | 'refused' | 'failed' | 'damaged' | 'done';
  readonly why?: string;
  readonly stage?: string;
  readonly attempt?: number;
  readonly reason?: { readonly code: string; readonly message: string };
  readonly armedAt?: string;
  readonly updatedAt?: string;
  readonly write?: { readonly durableBytes: number; readonly totalBytes: number };
  /** With state done, from the armed run's report on the new root (added within version 1). */
  readonly done?: ArmedDone;
  readonly refuge?: {
    readonly partition: number;
    readonly coreLba: number;
    readonly journalOffsetBytes: number;
    readonly image: { readonly format: string; readonly sha256: string; readonly sizeBytes: number };
    /** Items whose digest no longer matches the journal's (empty: all intact). */
    readonly damagedItems: readonly string[];
  };
}

/**
 * Reads a disk's arm state, changing nothing: LBA 0, the locator, the header, the journal, and
 * every item's digest (so an arm something has overwritten is never reported ready).
 */
export async function armStatus(diskPath: string): Promise<ArmStatus> {
  const target = await inspectTarget(diskPath);
  if (target.kind === 'block-device') {
    // The buffer cache may hold what these sectors held before the recovery run wrote them.
    await runCommand('blockdev', ['--flushbufs', target.realPath], { allowFailure: true });
  }
  const disk = await open(target.realPath, 'r');
  try {
    const viaLba0 = await findArm(disk);
    const base = { format: 'reimage-status', version: 1, disk: diskPath } as const;
    const behind = viaLba0.kind === 'not-armed' ? await armBehindLba0(diskPath, disk, viaLba0.lba0) : undefined;
    if (behind?.done !== undefined) return { ...base, state: 'done', done: behind.done };
    const found = viaLba0.kind === 'not-armed' ? behind?.arm : viaLba0;
    if (found === undefined) {
      const why = viaLba0.kind === 'not-armed' ? viaLba0.why : '';
      const rejected = behind?.rejected ?? [];
      return { ...base, state: 'not-armed', why: rejected.length === 0 ? why : `${why}; ${rejected.join('; ')}` };
    }
    if (found.kind === 'not-armed') return { ...base, state: 'not-armed', why: found.why };
    if (found.kind === 'damaged') return { ...base, state: 'damaged', why: found.why };
    const { state } = found.journal;
    const damagedItems: string[] = [];
    for (const item of found.header.items) {
      const expected = item.sha256 === undefined ? undefined : state.refugeSha256[item.name];
      if (expected !== undefined && (await sha256ItemRaw(disk, item)) !== expected) damagedItems.push(item.name);
    }
    if (viaLba0.kind === 'not-armed' && state.stage !== 'refused') {
      return {
        ...base,
        state: 'damaged',
        why: `a refuge is on partition ${found.header.refugeFile.partitionNumber} (stage ${state.stage}), but ${viaLba0.why}: something rewrote it since the arm. Do not trust this arm: run reimage disarm, then arm again.`,
        stage: state.stage,
      };
    }
    const refugeState: ArmStatus['state'] =
      state.stage === 'armed'
        ? 'armed'
        : state.stage === 'refused'
          ? 'refused'
          : state.stage === 'failed'
            ? 'failed'
            : state.stage === 'done' || state.stage === 'released'
              ? 'done'
              : 'running';
    return {
      ...base,
      state: damagedItems.length > 0 && refugeState === 'armed' ? 'damaged' : refugeState,
      ...(damagedItems.length > 0 ? { why: `refuge items changed since arm: ${damagedItems.join(', ')}` } : {}),
      stage: state.stage,
      attempt: state.attempt,
      ...(state.reason === undefined ? {} : { reason: state.reason }),
      armedAt: state.armedAt,
      updatedAt: state.updatedAt,
      ...(state.write === undefined ? {} : { write: state.write }),
      refuge: {
        partition: found.header.refugeFile.partitionNumber,
        coreLba: found.coreLba,
        journalOffsetBytes: found.locator.journalOffsetBytes,
        image: found.header.image,
        damagedItems,
      },
    };
  } finally {
    await disk.close();
  }
}

/**
 * When LBA 0 leads to no refuge, the refuge file may still be there: after a refusal in the
 * recovery run (which gave the old LBA 0 back: its journal says why) or after something rewrote
 * LBA 0. Found through the old filesystems, read-only. Failing that, the disk may be the new OS
 * of a finished armed run: its report (armed-report.ts) says so, if LBA 0 holds the table its
 * commit wrote.
 */
async function armBehindLba0(
  diskPath: string,
  disk: FileHandle,
  lba0: Buffer,
): Promise<{ arm?: FoundArm; done?: ArmedDone; rejected: string[] }> {
  const old = await openOldDisk(diskPath);
  const workDir = await mkdtemp(join(tmpdir(), 'reimage-status-'));
  try {
    const file = await findRefugeFile(old, { workDir, log: silentLogger });
    if (file !== undefined) return { arm: await readArmAt(disk, file.locator, lba0, 0), rejected: [] };
    return await findArmedReport(old, lba0, { workDir, log: silentLogger });
  } finally {
    await old.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

/** The status as lines for a person. Pure. */
export function formatArmStatus(status: ArmStatus): string[] {
  const lines = [
    `${status.disk}: ${status.state}${status.stage === undefined ? '' : ` (stage ${status.stage}, attempt ${status.attempt ?? 0})`}`,
  ];
  if (status.why !== undefined) lines.push(`  why:       ${status.why}`);
  if (status.reason !== undefined) lines.push(`  reason:    ${status.reason.code}: ${status.reason.message}`);
  if (status.armedAt !== undefined) lines.push(`  armed at:  ${status.armedAt}`);
  if (status.write !== undefined)
    lines.push(`  written:   ${status.write.durableBytes} of ${status.write.totalBytes} bytes`);
  if (status.done !== undefined) {
    lines.push(`  finished:  ${status.done.finishedAt} (attempt ${status.done.attempt})`);
    lines.push(
      `  image:     ${status.done.image.format}, ${status.done.image.sizeBytes} bytes, sha256 ${status.done.image.sha256}`,
    );
    lines.push(`  report:    partition ${status.done.partition}, ${status.done.reportPath}`);
  }
  if (status.refuge !== undefined) {
    lines.push(`  refuge:    partition ${status.refuge.partition}, core.img at LBA ${status.refuge.coreLba}`);
    lines.push(
      `  image:     ${status.refuge.image.format}, ${status.refuge.image.sizeBytes} bytes, sha256 ${status.refuge.image.sha256}`,
    );
  }
  return lines;
}
