import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { describePartitionRef, partitionDevicePath } from '../plan/partition-name.ts';
import type { PartitionRef } from '../plan/plan-schema.ts';
import { SYSFS_SECTOR_BYTES } from './sector-bytes.ts';

export interface PartitionInfo {
  readonly device: string;
  readonly sizeBytes: number;
  readonly fsType?: string;
  readonly label?: string;
  readonly uuid?: string;
}

/** Partition device nodes of a whole disk, from sysfs (no udev needed, as in an initramfs). */
export async function listPartitionDevices(diskDevice: string): Promise<string[]> {
  const name = basename(diskDevice);
  let children: string[];
  try {
    children = await readdir(`/sys/block/${name}`);
  } catch {
    return [];
  }
  const partitions = children.filter(
    (child) => child.startsWith(name) && existsSync(`/sys/block/${name}/${child}/partition`),
  );
  const numberOf = (child: string): number => Number(/(\d+)$/.exec(child)?.[1] ?? 0);
  return partitions.sort((a, b) => numberOf(a) - numberOf(b)).map((child) => `/dev/${child}`);
}

/** `blkid -o export` of one device as a map (empty when it holds no recognised filesystem). */
export async function probeFilesystem(device: string): Promise<Record<string, string>> {
  const { stdout } = await runCommand('blkid', ['-o', 'export', '-c', '/dev/null', device], { allowFailure: true });
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) fields[line.slice(0, at)] = line.slice(at + 1);
  }
  return fields;
}

/** The partition table as the kernel now sees it, with filesystem type, label and UUID of each. */
export async function describePartitions(diskDevice: string): Promise<PartitionInfo[]> {
  const infos: PartitionInfo[] = [];
  for (const device of await listPartitionDevices(diskDevice)) {
    const sizeText = await readFile(`/sys/class/block/${basename(device)}/size`, 'utf8');
    const fields = await probeFilesystem(device);
    infos.push({
      device,
      sizeBytes: Number(sizeText.trim()) * SYSFS_SECTOR_BYTES,
      fsType: fields.TYPE,
      label: fields.LABEL,
      uuid: fields.UUID,
    });
  }
  return infos;
}

/** Partitions as the table on the disk has them: number -> [start sector, sectors]. */
async function partitionsInTable(diskDevice: string): Promise<Map<number, [number, number]>> {
  const { stdout } = await runCommand('partx', ['-g', '-o', 'NR,START,SECTORS', diskDevice], { allowFailure: true });
  const table = new Map<number, [number, number]>();
  for (const line of stdout.trim().split('\n')) {
    const [number, start, sectors] = line.trim().split(/\s+/).map(Number);
    if (number !== undefined && start !== undefined && sectors !== undefined && !Number.isNaN(number)) {
      table.set(number, [start, sectors]);
    }
  }
  return table;
}

/** Partitions as the kernel sees them, from sysfs: number -> [start sector, sectors]. */
async function partitionsInKernel(diskDevice: string): Promise<Map<number, [number, number]>> {
  const kernel = new Map<number, [number, number]>();
  for (const device of await listPartitionDevices(diskDevice)) {
    const sys = `/sys/class/block/${basename(device)}`;
    const number = Number(await readFile(`${sys}/partition`, 'utf8'));
    const start = Number(await readFile(`${sys}/start`, 'utf8'));
    const sectors = Number(await readFile(`${sys}/size`, 'utf8'));
    kernel.set(number, [start, sectors]);
  }
  return kernel;
}

function sameLayout(a: Map<number, [number, number]>, b: Map<number, [number, number]>): boolean {
  if (a.size !== b.size) return false;
  for (const [number, [start, sectors]] of a) {
    const other = b.get(number);
    // An extended partition shows as 2 sectors (or 1 KiB) in sysfs: compare its start only.
    if (other === undefined || other[0] !== start || (other[1] !== sectors && other[1] > 2 && sectors > 2))
      return false;
  }
  return true;
}

/**
 * Makes the kernel's view of a disk's partitions match the table on it. Re-reading the table
 * (BLKRRPART) is enough on kernels that parse tables (real machines, the Debian kernel in QEMU).
 * Kernels without parsers (this CI host's) need the partitions added through BLKPG: partx reads
 * the table itself. `partx -u` drops partitions whose size changed without re-adding them, so
 * a mismatch is fixed by deleting all and adding them again.
 */
export async function refreshPartitions(diskDevice: string): Promise<void> {
  await runCommand('blockdev', ['--rereadpt', diskDevice], { allowFailure: true });
  const table = await partitionsInTable(diskDevice);
  if (sameLayout(table, await partitionsInKernel(diskDevice))) return;
  await runCommand('partx', ['-d', diskDevice], { allowFailure: true });
  if (table.size > 0) await runCommand('partx', ['-a', diskDevice]);
}

async function isBlockDevice(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isBlockDevice();
  } catch {
    return false;
  }
}

/**
 * The device of a plan's partition reference on `diskDevice`: a number by the disk's naming,
 * a label or UUID among that disk's partitions only (never another disk's). Waits up to
 * `timeoutMs` for it to appear, since partitions show up a moment after a table re-read.
 */
export async function resolvePartition(
  diskDevice: string,
  ref: PartitionRef,
  options: { timeoutMs?: number; field?: string } = {},
): Promise<string> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    if (typeof ref === 'number') {
      const device = partitionDevicePath(diskDevice, ref);
      if (await isBlockDevice(device)) return device;
    } else {
      for (const device of await listPartitionDevices(diskDevice)) {
        const fields = await probeFilesystem(device);
        if ('label' in ref ? fields.LABEL === ref.label : fields.UUID?.toLowerCase() === ref.uuid.toLowerCase()) {
          return device;
        }
      }
    }
    if (Date.now() >= deadline) break;
    await sleep(250);
  }
  throw new ReimageError(
    'REIMAGE_DISK_PARTITION_NOT_FOUND',
    `${describePartitionRef(ref)} was not found on ${diskDevice}. Check the plan's ${options.field ?? 'partition'} against the disk's partition table (blkid, lsblk).`,
    { evidence: { disk: diskDevice, field: options.field, partition: JSON.stringify(ref) } },
  );
}
