import { createHash } from 'node:crypto';

/**
 * Where the armed run leaves a copy of its report.json in the new root, besides the plan's
 * `restore.logs` (which `status` cannot know without the plan): a fixed path, relative to the root
 * of the new root's filesystem (FHS: a program's state). On an image whose /var is a partition of
 * its own the copy lands there as lib/reimage/…, and status reports `not-armed` as before.
 */
export const ARMED_REPORT_PATH = 'var/lib/reimage/armed-report.json';

/** The bytes of LBA 0 the commit writes and a later boot loader install keeps: disk signature, table, 55 AA. */
const TABLE_BYTES_START = 440;

/** SHA-256 of a first sector's bytes 440–511 (the partition table part): what ties a report to a disk. */
export function partitionTableSha256(firstSector: Buffer): string {
  return createHash('sha256').update(firstSector.subarray(TABLE_BYTES_START, 512)).digest('hex');
}
