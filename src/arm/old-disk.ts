import { open, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { deviceNumbers } from '../core/device-number.ts';
import type { Logger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import {
  attachLoopDevice,
  inspectTarget,
  listPartitionDevices,
  type Mounted,
  mountReadOnly,
  mountReadWrite,
  type PartitionTable,
  parseMountInfo,
  parsePartitionTable,
  probeFilesystem,
  readAt,
  TABLE_HEAD_BYTES,
  type TargetInfo,
} from '../disk/index.ts';

/** One partition of the old disk as the kernel shows it. */
export interface OldPartition {
  readonly number: number;
  readonly device: string;
  readonly startBytes: number;
  readonly sizeBytes: number;
  /** blkid's TYPE (ext4, xfs, LVM2_member…), undefined when nothing is recognised. */
  readonly filesystem: string | undefined;
}

/** The disk being armed: a block device, or (offline) a disk image file on a loop device. */
export interface OldDisk {
  readonly path: string;
  readonly target: TargetInfo;
  /** The block device its partitions hang off (the loop device for a file). */
  readonly device: string;
  readonly offline: boolean;
  readonly table: PartitionTable;
  readonly partitions: readonly OldPartition[];
  close(): Promise<void>;
}

async function sysfsNumber(path: string): Promise<number> {
  return Number((await readFile(path, 'utf8')).trim());
}

/** Reads the old disk's table and partitions; a disk image file is attached to a loop device. */
export async function openOldDisk(path: string): Promise<OldDisk> {
  const target = await inspectTarget(path);
  const offline = target.kind === 'file';
  const loop = offline ? await attachLoopDevice(target.realPath) : undefined;
  try {
    const device = loop?.device ?? target.realPath;
    const handle = await open(device, 'r');
    let table: PartitionTable;
    try {
      const head = Buffer.alloc(Math.min(TABLE_HEAD_BYTES, target.sizeBytes));
      await readAt(handle, head, 0);
      table = parsePartitionTable(head, target.sizeBytes);
    } catch (error) {
      throw new ReimageError(
        'REIMAGE_ARM_DISK_UNSUPPORTED',
        `The disk ${path} has no msdos or GPT partition table arm can read; arm needs one to find room for its refuge.`,
        { evidence: { path }, cause: error },
      );
    } finally {
      await handle.close();
    }
    const partitions: OldPartition[] = [];
    for (const partDevice of await listPartitionDevices(device)) {
      const name = basename(partDevice);
      const sys = `/sys/class/block/${name}`;
      partitions.push({
        number: await sysfsNumber(join(sys, 'partition')),
        device: partDevice,
        startBytes: (await sysfsNumber(join(sys, 'start'))) * 512,
        sizeBytes: (await sysfsNumber(join(sys, 'size'))) * 512,
        filesystem: (await probeFilesystem(partDevice)).TYPE,
      });
    }
    return {
      path,
      target,
      device,
      offline,
      table,
      partitions,
      async close() {
        await loop?.detach();
      },
    };
  } catch (error) {
    await loop?.detach();
    throw error;
  }
}

/** The partition with this number, or a refusal naming the plan's field. */
export function oldPartition(disk: OldDisk, number: number, field: string): OldPartition {
  const found = disk.partitions.find((partition) => partition.number === number);
  if (found === undefined) {
    throw new ReimageError(
      'REIMAGE_DISK_PARTITION_NOT_FOUND',
      `Partition ${number} (the plan's ${field}) is not on ${disk.path} (it has ${disk.partitions.map((p) => p.number).join(', ') || 'none'}).`,
      { evidence: { disk: disk.path, field, partition: number } },
    );
  }
  return found;
}

/**
 * Where a block device is mounted now and whether read-only, from /proc/self/mountinfo (field 3
 * is major:minor, field 5 the mount point, field 6 the per-mount options).
 */
async function currentMount(device: string): Promise<{ dir: string; readOnly: boolean } | undefined> {
  const { major, minor } = deviceNumbers((await stat(device)).rdev);
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const entries = parseMountInfo(text);
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  // A bind mount of a subdirectory names the same device; only a mount of the filesystem's root
  // (mountinfo field 4 is "/") is where its files are.
  const index = entries.findIndex(
    (entry, at) => entry.deviceNumber === `${major}:${minor}` && lines[at]?.split(' ')[3] === '/',
  );
  const entry = entries[index];
  if (entry === undefined) return undefined;
  const options = lines[index]?.split(' ')[5] ?? '';
  return { dir: entry.mountPoint, readOnly: options.split(',').includes('ro') };
}

/**
 * Looks into the disk's filesystems one at a time, read-only (or through the running OS's mount):
 * each partition `accept` takes is mounted, `visit` sees its directory, and the first value it
 * returns ends the search. A partition that does not mount is passed over. Changes nothing.
 */
export async function findInOldFilesystems<T>(
  disk: OldDisk,
  accept: (partition: OldPartition) => boolean,
  o: { workDir: string; log: Logger },
  visit: (partition: OldPartition, dir: string) => Promise<T | undefined>,
): Promise<T | undefined> {
  for (const partition of disk.partitions) {
    if (!accept(partition)) continue;
    const mount = await mountOldPartition(partition, { writable: false, workDir: o.workDir, log: o.log }).catch(
      () => undefined,
    );
    if (mount === undefined) continue;
    try {
      const found = await visit(partition, mount.dir);
      if (found !== undefined) return found;
    } finally {
      await mount.unmount();
    }
  }
  return undefined;
}

/**
 * The partition's filesystem, mounted: where the running OS already has it (arm on a live
 * machine), else mounted by arm under `workDir` — read-only for checks, read-write for the refuge.
 */
export async function mountOldPartition(
  partition: OldPartition,
  o: { writable: boolean; workDir: string; log: Logger },
): Promise<Mounted> {
  const existing = await currentMount(partition.device);
  if (existing !== undefined) {
    if (o.writable && existing.readOnly) {
      throw new ReimageError(
        'REIMAGE_DISK_MOUNT_FAILED',
        `${partition.device} is mounted read-only at ${existing.dir}; the refuge is written through its filesystem. Remount it read-write or name another partition for the refuge.`,
        { evidence: { device: partition.device, dir: existing.dir } },
      );
    }
    return { device: partition.device, dir: existing.dir, async unmount() {} };
  }
  const dir = join(o.workDir, `old-p${partition.number}-${o.writable ? 'rw' : 'ro'}`);
  return o.writable ? mountReadWrite(partition.device, dir) : mountReadOnly(partition.device, dir, o.log);
}
