import { mkdir, readFile, realpath } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import type { Mounted } from '../disk/mount.ts';
import { probeFilesystem } from '../disk/partitions.ts';

/**
 * Mount options for a new ext2/3/4 partition mounted read-write before the commit (restore,
 * logs, report.json, after-hooks), while the refuge may still lie in its free space.
 *
 * - `noinit_itable`: no lazy inode-table init thread, which zeroes the inode tables of groups
 *   not yet marked ITABLE_ZEROED. Inode tables are in use in the block bitmap, so they are in
 *   the map and a refuge (outside the map, protectExtBlocks refuses a block in use) can never
 *   lie in one: this is a second fence, and keeps the thread's writes off a disk whose every
 *   write before the commit should be one we chose.
 * - `nodiscard`: no discard of freed blocks. Protected blocks are never freed while mounted,
 *   but a default `discard` in the superblock's mount options (tune2fs -o discard) would
 *   discard the blocks restore frees, and a device's discard granularity can reach beyond them.
 */
export const NEW_EXT_MOUNT_OPTIONS: readonly string[] = ['noinit_itable', 'nodiscard'];

/** The filesystems the armed run can keep refuge blocks safe in (their bad-block list) and mounts as ext4. */
export const EXT_FILESYSTEMS: ReadonlySet<string> = new Set(['ext2', 'ext3', 'ext4']);

/** Undoes /proc/mounts' octal escapes (a space is \040). */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** The options /proc/mounts shows for the filesystem mounted at `dir`, or undefined. */
async function mountedOptions(dir: string): Promise<string[] | undefined> {
  const table = await readFile('/proc/self/mounts', 'utf8');
  let found: string[] | undefined;
  for (const line of table.split('\n')) {
    const fields = line.split(' ');
    // The last entry for a mount point is the one on top.
    if (fields[1] !== undefined && unescapeMountField(fields[1]) === dir) found = (fields[3] ?? '').split(',');
  }
  return found;
}

/**
 * Mounts a new partition read-write at `dir` for the restore. An ext2/3/4 filesystem is mounted
 * by the ext4 driver (which serves all three) with NEW_EXT_MOUNT_OPTIONS, and the options are
 * read back from /proc/self/mounts: a kernel that ignored `noinit_itable` would leave it out,
 * and that mount is undone and refused. Other filesystems are mounted with defaults: the
 * refuge is never inside them (only ext can protect blocks, protectExtBlocks).
 */
export async function mountNewPartitionReadWrite(device: string, dir: string): Promise<Mounted> {
  await mkdir(dir, { recursive: true });
  const mountPoint = await realpath(dir);
  const type = (await probeFilesystem(device)).TYPE;
  const ext = type !== undefined && EXT_FILESYSTEMS.has(type);
  const args = ext ? ['-t', 'ext4', '-o', NEW_EXT_MOUNT_OPTIONS.join(','), device, mountPoint] : [device, mountPoint];
  const result = await runCommand('mount', args, { allowFailure: true });
  if (result.exitCode !== 0) {
    throw new ReimageError(
      'REIMAGE_DISK_MOUNT_FAILED',
      `Cannot mount ${device} (${type ?? 'no filesystem found'}) read-write at ${mountPoint}${ext ? ` with ${NEW_EXT_MOUNT_OPTIONS.join(',')}` : ''}: ${result.stderr.trim()}. Check the plan's restore.mounts against the new image's partitions.`,
      { evidence: { device, dir: mountPoint, type } },
    );
  }
  const mounted: Mounted = {
    device,
    dir: mountPoint,
    async unmount() {
      await runCommand('umount', [mountPoint]);
    },
  };
  if (ext) {
    const options = (await mountedOptions(mountPoint)) ?? [];
    if (!options.includes('noinit_itable') || options.includes('discard')) {
      await runCommand('umount', [mountPoint], { allowFailure: true });
      throw new ReimageError(
        'REIMAGE_DISK_MOUNT_FAILED',
        `${device} mounted at ${mountPoint} with "${options.join(',')}", not with noinit_itable and without discard: its lazy inode-table init or discards could reach the refuge. It was unmounted; a kernel this old cannot restore into a partition holding the refuge.`,
        { evidence: { device, dir: mountPoint, options: options.join(',') } },
      );
    }
  }
  return mounted;
}
