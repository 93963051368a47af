import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { describePartitionRef, partitionDevicePath } from '../plan/partition-name.ts';
import type { PartitionRef } from '../plan/plan-schema.ts';

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
    // sysfs counts 512-byte sectors whatever the device's logical block size.
    const sizeText = await readFile(`/sys/class/block/${basename(device)}/size`, 'utf8');
    const fields = await probeFilesystem(device);
    infos.push({
      device,
      sizeBytes: Number(sizeText.trim()) * 512,
      fsType: fields.TYPE,
      label: fields.LABEL,
      uuid: fields.UUID,
    });
  }
  return infos;
}

/**
 * Makes the kernel's view of a disk's partitions match the table on it. Re-reading the table
 * (BLKRRPART) works on kernels that parse tables; `partx -u` adds, resizes and removes
 * partitions through BLKPG on any kernel, including this CI host's, which has no parsers.
 */
export async function refreshPartitions(diskDevice: string): Promise<void> {
  await runCommand('blockdev', ['--rereadpt', diskDevice], { allowFailure: true });
  const updated = await runCommand('partx', ['-u', diskDevice], { allowFailure: true });
  if (updated.exitCode !== 0) await runCommand('partx', ['-a', diskDevice], { allowFailure: true });
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
