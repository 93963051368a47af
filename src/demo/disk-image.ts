import { open } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import type { DiskLayout } from './demo-layout.ts';

const sectorBytes = 512;

/** Where a partition sits in a disk image, as the image's own partition table says. */
export interface PartitionExtent {
  readonly number: number;
  readonly offsetBytes: number;
  readonly sizeBytes: number;
  readonly type: string;
}

/**
 * The sfdisk script for a layout; sfdisk aligns to 1 MiB. msdos: sfdisk numbers logical partitions
 * from 5. GPT: each line names its entry (`pN :`, sfdisk takes the trailing number), so a layout
 * may leave entries empty.
 */
export function sfdiskScript(layout: DiskLayout): string {
  const gpt = layout.table === 'gpt';
  const lines = [gpt ? 'label: gpt' : 'label: dos'];
  for (const partition of layout.partitions) {
    const fields: string[] = [];
    if (partition.sizeMiB !== undefined) fields.push(`size=${partition.sizeMiB}MiB`);
    fields.push(`type=${partition.type}`);
    if (partition.bootable === true) fields.push('bootable');
    lines.push(gpt ? `p${partition.number} : ${fields.join(', ')}` : fields.join(', '));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Creates a sparse disk image file holding an msdos partition table for `layout`, and returns
 * the partitions' extents as sfdisk reads them back (so the offsets are sfdisk's, not our guess).
 */
export async function createPartitionedImage(
  imagePath: string,
  layout: DiskLayout,
  signal?: AbortSignal,
): Promise<PartitionExtent[]> {
  const handle = await open(imagePath, 'w', 0o644);
  try {
    await handle.truncate(layout.sizeMiB * 1024 * 1024);
  } finally {
    await handle.close();
  }
  await runCommand('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', imagePath], {
    input: sfdiskScript(layout),
    signal,
  });
  return readPartitionExtents(imagePath, signal);
}

interface SfdiskJson {
  partitiontable?: {
    label?: string;
    sectorsize?: number;
    partitions?: { node: string; start: number; size: number; type: string }[];
  };
}

/** Reads a disk image's partition table with `sfdisk --json`; numbers come from the node names. */
export async function readPartitionExtents(imagePath: string, signal?: AbortSignal): Promise<PartitionExtent[]> {
  return (await readPartitionLayout(imagePath, signal)).partitions;
}

/** The table's kind and its partitions' extents, as `sfdisk --json` reads them. */
export async function readPartitionLayout(
  imagePath: string,
  signal?: AbortSignal,
): Promise<{ table: 'msdos' | 'gpt'; partitions: PartitionExtent[] }> {
  const { stdout } = await runCommand('sfdisk', ['--json', imagePath], { signal });
  const table = (JSON.parse(stdout) as SfdiskJson).partitiontable;
  const sectorSize = table?.sectorsize ?? sectorBytes;
  const partitions = (table?.partitions ?? []).map((partition) => {
    const match = /(\d+)$/.exec(partition.node);
    return {
      number: Number(match?.[1] ?? 0),
      offsetBytes: partition.start * sectorSize,
      sizeBytes: partition.size * sectorSize,
      type: partition.type,
    };
  });
  return { table: table?.label === 'gpt' ? 'gpt' : 'msdos', partitions };
}

/**
 * Copies one partition's bytes from a disk image into a partition of another (a fresh, sparse
 * one: zero blocks are skipped, so the copy stays sparse). The target must be at least as large.
 */
export async function copyPartitionBytes(
  from: { imagePath: string; extent: PartitionExtent },
  to: { imagePath: string; extent: PartitionExtent },
  signal?: AbortSignal,
): Promise<void> {
  if (to.extent.sizeBytes < from.extent.sizeBytes) {
    throw new ReimageError(
      'REIMAGE_DEMO_LAYOUT',
      `Partition ${to.extent.number} of ${to.imagePath} (${to.extent.sizeBytes} bytes) cannot hold partition ${from.extent.number} of ${from.imagePath} (${from.extent.sizeBytes} bytes). Make it larger in demo-layout.ts.`,
      { evidence: { path: to.imagePath, expected: `>= ${from.extent.sizeBytes}`, actual: to.extent.sizeBytes } },
    );
  }
  await runCommand(
    'dd',
    [
      `if=${from.imagePath}`,
      `of=${to.imagePath}`,
      'bs=1M',
      `skip=${from.extent.offsetBytes}`,
      `seek=${to.extent.offsetBytes}`,
      `count=${from.extent.sizeBytes}`,
      'iflag=skip_bytes,count_bytes',
      'oflag=seek_bytes',
      'conv=sparse,notrunc',
      'status=none',
    ],
    { signal },
  );
}

export function extentOf(extents: readonly PartitionExtent[], number: number, imagePath: string): PartitionExtent {
  const extent = extents.find((candidate) => candidate.number === number);
  if (extent === undefined) {
    throw new ReimageError(
      'REIMAGE_DEMO_LAYOUT',
      `Partition ${number} is missing from the demo disk image ${imagePath}. Delete the demo cache and rebuild.`,
      {
        evidence: { path: imagePath, expected: `partition ${number}`, actual: extents.map((e) => e.number).join(',') },
      },
    );
  }
  return extent;
}

export interface FormatExt4Options {
  readonly label: string;
  /** A directory whose tree (owners, modes, xattrs, ACLs, capabilities, hard links) becomes the filesystem's. */
  readonly sourceDir?: string;
  readonly signal?: AbortSignal;
}

/**
 * Makes an ext4 filesystem inside a partition of a disk image file, filled from a directory.
 * `mke2fs -E offset= -d` needs no loop device and no mount, so the build leaves nothing
 * attached behind even when it is killed (docs/adr/0400-demo-disks-without-loop-devices.md).
 */
export async function formatExt4InImage(
  imagePath: string,
  extent: PartitionExtent,
  options: FormatExt4Options,
): Promise<void> {
  const blockBytes = 4096;
  const args = [
    '-q',
    '-F',
    '-t',
    'ext4',
    '-b',
    String(blockBytes),
    '-L',
    options.label,
    // Zeroed inode tables and journal are written (and so mapped in the block map): the image
    // must not rely on whatever the target disk held before in ranges the writer skips.
    '-E',
    `offset=${extent.offsetBytes},lazy_itable_init=0,lazy_journal_init=0,nodiscard`,
  ];
  if (options.sourceDir !== undefined) args.push('-d', options.sourceDir);
  args.push(imagePath, `${Math.floor(extent.sizeBytes / blockBytes)}`);
  await runCommand('mkfs.ext4', args, { signal: options.signal });
}
