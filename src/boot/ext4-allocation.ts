import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import type { AllocatedBlocks } from './disk-map.ts';

function unreadable(what: string, evidence: Record<string, string | number>, cause?: unknown): ReimageError {
  return new ReimageError(
    'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
    `The new image's ext filesystem cannot be mapped: ${what}. Check it with "e2fsck -fn" on the image's partition; nothing was changed.`,
    { evidence, cause },
  );
}

/**
 * Allocated blocks from `dumpe2fs` output: the complement of every group's "Free blocks:" list
 * within the block count. Taking the complement (rather than listing what is in use) keeps
 * anything dumpe2fs does not call free mapped: block 0 of a 1 KiB-block filesystem (outside
 * every group), superblock backups, group descriptors, bitmaps, inode tables, the journal.
 * For BLOCK_UNINIT groups the bitmap is not on disk; libext2fs computes it when it reads the
 * bitmaps (their superblock backup, descriptors and, without flex_bg, their own bitmaps and
 * inode table marked in use), and dumpe2fs prints that. Pure.
 */
export function parseDumpe2fs(output: string): AllocatedBlocks {
  const header = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s*$`, 'm').exec(output);
    if (match?.[1] === undefined) throw unreadable(`dumpe2fs printed no "${field}"`, { field });
    return Number(match[1]);
  };
  const blockCount = header('Block count');
  const blockSizeBytes = header('Block size');
  const groupCount = (output.match(/^Group \d+:/gm) ?? []).length;
  const free: { first: number; last: number }[] = [];
  let freeLines = 0;
  // Group lines are indented; the header's own "Free blocks: N" (a count) is not.
  for (const match of output.matchAll(/^\s+Free blocks: ?(.*)$/gm)) {
    freeLines++;
    const list = (match[1] ?? '').trim();
    if (list === '') continue;
    for (const item of list.split(/,\s*/)) {
      const run = /^(\d+)(?:-(\d+))?$/.exec(item);
      if (run?.[1] === undefined)
        throw unreadable(`dumpe2fs printed a free-block list it cannot be read from`, { item });
      const first = Number(run[1]);
      const last = run[2] === undefined ? first : Number(run[2]);
      if (last < first || last >= blockCount)
        throw unreadable('a free run lies outside the filesystem', { item, blockCount });
      free.push({ first, last });
    }
  }
  // A group without a free list would only be mapped whole (safe), but a count mismatch means
  // output of a dumpe2fs we do not understand, so refuse rather than guess.
  if (groupCount === 0 || freeLines !== groupCount) {
    throw unreadable('dumpe2fs did not print one free-block list per group', { groupCount, freeLines });
  }
  free.sort((a, b) => a.first - b.first);
  const ranges: { firstBlock: number; blockCount: number }[] = [];
  let nextBlock = 0;
  for (const run of free) {
    if (run.first < nextBlock) throw unreadable('free runs overlap', { first: run.first });
    if (run.first > nextBlock) ranges.push({ firstBlock: nextBlock, blockCount: run.first - nextBlock });
    nextBlock = run.last + 1;
  }
  if (nextBlock < blockCount) ranges.push({ firstBlock: nextBlock, blockCount: blockCount - nextBlock });
  return { blockSizeBytes, ranges };
}

/**
 * Reads the allocation of the ext2/3/4 filesystem at `offsetBytes` in an image file. libext2fs
 * opens "file?offset=N" itself (its unix I/O manager's offset option), so no loop device, no
 * copy of the partition and no root are needed, and the image is opened read-only.
 */
export async function readExt4Allocation(imagePath: string, offsetBytes: number): Promise<AllocatedBlocks> {
  if (imagePath.includes('?')) {
    // libext2fs splits the name at '?': a path with one would be opened as another file.
    throw unreadable('the image path contains "?", which e2fsprogs reads as its option separator', {
      path: imagePath,
    });
  }
  const result = await runCommand('dumpe2fs', [`${imagePath}?offset=${offsetBytes}`], { allowFailure: true });
  if (result.exitCode !== 0) {
    throw unreadable(`dumpe2fs failed (${result.stderr.trim().split('\n').at(-1) || `exit ${result.exitCode}`})`, {
      path: imagePath,
      offsetBytes,
      exitCode: result.exitCode,
    });
  }
  return parseDumpe2fs(result.stdout);
}
