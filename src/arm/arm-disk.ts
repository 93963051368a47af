import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CORE_ROOM_BYTES,
  encodeMapItem,
  GRUB_SECTOR_BYTES,
  patchBootSector,
  readGrubBootImage,
  releaseRefugeFile,
} from '../boot/index.ts';
import type { Logger } from '../core/logger.ts';
import { PROJECT_DIR } from '../core/project-dir.ts';
import { isReimageError, ReimageError } from '../core/reimage-error.ts';
import { readAt, replaceSector } from '../disk/index.ts';
import { sha256File } from '../image/index.ts';
import { buildInitramfs, findPortableRuntime } from '../initramfs/index.ts';
import { type Plan, readPlanFile } from '../plan/index.ts';
import { RECOVERY_INITRAMFS_TOOLS } from '../runner/index.ts';
import {
  checkOldState,
  excludedRanges,
  measureCandidates,
  planPartition,
  type RecoveryInputs,
  type RefugeCandidate,
  recoveryInputs,
} from './arm-checks.ts';
import { type FilledRefuge, fillRefuge, refugeItemRequests, refugeNeedBytes } from './fill-refuge.ts';
import { findArm } from './find-arm.ts';
import type { NewImageFacts } from './new-image-facts.ts';
import { mountOldPartition, type OldDisk, openOldDisk } from './old-disk.ts';

export interface ArmOptions {
  readonly planPath: string;
  /** Where to write now (default: the plan's disk). A regular file is armed offline. */
  readonly diskPath?: string;
  readonly kernelPath?: string;
  readonly modulesDir?: string;
  /** A ready reimage initramfs for the kernel (default: built now). */
  readonly initramfsPath?: string;
  /** Do every check, choose the refuge, change nothing. */
  readonly check: boolean;
  readonly workDir: string;
  readonly log: Logger;
  readonly signal?: AbortSignal;
}

/** What arm found and did; `reimage arm` prints it, `--json` gives it whole. */
export interface ArmReport {
  readonly armed: boolean;
  readonly disk: { readonly path: string; readonly offline: boolean; readonly sizeBytes: number };
  readonly kernel: { readonly path: string; readonly release: string };
  readonly image: {
    readonly format: string;
    readonly sha256: string;
    readonly compressedSizeBytes: number;
    readonly sizeBytes: number;
    readonly mappedBytes: number;
  };
  readonly bundle: { readonly entries: number; readonly measuredBytes: number; readonly roomBytes: number };
  readonly initramfsSizeBytes: number;
  readonly needBytes: number;
  readonly candidates: readonly {
    readonly partition: number;
    readonly filesystem: string | undefined;
    readonly freeBytes?: number;
    readonly usableBytes?: number;
    readonly exact?: boolean;
    readonly refused?: string;
  }[];
  readonly refuge?: {
    readonly partition: number;
    /** The refuge file, at the root of that partition's filesystem. */
    readonly file: string;
    readonly extents: number;
    readonly usedBytes: number;
    readonly coreLba: number;
    readonly journalLba: number;
  };
  readonly durationMs: number;
}

function candidateRows(candidates: readonly RefugeCandidate[]): ArmReport['candidates'] {
  return candidates.map((candidate) => ({
    partition: candidate.partition.number,
    filesystem: candidate.partition.filesystem,
    ...(candidate.freeBytes === undefined ? {} : { freeBytes: candidate.freeBytes }),
    ...(candidate.usableBytes === undefined ? {} : { usableBytes: candidate.usableBytes }),
    ...(candidate.exact === undefined ? {} : { exact: candidate.exact }),
    ...(candidate.refused === undefined ? {} : { refused: candidate.refused }),
  }));
}

/** The map as the recovery run reads it (src/boot/refuge-map-item.ts). */
function mapItem(facts: NewImageFacts): Buffer {
  return encodeMapItem({
    format: 1,
    imageSizeBytes: facts.sizeBytes,
    table: facts.table.kind,
    partitions: facts.table.partitions.map((p) => ({
      number: p.number,
      startBytes: p.startBytes,
      sizeBytes: p.sizeBytes,
    })),
    ranges: facts.map.ranges,
    writablePartitions: facts.writablePartitions,
    firstSector: facts.firstSector.toString('base64'),
  });
}

function noRoom(needBytes: number, candidates: readonly RefugeCandidate[], diskPath: string): ReimageError {
  const looked = candidates
    .map((candidate) =>
      candidate.refused === undefined
        ? `partition ${candidate.partition.number} (${candidate.partition.filesystem}): ${candidate.usableBytes ?? 0} usable of ${candidate.freeBytes ?? 0} free bytes`
        : `partition ${candidate.partition.number} (${candidate.partition.filesystem ?? 'no filesystem'}): ${candidate.refused}`,
    )
    .join('; ');
  return new ReimageError(
    'REIMAGE_ARM_NO_REFUGE_ROOM',
    `No old filesystem on ${diskPath} has room for the refuge: it needs ${needBytes} bytes that are free in the old filesystem and left alone by the new image until the commit. Looked at: ${looked || 'no partitions'}. Free space in one of them (or name one with refuge.partition in the plan).`,
    { evidence: { disk: diskPath, needBytes } },
  );
}

async function buildRecoveryInitramfs(
  planPath: string,
  inputs: RecoveryInputs,
  workDir: string,
  log: Logger,
  signal: AbortSignal | undefined,
): Promise<string> {
  const outPath = join(workDir, 'recovery-initramfs.img');
  // Started from a portable runtime (the old OS has no Node 24 and not our tools): the initramfs
  // carries the runtime's own files, the same ones the build host would have put in.
  const portableRuntime = await findPortableRuntime(PROJECT_DIR);
  if (portableRuntime !== undefined)
    log.info(`building the recovery initramfs from the runtime in ${portableRuntime.dir}`);
  await buildInitramfs({
    ...(portableRuntime === undefined ? {} : { portableRuntime }),
    planPath,
    modulesDir: inputs.modulesDir,
    outPath,
    tools: RECOVERY_INITRAMFS_TOOLS,
    projectDir: PROJECT_DIR,
    log,
    ...(signal === undefined ? {} : { signal }),
  });
  return outPath;
}

/** An armed disk is armed once: a second arm would save the recovery boot code as the "old" LBA 0. */
async function refuseArmedAlready(disk: OldDisk): Promise<void> {
  const handle = await open(disk.device, 'r');
  try {
    const found = await findArm(handle);
    if (found.kind !== 'not-armed') {
      throw new ReimageError(
        'REIMAGE_ALREADY_ARMED',
        `${disk.path} is armed already (${found.kind === 'armed' ? `stage ${found.journal.state.stage}` : found.why}). Run reimage status to see where it is, and reimage disarm before arming again. Nothing was changed.`,
        { evidence: { disk: disk.path } },
      );
    }
  } finally {
    await handle.close();
  }
}

async function readFirstSector(disk: OldDisk): Promise<Buffer> {
  const handle = await open(disk.device, 'r');
  try {
    const sector = Buffer.alloc(GRUB_SECTOR_BYTES);
    await readAt(handle, sector, 0);
    return sector;
  } finally {
    await handle.close();
  }
}

/**
 * Arms a disk: every check first (plan, image digest and fit, retained paths, the new layout, the
 * recovery kernel, the room), then the refuge filled and read back, then — the only write outside
 * the refuge — LBA 0's boot code pointed at the recovery core.img. With `check`, stops before
 * reserving anything: the disk is left bit for bit as it was.
 */
export async function armDisk(o: ArmOptions): Promise<ArmReport> {
  const started = Date.now();
  const { plan, text: planText } = await readPlanFile(o.planPath);
  const disk = await openOldDisk(o.diskPath ?? plan.disk);
  const scratch = await mkdtemp(join(o.workDir, 'arm-'));
  try {
    if (disk.target.logicalBlockSizeBytes !== GRUB_SECTOR_BYTES) {
      throw new ReimageError(
        'REIMAGE_ARM_DISK_UNSUPPORTED',
        `${disk.path} has ${disk.target.logicalBlockSizeBytes}-byte sectors; the BIOS recovery boot path needs 512-byte sectors.`,
        { evidence: { path: disk.path, logicalBlockSizeBytes: disk.target.logicalBlockSizeBytes } },
      );
    }
    await refuseArmedAlready(disk);
    const inputs = await recoveryInputs({ offline: disk.offline, kernelPath: o.kernelPath, modulesDir: o.modulesDir });
    const { facts, bundle } = await checkOldState({ disk, plan, workDir: scratch, log: o.log, ...signalOf(o) });
    const initramfsPath =
      o.initramfsPath ?? (await buildRecoveryInitramfs(o.planPath, inputs, scratch, o.log, o.signal));
    const [kernel, initramfs] = await Promise.all([readFile(inputs.kernelPath), readFile(initramfsPath)]);
    const oldLba0 = await readFirstSector(disk);
    const contents = {
      kernel,
      initramfs,
      image: { path: '', sizeBytes: facts.compressedSizeBytes, sha256: facts.sha256 },
      plan: Buffer.from(planText),
      map: mapItem(facts),
      oldLba0,
      bundleRoomBytes: bundle.roomBytes,
      coreRoomBytes: CORE_ROOM_BYTES,
    };
    const needBytes = refugeNeedBytes(refugeItemRequests(contents));
    const excluded = excludedRanges(facts);
    const only =
      plan.refuge === undefined ? undefined : await planPartition(disk, plan.refuge.partition, 'refuge.partition');
    const candidates = await measureCandidates({ disk, only, excluded });
    const report = (armed: boolean, refuge?: FilledRefuge): ArmReport => ({
      armed,
      disk: { path: disk.path, offline: disk.offline, sizeBytes: disk.target.sizeBytes },
      kernel: { path: inputs.kernelPath, release: inputs.kernelRelease },
      image: {
        format: facts.format,
        sha256: facts.sha256,
        compressedSizeBytes: facts.compressedSizeBytes,
        sizeBytes: facts.sizeBytes,
        mappedBytes: facts.map.mappedBytes,
      },
      bundle: { entries: bundle.entries, measuredBytes: bundle.measuredBytes, roomBytes: bundle.roomBytes },
      initramfsSizeBytes: initramfs.length,
      needBytes,
      candidates: candidateRows(candidates),
      ...(refuge === undefined
        ? {}
        : {
            refuge: {
              partition: refuge.partition.number,
              file: `/${refuge.header.refugeFile.name}`,
              extents: [refuge.layout.journal, ...refuge.layout.items.flatMap((placed) => placed.extents)].length,
              usedBytes: refuge.layout.usedBytes,
              coreLba: refuge.coreLba,
              journalLba: refuge.layout.journal.diskOffsetBytes / GRUB_SECTOR_BYTES,
            },
          }),
      durationMs: Date.now() - started,
    });
    const chosen = candidates
      .filter((candidate) => (candidate.usableBytes ?? 0) >= needBytes)
      .sort((a, b) => (b.usableBytes ?? 0) - (a.usableBytes ?? 0))[0];
    if (chosen === undefined) throw noRoom(needBytes, candidates, disk.path);
    if (o.check) return report(false);

    // From here on arm changes the old filesystem: a failure removes the refuge again.
    const mount = await mountOldPartition(chosen.partition, { writable: true, workDir: scratch, log: o.log });
    let filled: FilledRefuge;
    try {
      const imagePartition = await planPartition(disk, plan.image.partition, 'image.partition');
      filled = await withImageFile(
        plan,
        imagePartition === chosen.partition ? mount.dir : undefined,
        disk,
        scratch,
        o.log,
        (image) =>
          fillRefuge({
            disk,
            partition: chosen.partition,
            mountDir: mount.dir,
            reserveBytes: reserveBytesFor(chosen, disk.offline),
            excluded,
            contents: { ...contents, image: { ...contents.image, ...image } },
            facts,
            workDir: scratch,
            log: o.log,
            ...signalOf(o),
          }),
      );
    } finally {
      await mount.unmount();
    }
    try {
      const boot = patchBootSector(oldLba0, await readGrubBootImage(), filled.coreLba);
      await replaceSector({ path: disk.device, kind: 'block-device', offsetBytes: 0, expected: oldLba0, next: boot });
    } catch (error) {
      // The write may have landed before it failed (an EIO on the flush, a read-back mismatch):
      // the refuge is released only once LBA 0 is the old one again, or it might point at freed
      // blocks.
      if (await oldBootSectorBack(disk, oldLba0, o.log)) {
        await releaseAfterFailure(disk, filled, scratch, o.log);
        throw error;
      }
      throw new ReimageError(
        'REIMAGE_ARM_BOOT_SECTOR_CHANGED',
        `Writing LBA 0 of ${disk.path} failed and the old LBA 0 could not be put back (${error instanceof Error ? error.message : String(error)}). The refuge was kept, so whatever LBA 0 now holds still finds it: run reimage status, then reimage disarm.`,
        { evidence: { disk: disk.path }, cause: error, targetState: 'unknown' },
      );
    }
    o.log.info(`armed: LBA 0 now boots the recovery core.img at LBA ${filled.coreLba}`);
    return report(true, filled);
  } finally {
    await rm(scratch, { recursive: true, force: true });
    await disk.close();
  }
}

function signalOf(o: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return o.signal === undefined ? {} : { signal: o.signal };
}

/**
 * How much to reserve: all the free space but a margin. Arm cannot choose where the filesystem
 * allocates, and only the part the new image leaves alone is usable; the rest is punched out again
 * right after. On a running OS the margin keeps the system writable during those seconds.
 */
function reserveBytesFor(candidate: RefugeCandidate, offline: boolean): number {
  const free = candidate.freeBytes ?? 0;
  const margin = offline ? Math.max(8 << 20, Math.floor(free * 0.02)) : Math.max(64 << 20, Math.floor(free * 0.05));
  return Math.floor(Math.max(0, free - margin) / 4096) * 4096;
}

/**
 * Runs `use` with the image's path while its filesystem is mounted: through the refuge's
 * read-write mount when the image lives in the same filesystem (a second, read-only mount of it
 * is not possible), else mounted read-only again. Its digest and size are checked once more (it
 * could have changed since the checks); the copy in the refuge is read back against the digest.
 */
async function withImageFile<T>(
  plan: Plan,
  rwMountDir: string | undefined,
  disk: OldDisk,
  scratch: string,
  log: Logger,
  use: (image: { path: string; sizeBytes: number }) => Promise<T>,
): Promise<T> {
  let dir = rwMountDir;
  let unmount = async (): Promise<void> => {};
  if (dir === undefined) {
    const partition = await planPartition(disk, plan.image.partition, 'image.partition');
    const mounted = await mountOldPartition(partition, { writable: false, workDir: join(scratch, 'again'), log });
    dir = mounted.dir;
    unmount = () => mounted.unmount();
  }
  try {
    const path = join(dir, plan.image.path);
    const actual = await sha256File(path);
    if (actual !== plan.image.sha256) {
      throw new ReimageError(
        'REIMAGE_IMAGE_DIGEST_MISMATCH',
        `The image ${plan.image.path} changed while arm ran: it no longer matches the plan's digest. Nothing was armed.`,
        { evidence: { path: plan.image.path, field: 'image.sha256', expected: plan.image.sha256, actual } },
      );
    }
    return await use({ path, sizeBytes: (await stat(path)).size });
  } finally {
    await unmount();
  }
}

/** Whether LBA 0 is the saved one (putting it back if it is not); false when that fails. */
async function oldBootSectorBack(disk: OldDisk, oldLba0: Buffer, log: Logger): Promise<boolean> {
  try {
    const now = await readFirstSector(disk);
    if (now.equals(oldLba0)) return true;
    await replaceSector({ path: disk.device, kind: 'block-device', offsetBytes: 0, expected: now, next: oldLba0 });
    return true;
  } catch (error) {
    log.warn(`could not put the old LBA 0 back: ${isReimageError(error) ? error.message : String(error)}`);
    return false;
  }
}

async function releaseAfterFailure(disk: OldDisk, filled: FilledRefuge, scratch: string, log: Logger): Promise<void> {
  try {
    const mount = await mountOldPartition(filled.partition, { writable: true, workDir: join(scratch, 'release'), log });
    try {
      await releaseRefugeFile(join(mount.dir, filled.header.refugeFile.name));
    } finally {
      await mount.unmount();
    }
  } catch (error) {
    log.warn(
      `could not remove the refuge on ${disk.path} partition ${filled.partition.number}: ${isReimageError(error) ? error.message : String(error)}; run reimage disarm`,
    );
  }
}
