import { mkdir } from 'node:fs/promises';
import type { Logger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';

export interface Mounted {
  readonly device: string;
  readonly dir: string;
  unmount(): Promise<void>;
}

/**
 * Mounts `device` read-only without writing a byte to it. The block device itself is set
 * read-only first, so not even a journal replay or a superblock update can reach the disk
 * (the old system must stay intact until the write starts). A filesystem whose journal needs
 * replaying cannot mount on a read-only device; then it is mounted with `noload` (the last
 * committed state), and the operator is warned.
 */
export async function mountReadOnly(device: string, dir: string, log: Logger): Promise<Mounted> {
  await mkdir(dir, { recursive: true });
  await runCommand('blockdev', ['--setro', device]);
  const plain = await runCommand('mount', ['-o', 'ro', device, dir], { allowFailure: true });
  if (plain.exitCode !== 0) {
    const noload = await runCommand('mount', ['-o', 'ro,noload', device, dir], { allowFailure: true });
    if (noload.exitCode !== 0) {
      await runCommand('blockdev', ['--setrw', device], { allowFailure: true });
      throw new ReimageError(
        'REIMAGE_DISK_MOUNT_FAILED',
        `Cannot mount ${device} read-only: ${plain.stderr.trim()}. Check the plan's partition and that it holds a filesystem.`,
        { evidence: { device, dir } },
      );
    }
    log.warn(`${device} needed a journal replay; mounted it read-only without one (noload) to leave it untouched`);
  }
  return {
    device,
    dir,
    async unmount() {
      await runCommand('umount', [dir]);
      await runCommand('blockdev', ['--setrw', device], { allowFailure: true });
    },
  };
}

/** Mounts `device` read-write at `dir` (creating `dir`), with mount(8) `options` if given. */
export async function mountReadWrite(device: string, dir: string, options?: string): Promise<Mounted> {
  await mkdir(dir, { recursive: true });
  const result = await runCommand('mount', [...(options === undefined ? [] : ['-o', options]), device, dir], {
    allowFailure: true,
  });
  if (result.exitCode !== 0) {
    throw new ReimageError(
      'REIMAGE_DISK_MOUNT_FAILED',
      `Cannot mount ${device} at ${dir}: ${result.stderr.trim()}. Check the plan's restore.mounts against the new image's partitions.`,
      { evidence: { device, dir } },
    );
  }
  return {
    device,
    dir,
    async unmount() {
      await runCommand('umount', [dir]);
    },
  };
}
