import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { deviceNumbers } from '../core/device-number.ts';
import type { ErrorCode } from '../core/error-codes.ts';
import type { Logger } from '../core/logger.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { refreshPartitions } from './partitions.ts';
import { FILE_DIRECT_IO_ALIGNMENT_BYTES, FILE_LOGICAL_BLOCK_BYTES, SYSFS_SECTOR_BYTES } from './sector-bytes.ts';

/** What we need to know about a write target before touching it. */
export interface TargetInfo {
  /** The path as given. */
  readonly path: string;
  /** Symlinks resolved (/dev/disk/by-id/... -> /dev/sdb). */
  readonly realPath: string;
  readonly kind: 'block-device' | 'file';
  readonly sizeBytes: number;
  /** Smallest unit the device writes: LBA 0 is this long (512 for a disk image file). */
  readonly logicalBlockSizeBytes: number;
  /** O_DIRECT offsets and lengths must be multiples of this (a file: the page, see sector-bytes.ts). */
  readonly directIoAlignmentBytes: number;
  /** "major:minor" of a block device, as /proc/self/mountinfo and sysfs name it. */
  readonly deviceNumber: string | undefined;
  /**
   * What makes this target this one and no other: the device number of a block device, the
   * filesystem's device and inode of a file. A later step that opens the path again (the
   * first-sector commit) checks it, so a path re-pointed meanwhile is never written.
   */
  readonly identity: string;
}

function targetError(code: ErrorCode, message: string, path: string, cause?: unknown): ReimageError {
  return new ReimageError(code, message, { evidence: { path }, cause });
}

/** Reads a small sysfs attribute, or undefined if it is absent. */
async function sysfsText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** Size in bytes of a block device by its "major:minor", from sysfs (always in 512-byte units). */
async function blockDeviceSizeBytes(deviceNumber: string): Promise<number> {
  const sectors = await sysfsText(`/sys/dev/block/${deviceNumber}/size`);
  if (sectors === undefined || !/^\d+$/.test(sectors)) {
    throw new ReimageError(
      'REIMAGE_TARGET_UNREADABLE',
      `Cannot read the size of block device ${deviceNumber} from sysfs.`,
      {
        evidence: { deviceNumber },
      },
    );
  }
  return Number(sectors) * SYSFS_SECTOR_BYTES;
}

/** Stats a target: a block device or an existing regular file. It is never created or resized. */
export async function inspectTarget(path: string): Promise<TargetInfo> {
  let realPath: string;
  let stats: Awaited<ReturnType<typeof stat>>;
  try {
    realPath = await realpath(path);
    stats = await stat(realPath);
  } catch (e) {
    const reason = isSystemError(e) ? e.code : String(e);
    throw targetError(
      'REIMAGE_TARGET_UNREADABLE',
      `Cannot open the target ${path} (${reason}). TARGET must be an existing block device or disk image file.`,
      path,
      e,
    );
  }
  if (stats.isBlockDevice()) {
    const { major, minor } = deviceNumbers(stats.rdev);
    const deviceNumber = `${major}:${minor}`;
    const sizeBytes = await blockDeviceSizeBytes(deviceNumber);
    const lbs =
      (await sysfsText(`/sys/dev/block/${deviceNumber}/queue/logical_block_size`)) ??
      (await sysfsText(`/sys/dev/block/${deviceNumber}/../queue/logical_block_size`));
    const logicalBlockSizeBytes = lbs !== undefined && /^\d+$/.test(lbs) ? Number(lbs) : SYSFS_SECTOR_BYTES;
    return {
      path,
      realPath,
      kind: 'block-device',
      sizeBytes,
      logicalBlockSizeBytes,
      directIoAlignmentBytes: logicalBlockSizeBytes,
      deviceNumber,
      identity: `block ${deviceNumber}`,
    };
  }
  if (stats.isFile()) {
    return {
      path,
      realPath,
      kind: 'file',
      sizeBytes: stats.size,
      logicalBlockSizeBytes: FILE_LOGICAL_BLOCK_BYTES,
      directIoAlignmentBytes: FILE_DIRECT_IO_ALIGNMENT_BYTES,
      deviceNumber: undefined,
      identity: `file ${stats.dev}:${stats.ino}`,
    };
  }
  throw targetError(
    'REIMAGE_TARGET_UNSUPPORTED',
    `The target ${path} is neither a block device nor a regular file.`,
    path,
  );
}

/** One line of /proc/self/mountinfo, reduced to what the mounted-check needs. */
export interface MountEntry {
  readonly deviceNumber: string;
  readonly mountPoint: string;
  readonly source: string;
}

/** Parses /proc/self/mountinfo (octal escapes such as \040 in paths are decoded). Pure. */
export function parseMountInfo(text: string): MountEntry[] {
  const decodeOctal = (value: string): string =>
    value.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const [left, right] = line.split(' - ');
    const fields = left?.split(' ') ?? [];
    const deviceNumber = fields[2];
    const mountPoint = fields[4];
    const source = right?.split(' ')[1];
    if (deviceNumber === undefined || mountPoint === undefined) continue;
    entries.push({ deviceNumber, mountPoint: decodeOctal(mountPoint), source: decodeOctal(source ?? '') });
  }
  return entries;
}

/** The "major:minor" of each partition of a whole disk, from sysfs (none for a partition itself). */
async function partitionDeviceNumbers(deviceNumber: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const sysDir = `/sys/dev/block/${deviceNumber}`;
  let names: string[];
  try {
    names = await readdir(sysDir);
  } catch {
    return found;
  }
  for (const name of names) {
    if ((await sysfsText(join(sysDir, name, 'partition'))) === undefined) continue;
    const dev = await sysfsText(join(sysDir, name, 'dev'));
    if (dev !== undefined) found.set(dev, name);
  }
  return found;
}

/** Loop devices whose backing file is `realPath`, as "major:minor" -> name. */
async function loopDevicesBacking(realPath: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  let names: string[];
  try {
    names = await readdir('/sys/block');
  } catch {
    return found;
  }
  for (const name of names) {
    if (!name.startsWith('loop')) continue;
    const backing = await sysfsText(`/sys/block/${name}/loop/backing_file`);
    if (backing !== realPath) continue;
    const dev = await sysfsText(`/sys/block/${name}/dev`);
    if (dev !== undefined) found.set(dev, name);
  }
  return found;
}

/**
 * Why the target must not be written: the mount points of it or of any partition of it, and the
 * devices (device-mapper, md) built on top of it. For a file, the same for any loop device backed
 * by it. Writing under a mounted filesystem corrupts it and the image alike.
 */
export async function findTargetUsers(target: TargetInfo): Promise<string[]> {
  const devices = new Map<string, string>();
  if (target.deviceNumber !== undefined) devices.set(target.deviceNumber, basename(target.realPath));
  else for (const [dev, name] of await loopDevicesBacking(target.realPath)) devices.set(dev, name);
  for (const dev of [...devices.keys()]) {
    for (const [partDev, name] of await partitionDeviceNumbers(dev)) devices.set(partDev, name);
  }
  const users: string[] = [];
  const mountInfo = parseMountInfo((await sysfsText('/proc/self/mountinfo')) ?? '');
  for (const entry of mountInfo) {
    const name = devices.get(entry.deviceNumber);
    if (name !== undefined) users.push(`${name} mounted on ${entry.mountPoint}`);
    else if (entry.source === target.realPath) users.push(`${entry.source} mounted on ${entry.mountPoint}`);
  }
  for (const [dev, name] of devices) {
    let holders: string[] = [];
    try {
      holders = await readdir(`/sys/dev/block/${dev}/holders`);
    } catch {
      // No holders directory: nothing is stacked on it.
    }
    for (const holder of holders) users.push(`${name} is in use by ${holder}`);
  }
  return users;
}

/** Refuses, untouched, a target that is mounted or held (see findTargetUsers). */
export async function refuseBusyTarget(target: TargetInfo): Promise<void> {
  const users = await findTargetUsers(target);
  if (users.length > 0) throw targetBusy(target, users);
}

/** REIMAGE_TARGET_BUSY: something mounts or holds the target; nothing was written. */
export function targetBusy(target: TargetInfo, users: readonly string[]): ReimageError {
  return new ReimageError(
    'REIMAGE_TARGET_BUSY',
    `The target ${target.path} is in use (${users.join('; ')}); the target was not touched. Unmount it and its partitions first.`,
    { evidence: { path: target.path, users } },
  );
}

/**
 * The one "image larger than target" check: refuses, untouched, an image of `imageSizeBytes`
 * (exact, or an upper bound) that does not fit. Evidence is about the target: what its size
 * should be at least (expected) and what it is (actual).
 */
export function checkImageFits(target: TargetInfo, imageSizeBytes: number): void {
  if (imageSizeBytes <= target.sizeBytes) return;
  throw new ReimageError(
    'REIMAGE_TARGET_TOO_SMALL',
    `The image (${imageSizeBytes} bytes) is larger than the target ${target.path} (${target.sizeBytes} bytes); the target was not touched. Use a larger disk or an image made for it.`,
    {
      evidence: {
        path: target.path,
        expected: `>= ${imageSizeBytes}`,
        actual: target.sizeBytes,
        imageSizeBytes,
        targetSizeBytes: target.sizeBytes,
      },
    },
  );
}

/**
 * Asks the kernel to make a byte range read as zeros without sending zero buffers: a hole
 * punched in a file, a write-zeroes (or discard that zeroes) on a block device. Uses util-linux
 * `fallocate` because Node exposes neither fallocate(2) nor the BLKZEROOUT ioctl. Returns false
 * when the kernel or the filesystem cannot do it, so the caller writes zeros instead.
 */
export async function zeroRange(
  target: TargetInfo,
  offsetBytes: number,
  lengthBytes: number,
  signal?: AbortSignal,
): Promise<boolean> {
  const mode = target.kind === 'file' ? ['--punch-hole'] : ['--zero-range', '--keep-size'];
  const result = await runCommand(
    'fallocate',
    [...mode, '--offset', String(offsetBytes), '--length', String(lengthBytes), target.realPath],
    { allowFailure: true, ...(signal === undefined ? {} : { signal }) },
  ).catch((e: unknown) => {
    // A missing fallocate binary (a minimal initramfs) is not an error: zeros get written instead.
    if (e instanceof ReimageError && e.code === 'REIMAGE_TOOL_MISSING') return { exitCode: 127 };
    throw e;
  });
  return result.exitCode === 0;
}

/**
 * After a whole disk was written, makes the kernel see its new partition table. Uses the one
 * mechanism the runner relies on too (disk/partitions.ts refreshPartitions: BLKRRPART, and
 * BLKPG through partx where the kernel parses no tables). Best effort: the image is already
 * written and verified, so a failure is a warning; a partition as target needs nothing.
 */
export async function rereadPartitionTable(target: TargetInfo, log: Logger): Promise<void> {
  if (target.kind !== 'block-device') return;
  if ((await sysfsText(`/sys/dev/block/${target.deviceNumber ?? ''}/partition`)) !== undefined) return;
  try {
    await refreshPartitions(target.realPath);
  } catch (e) {
    log.warn(`could not re-read the partition table of ${target.path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Drops the kernel's cached pages of a block device, so a read-back reaches the device. */
export async function dropBlockDeviceCache(target: TargetInfo): Promise<boolean> {
  if (target.kind !== 'block-device') return false;
  const result = await runCommand('blockdev', ['--flushbufs', target.realPath], { allowFailure: true }).catch(() => ({
    exitCode: 127,
  }));
  return result.exitCode === 0;
}
