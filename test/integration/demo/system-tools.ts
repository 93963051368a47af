import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../../../src/core/run-command.ts';

/** Fails (never skips) when a tool the test needs is missing, naming the Debian package. */
export function requireTools(tools: Readonly<Record<string, string>>): void {
  const missing: string[] = [];
  for (const [tool, debianPackage] of Object.entries(tools)) {
    const found = spawnSync('sh', ['-c', `command -v "$1"`, 'sh', tool]).status === 0;
    if (!found) missing.push(`${tool} (Debian package ${debianPackage})`);
  }
  if (missing.length > 0) throw new Error(`Missing tools: ${missing.join(', ')}. Install them with apt-get.`);
  if (process.getuid?.() !== 0) throw new Error('These tests need root (loop devices, mounts, file owners).');
}

/**
 * Attaches a disk image read-only with the system's own tools (`losetup -r`, then `partx -a`,
 * since this host's kernel does not parse partition tables), mounts the given partitions
 * read-only, runs `fn` with their mount points, and always unmounts and detaches.
 */
export async function withImageMounted<T>(
  imagePath: string,
  partitions: readonly number[],
  fn: (dirs: readonly string[], loopDevice: string) => Promise<T>,
): Promise<T> {
  const loopDevice = (await runCommand('losetup', ['-r', '-f', '--show', imagePath])).stdout.trim();
  const base = await mkdtemp(join(tmpdir(), 'reimage-demo-test-'));
  const mounted: string[] = [];
  try {
    await runCommand('partx', ['-a', loopDevice], { allowFailure: true });
    const dirs: string[] = [];
    for (const number of partitions) {
      const dir = join(base, `p${number}`);
      await mkdir(dir);
      await runCommand('mount', ['-o', 'ro,noload', `${loopDevice}p${number}`, dir]);
      mounted.push(dir);
      dirs.push(dir);
    }
    return await fn(dirs, loopDevice);
  } finally {
    for (const dir of mounted.reverse()) await runCommand('umount', [dir], { allowFailure: true });
    await runCommand('partx', ['-d', loopDevice], { allowFailure: true });
    await runCommand('losetup', ['-d', loopDevice], { allowFailure: true });
    await rm(base, { recursive: true, force: true });
  }
}
