import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { attachLoopDevice, mountReadOnly, resolvePartition } from '../../src/disk/index.ts';
import { sha256File } from '../../src/image/sha256-file.ts';

/** Runs `fn` with partitions of a disk image file mounted read-only (by number), then cleans up. */
export async function withMountedPartitions<T>(
  diskPath: string,
  partitions: readonly number[],
  fn: (dirs: string[]) => Promise<T>,
): Promise<T> {
  const loop = await attachLoopDevice(diskPath, { readOnly: true });
  const base = await mkdtemp(join(tmpdir(), 'reimage-inspect-'));
  const unmounts: (() => Promise<void>)[] = [];
  try {
    const dirs: string[] = [];
    for (const number of partitions) {
      const device = await resolvePartition(loop.device, number);
      const mount = await mountReadOnly(device, join(base, `p${number}`), silentLogger);
      unmounts.push(() => mount.unmount());
      dirs.push(mount.dir);
    }
    return await fn(dirs);
  } finally {
    for (const unmount of unmounts.reverse()) await unmount();
    await loop.detach();
    await rm(base, { recursive: true, force: true });
  }
}

/** SHA-256 of a whole file (a disk image), to prove it is bit-for-bit unchanged. */
export const sha256OfFile = (path: string): Promise<string> => sha256File(path);

/**
 * getfattr/getfacl/getcap output for a tree, with the mount point removed and the per-file
 * blocks sorted, so two filesystems compare equal whatever their directory order.
 */
export function normalizeAttributeDump(output: string, root: string): string {
  return output
    .split(root)
    .join('')
    .split(/\n\n|\n(?=\/)/)
    .map((block) => block.trim())
    .filter((block) => block !== '')
    .sort()
    .join('\n\n');
}

/** Extended attributes (user.*, trusted.*, security.*) of trees under `root`, as getfattr shows them. */
export async function xattrDump(root: string, paths: readonly string[]): Promise<string> {
  const args = [
    '-R',
    '-d',
    '-m',
    '^(user|trusted|security)\\.',
    '--absolute-names',
    ...paths.map((path) => join(root, path)),
  ];
  return normalizeAttributeDump((await runCommand('getfattr', args)).stdout, root);
}

/** POSIX ACLs of trees under `root`, as getfacl shows them (numeric ids: the host has no such accounts). */
export async function aclDump(root: string, paths: readonly string[]): Promise<string> {
  const args = ['-R', '-p', '-n', ...paths.map((path) => join(root, path))];
  return normalizeAttributeDump((await runCommand('getfacl', args)).stdout, root);
}

/** File capabilities of files under `root`, as getcap shows them. */
export async function capabilityDump(root: string, paths: readonly string[]): Promise<string> {
  const args = ['-r', ...paths.map((path) => join(root, path))];
  return normalizeAttributeDump((await runCommand('getcap', args)).stdout, root);
}
