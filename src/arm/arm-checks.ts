import { stat } from 'node:fs/promises';
import { release as osRelease } from 'node:os';
import { join } from 'node:path';
import { checkBlockMap, EXT_FILESYSTEMS, measureRefugeRoom, refugeFilesystemVerdict } from '../boot/index.ts';
import type { Logger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { type ByteRange, type Mounted, mergeRanges, resolvePartition } from '../disk/index.ts';
import { loadBlockMap } from '../image/index.ts';
import type { Plan } from '../plan/index.ts';
import { measureBundleRoom } from './bundle-room.ts';
import { checkRecoveryKernel } from './kernel-release.ts';
import { learnNewImage, type NewImageFacts } from './new-image-facts.ts';
import { mountOldPartition, type OldDisk, type OldPartition } from './old-disk.ts';

export interface RecoveryInputs {
  readonly kernelPath: string;
  readonly kernelRelease: string;
  readonly kernelSizeBytes: number;
  readonly modulesDir: string;
}

/** One old filesystem considered for the refuge, and what was found there. */
export interface RefugeCandidate {
  readonly partition: OldPartition;
  /** Why it cannot hold the refuge, or its room. */
  readonly refused?: string;
  readonly freeBytes?: number;
  readonly usableBytes?: number;
  readonly exact?: boolean;
}

/**
 * The kernel and modules the recovery initramfs is built for. On the running OS they default to
 * the running kernel's; offline (a disk image file) there is no running kernel of that disk, so
 * both must be named.
 */
export async function recoveryInputs(o: {
  offline: boolean;
  kernelPath: string | undefined;
  modulesDir: string | undefined;
}): Promise<RecoveryInputs> {
  if (o.offline && (o.kernelPath === undefined || o.modulesDir === undefined)) {
    throw new ReimageError(
      'REIMAGE_ARM_OFFLINE_NEEDS_KERNEL',
      "Arming a disk image file needs --kernel FILE and --modules DIR: the running kernel is not the disk's. Give the kernel the armed disk will boot and its lib/modules/<version> directory.",
      { evidence: { field: o.kernelPath === undefined ? '--kernel' : '--modules' } },
    );
  }
  const kernelPath = o.kernelPath ?? `/boot/vmlinuz-${osRelease()}`;
  const modulesDir = o.modulesDir ?? `/lib/modules/${osRelease()}`;
  const kernel = await checkRecoveryKernel(kernelPath);
  const modules = await stat(join(modulesDir, 'modules.dep')).catch(() => undefined);
  if (modules === undefined) {
    throw new ReimageError(
      'REIMAGE_ARM_KERNEL_UNUSABLE',
      `${modulesDir} has no modules.dep: it is not the lib/modules/<version> directory of the kernel ${kernelPath}. Give it with --modules DIR.`,
      { evidence: { path: modulesDir, field: '--modules' } },
    );
  }
  return { kernelPath, kernelRelease: kernel.release, kernelSizeBytes: kernel.sizeBytes, modulesDir };
}

/** The old partition a plan reference names (number, label or UUID), as the disk shows it now. */
export async function planPartition(
  disk: OldDisk,
  ref: Plan['image']['partition'],
  field: string,
): Promise<OldPartition> {
  const device = await resolvePartition(disk.device, ref, { field, timeoutMs: 2000 });
  const found = disk.partitions.find((partition) => partition.device === device);
  if (found === undefined) throw new Error(`planPartition: ${device} is not among ${disk.device}'s partitions`);
  return found;
}

/**
 * The ranges the refuge must stay out of: everything the armed write writes, and every new
 * partition mounted read-write before the commit whose filesystem the run cannot mark blocks in
 * use in (xfs, vfat: the restore, logs and after-hooks allocate there). Inside a writable ext
 * partition the refuge may lie in blocks that are free in the new filesystem: the recovery run
 * marks them in use (bad-blocks inode) before mounting it.
 */
export function excludedRanges(facts: NewImageFacts): ByteRange[] {
  const ranges: ByteRange[] = [...facts.map.ranges];
  for (const writable of facts.writablePartitions) {
    if (writable.filesystem !== undefined && EXT_FILESYSTEMS.has(writable.filesystem)) continue;
    const partition = facts.table.partitions.find((p) => p.number === writable.number);
    if (partition !== undefined) ranges.push({ offsetBytes: partition.startBytes, lengthBytes: partition.sizeBytes });
  }
  return mergeRanges(ranges);
}

/**
 * Measures, read-only, every old filesystem that may hold the refuge (or only the plan's
 * `refuge.partition`): its free space outside the excluded ranges. Filesystems under which the
 * refuge's sectors would not be the disk's (LVM, dm-crypt, md) or would move (btrfs) are refused
 * with their reason.
 */
export async function measureCandidates(o: {
  disk: OldDisk;
  only: OldPartition | undefined;
  excluded: readonly ByteRange[];
}): Promise<RefugeCandidate[]> {
  const candidates: RefugeCandidate[] = [];
  for (const partition of o.only === undefined ? o.disk.partitions : [o.only]) {
    const verdict = refugeFilesystemVerdict(partition.filesystem);
    if (!verdict.ok) {
      candidates.push({ partition, refused: verdict.reason });
      continue;
    }
    if (partition.startBytes % 4096 !== 0) {
      candidates.push({
        partition,
        refused: `it starts at byte ${partition.startBytes}, not on a 4096-byte boundary, so its blocks are not aligned to the disk's`,
      });
      continue;
    }
    const room = await measureRefugeRoom({
      device: partition.device,
      partitionStartBytes: partition.startBytes,
      partitionSizeBytes: partition.sizeBytes,
      excluded: o.excluded,
    });
    candidates.push({ partition, freeBytes: room.freeBytes, usableBytes: room.usableBytes, exact: room.exact });
  }
  return candidates;
}

/** Reads the plan's image and retained state through their old filesystems, mounted read-only. */
export async function checkOldState(o: {
  disk: OldDisk;
  plan: Plan;
  workDir: string;
  log: Logger;
  signal?: AbortSignal;
}): Promise<{
  imagePartition: OldPartition;
  facts: NewImageFacts;
  bundle: Awaited<ReturnType<typeof measureBundleRoom>>;
}> {
  const mounts: Mounted[] = [];
  try {
    const imagePartition = await planPartition(o.disk, o.plan.image.partition, 'image.partition');
    const retainPartition = await planPartition(o.disk, o.plan.retain.partition, 'retain.partition');
    const imageMount = await mountOldPartition(imagePartition, { writable: false, workDir: o.workDir, log: o.log });
    mounts.push(imageMount);
    const retainMount =
      retainPartition === imagePartition
        ? imageMount
        : await mountOldPartition(retainPartition, { writable: false, workDir: o.workDir, log: o.log });
    if (retainMount !== imageMount) mounts.push(retainMount);
    const bundle = await measureBundleRoom(retainMount.dir, o.plan, o.signal);
    const facts = await learnNewImage({
      plan: o.plan,
      imagePath: join(imageMount.dir, o.plan.image.path),
      diskSizeBytes: o.disk.target.sizeBytes,
      workDir: o.workDir,
      log: o.log,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
    if (o.plan.image.bmap !== undefined)
      await checkGivenBmap(join(imageMount.dir, o.plan.image.bmap), o.plan.image.bmap, facts, o.log);
    return { imagePartition, facts, bundle };
  } finally {
    for (const mount of mounts.reverse()) await mount.unmount();
  }
}

/**
 * A bmap given with the image is checked against the filesystems' own map. The armed write
 * follows the filesystems' map, so a bmap that leaves out bytes they hold (bmaptool skips inode
 * tables mkfs never wrote) cannot make it skip data; it is said (as information), since the
 * plain write follows the bmap. A bmap for another image size is refused: it is not this image's.
 */
async function checkGivenBmap(path: string, planPath: string, facts: NewImageFacts, log: Logger): Promise<void> {
  const bmap = await loadBlockMap(path);
  try {
    checkBlockMap(facts.map, bmap, planPath);
  } catch (error) {
    if (!(error instanceof ReimageError) || bmap.imageSizeBytes !== facts.map.imageSizeBytes) throw error;
    // Not a danger here (the armed write does not use the bmap), but the operator should know
    // the plain `reimage write --bmap` of this image would leave those bytes as they were.
    log.info(
      `${planPath} maps less than the image's own map (${String(error.evidence.lengthBytes ?? '?')} bytes from byte ${String(error.evidence.offsetBytes ?? '?')}, e.g. the gap before the first partition or inode tables mkfs never wrote); the armed write follows the image's own map.`,
    );
  }
}
