import type { PartitionRef } from './plan-schema.ts';

/**
 * The device path of partition `number` on `diskPath`, following the kernel's naming: a disk
 * whose name ends in a digit gets a "p" before the number (nvme0n1p5, mmcblk0p5, loop0p5),
 * others get the number directly (sda5, vda5, xvda5).
 */
export function partitionDevicePath(diskPath: string, number: number): string {
  return /[0-9]$/.test(diskPath) ? `${diskPath}p${number}` : `${diskPath}${number}`;
}

/** Words for a partition reference, as the operator wrote it. */
export function describePartitionRef(ref: PartitionRef): string {
  if (typeof ref === 'number') return `partition ${ref}`;
  if ('label' in ref) return `the partition labelled "${ref.label}"`;
  return `the partition with UUID ${ref.uuid}`;
}
