import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { runCommand } from '../core/run-command.ts';
import { refreshPartitions } from './partitions.ts';

export interface LoopDevice {
  /** e.g. /dev/loop3 */
  readonly device: string;
  detach(): Promise<void>;
}

/**
 * Attaches a disk image file to a loop device and makes its partitions appear as
 * /dev/loopNpM. `losetup -P` asks the kernel to scan the table; kernels without partition
 * parsers (this CI host's) show none, so partx adds them from the table it reads itself.
 */
export async function attachLoopDevice(file: string, options: { readOnly?: boolean } = {}): Promise<LoopDevice> {
  const args = ['--find', '--show', '--partscan', ...(options.readOnly === true ? ['--read-only'] : []), file];
  const { stdout } = await runCommand('losetup', args);
  const device = stdout.trim();
  const loop: LoopDevice = {
    device,
    async detach() {
      await runCommand('partx', ['-d', device], { allowFailure: true });
      await runCommand('losetup', ['-d', device], { allowFailure: true });
    },
  };
  try {
    if (!existsSync(`/sys/block/${basename(device)}/${basename(device)}p1`)) await refreshPartitions(device);
  } catch (error) {
    await loop.detach();
    throw error;
  }
  return loop;
}
