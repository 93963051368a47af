// A partitioned disk image on a loop device for the refuge tests: the host kernel parses no
// partition table, so `partx -a` adds the partitions (../shared/FACTS.md).
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

export const MIB = 1024 * 1024;

export const run = (command: string, args: readonly string[], input?: string): string =>
  execFileSync(command, args, {
    encoding: 'utf8',
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });

export interface PartitionSpec {
  /** Start and size in 512-byte sectors (a start need not be 4096-aligned: that checks the offset arithmetic). */
  readonly startSector: number;
  readonly sectors: number;
  /** mkfs command and its arguments (the device is appended); none leaves the partition empty. */
  readonly mkfs?: readonly string[];
}

export interface RefugeDisk {
  readonly imagePath: string;
  readonly loop: string;
  /** Partition number → its device, start and size in bytes. */
  readonly partitions: ReadonlyMap<number, { device: string; startBytes: number; sizeBytes: number }>;
  /** Mounts partition `number` read-write (or read-only) at a directory under the disk's and returns it. */
  mount(number: number, readOnly?: boolean): string;
  unmount(number: number): void;
  /** Where partition `number` is mounted now, if it is. */
  mountPoint(number: number): string | undefined;
  /** Unmounts everything and detaches the loop device. */
  close(): void;
}

/** A sparse disk image of `sizeBytes` with an msdos or GPT table, filesystems made, attached, partitions added. */
export function makeRefugeDisk(
  dir: string,
  name: string,
  label: 'dos' | 'gpt',
  sizeBytes: number,
  specs: readonly PartitionSpec[],
): RefugeDisk {
  const imagePath = join(dir, `${name}.img`);
  run('truncate', ['-s', String(sizeBytes), imagePath]);
  const lines = specs.map(
    (spec) => `start=${spec.startSector}, size=${spec.sectors}, type=${label === 'dos' ? '83' : 'linux'}`,
  );
  run('sfdisk', ['-q', imagePath], `label: ${label}\n${lines.join('\n')}\n`);
  const loop = run('losetup', ['--find', '--show', imagePath]).trim();
  const partitions = new Map<number, { device: string; startBytes: number; sizeBytes: number }>();
  const mounted = new Map<number, string>();
  const close = (): void => {
    for (const dirPath of mounted.values()) spawnSync('umount', [dirPath]);
    mounted.clear();
    spawnSync('partx', ['-d', loop]);
    spawnSync('losetup', ['-d', loop]);
  };
  try {
    run('partx', ['-a', loop]);
    specs.forEach((spec, index) => {
      const device = `${loop}p${index + 1}`;
      partitions.set(index + 1, { device, startBytes: spec.startSector * 512, sizeBytes: spec.sectors * 512 });
      if (spec.mkfs !== undefined) {
        const [command, ...args] = spec.mkfs;
        if (command === undefined) throw new Error('an empty mkfs command');
        run(command, [...args, device]);
      }
    });
  } catch (error) {
    close();
    throw error;
  }
  return {
    imagePath,
    loop,
    partitions,
    mount(number, readOnly = false) {
      const partition = partitions.get(number);
      if (partition === undefined) throw new Error(`no partition ${number}`);
      const dirPath = join(dir, `${name}-p${number}`);
      mkdirSync(dirPath, { recursive: true });
      run('mount', [...(readOnly ? ['-o', 'ro'] : []), partition.device, dirPath]);
      mounted.set(number, dirPath);
      return dirPath;
    },
    mountPoint(number) {
      return mounted.get(number);
    },
    unmount(number) {
      const dirPath = mounted.get(number);
      if (dirPath === undefined) return;
      run('umount', [dirPath]);
      mounted.delete(number);
    },
    close,
  };
}

/** `lengthBytes` read straight from a file (the disk image) at `offsetBytes`, past every filesystem. */
export function readRaw(path: string, offsetBytes: number, lengthBytes: number): Buffer {
  const buffer = Buffer.alloc(lengthBytes);
  const fd = openSync(path, 'r');
  try {
    let done = 0;
    while (done < lengthBytes) {
      const got = readSync(fd, buffer, done, lengthBytes - done, offsetBytes + done);
      if (got === 0) break;
      done += got;
    }
  } finally {
    closeSync(fd);
  }
  return buffer;
}
