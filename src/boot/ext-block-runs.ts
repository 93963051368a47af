import { ReimageError } from '../core/reimage-error.ts';
import { type ByteRange, mergeRanges } from '../disk/index.ts';

/** Consecutive filesystem blocks. */
export interface BlockRun {
  readonly firstBlock: number;
  readonly blockCount: number;
}

/**
 * The blocks touching `ranges` (bytes from the filesystem's start), rounded outward: a block
 * that holds one byte of a range holds refuge bytes, so it is protected whole. Sorted, merged.
 * Refuses ranges that are not whole, non-negative byte counts. Pure.
 */
export function blockRunsTouching(ranges: readonly ByteRange[], blockSizeBytes: number): BlockRun[] {
  for (const range of ranges) {
    if (
      !Number.isSafeInteger(range.offsetBytes) ||
      !Number.isSafeInteger(range.lengthBytes) ||
      range.offsetBytes < 0 ||
      range.lengthBytes < 0
    ) {
      throw new ReimageError(
        'REIMAGE_BOOT_RANGES_INVALID',
        `A refuge range inside a new filesystem is not whole and non-negative (offset ${range.offsetBytes}, length ${range.lengthBytes}). This is a bug in the caller; nothing was changed.`,
        { evidence: { offsetBytes: range.offsetBytes, lengthBytes: range.lengthBytes } },
      );
    }
  }
  const runs: BlockRun[] = [];
  for (const range of mergeRanges(ranges)) {
    const firstBlock = Math.floor(range.offsetBytes / blockSizeBytes);
    const endBlock = Math.ceil((range.offsetBytes + range.lengthBytes) / blockSizeBytes);
    const last = runs.at(-1);
    // Two ranges in one block merge here although mergeRanges kept them apart.
    if (last !== undefined && firstBlock <= last.firstBlock + last.blockCount) {
      runs[runs.length - 1] = {
        firstBlock: last.firstBlock,
        blockCount: Math.max(endBlock, last.firstBlock + last.blockCount) - last.firstBlock,
      };
    } else {
      runs.push({ firstBlock, blockCount: endBlock - firstBlock });
    }
  }
  return runs;
}

/** Every block of sorted, merged runs, ascending. Pure. */
export function blocksOf(runs: readonly BlockRun[]): number[] {
  const blocks: number[] = [];
  for (const run of runs)
    for (let block = run.firstBlock; block < run.firstBlock + run.blockCount; block++) blocks.push(block);
  return blocks;
}

/** Sorted, distinct block numbers as runs. Pure. */
export function runsOf(sortedBlocks: readonly number[]): BlockRun[] {
  const runs: BlockRun[] = [];
  for (const block of sortedBlocks) {
    const last = runs.at(-1);
    if (last !== undefined && block === last.firstBlock + last.blockCount) {
      runs[runs.length - 1] = { firstBlock: last.firstBlock, blockCount: last.blockCount + 1 };
    } else {
      runs.push({ firstBlock: block, blockCount: 1 });
    }
  }
  return runs;
}

/** Blocks in both sorted, merged run lists, as runs. Pure. */
export function intersectRuns(a: readonly BlockRun[], b: readonly BlockRun[]): BlockRun[] {
  const out: BlockRun[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as BlockRun;
    const y = b[j] as BlockRun;
    const start = Math.max(x.firstBlock, y.firstBlock);
    const end = Math.min(x.firstBlock + x.blockCount, y.firstBlock + y.blockCount);
    if (start < end) out.push({ firstBlock: start, blockCount: end - start });
    if (x.firstBlock + x.blockCount <= y.firstBlock + y.blockCount) i++;
    else j++;
  }
  return out;
}

/** Blocks of sorted, merged `a` that are not in sorted, merged `b`, as runs. Pure. */
export function subtractRuns(a: readonly BlockRun[], b: readonly BlockRun[]): BlockRun[] {
  const out: BlockRun[] = [];
  let j = 0;
  for (const run of a) {
    let start = run.firstBlock;
    const end = run.firstBlock + run.blockCount;
    while (j < b.length && (b[j] as BlockRun).firstBlock + (b[j] as BlockRun).blockCount <= start) j++;
    let k = j;
    while (start < end && k < b.length && (b[k] as BlockRun).firstBlock < end) {
      const cut = b[k] as BlockRun;
      if (cut.firstBlock > start) out.push({ firstBlock: start, blockCount: cut.firstBlock - start });
      start = Math.max(start, cut.firstBlock + cut.blockCount);
      k++;
    }
    if (start < end) out.push({ firstBlock: start, blockCount: end - start });
  }
  return out;
}

/** Number of blocks in runs. Pure. */
export function runBlockCount(runs: readonly BlockRun[]): number {
  return runs.reduce((sum, run) => sum + run.blockCount, 0);
}

/**
 * The bad-block list `dumpe2fs -b` prints: one decimal block number a line. Anything else on a
 * line means output this parser does not understand; guessing would drop a bad block the
 * filesystem had (release writes the list back), so it refuses. Sorted, distinct. Pure.
 */
export function parseBadBlockList(output: string): number[] {
  const blocks = new Set<number>();
  for (const raw of output.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (!/^\d+$/.test(line)) {
      throw new ReimageError(
        'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
        `"dumpe2fs -b" printed a line that is not a block number ("${line.slice(0, 80)}"); the bad-block list cannot be kept, so it is left alone.`,
        { evidence: { line: line.slice(0, 80) } },
      );
    }
    blocks.add(Number(line));
  }
  return [...blocks].sort((a, b) => a - b);
}

/** One block group as `dumpe2fs` prints its head line. */
export interface ExtGroup {
  readonly group: number;
  readonly firstBlock: number;
  readonly blockCount: number;
  /** e.g. INODE_UNINIT, BLOCK_UNINIT, ITABLE_ZEROED */
  readonly flags: readonly string[];
}

/** The groups of `dumpe2fs` output ("Group 2: (Blocks 16385-24576) csum 0x… [INODE_UNINIT, BLOCK_UNINIT]"). Pure. */
export function parseExtGroups(output: string): ExtGroup[] {
  const groups: ExtGroup[] = [];
  for (const match of output.matchAll(/^Group (\d+): \(Blocks (\d+)-(\d+)\)[^\n[]*(?:\[([^\]]*)\])?/gm)) {
    const firstBlock = Number(match[2]);
    groups.push({
      group: Number(match[1]),
      firstBlock,
      blockCount: Number(match[3]) - firstBlock + 1,
      flags: (match[4] ?? '').split(/,\s*/).filter((flag) => flag !== ''),
    });
  }
  return groups;
}

/**
 * The block spans of the groups `dumpe2fs` marks BLOCK_UNINIT. The kernel computes such a
 * group's bitmap from its layout and never reads the one on disk (libext2fs does not even
 * write it), so a block marked in use there is free to the allocator. Sorted. Pure.
 */
export function parseBlockUninitGroups(output: string): BlockRun[] {
  return parseExtGroups(output)
    .filter((group) => group.flags.includes('BLOCK_UNINIT'))
    .map((group) => ({ firstBlock: group.firstBlock, blockCount: group.blockCount }));
}

/**
 * The blocks `e2fsck -n` finds marked in use in the bitmap that nothing uses ("Block bitmap
 * differences:  -(4900--4904) -9002 +5000"; the "-" entries). Sorted, merged. Pure.
 */
export function parseUnusedMarkedBlocks(e2fsckOutput: string): BlockRun[] {
  const section = /Block bitmap differences:([^\n]*(?:\n(?!Fix\?)[^\n]*)*)/.exec(e2fsckOutput)?.[1] ?? '';
  const blocks: BlockRun[] = [];
  for (const match of section.matchAll(/(?:^|\s)-(?:\((\d+)--(\d+)\)|(\d+))(?=\s|$)/g)) {
    const first = Number(match[1] ?? match[3]);
    const last = Number(match[2] ?? match[3]);
    blocks.push({ firstBlock: first, blockCount: last - first + 1 });
  }
  return runsOf(
    blocks
      .flatMap((run) => blocksOf([run]))
      .sort((a, b) => a - b)
      .filter((b, i, all) => i === 0 || all[i - 1] !== b),
  );
}

/** bg_flags bits (ext4 disk layout) by the names dumpe2fs prints. */
export const EXT_GROUP_FLAG_BITS: Readonly<Record<string, number>> = {
  INODE_UNINIT: 0x1,
  BLOCK_UNINIT: 0x2,
  ITABLE_ZEROED: 0x4,
};

/** "first-last" (or "first") lists for messages, at most `limit` runs. Pure. */
export function describeRuns(runs: readonly BlockRun[], limit = 5): string {
  const shown = runs
    .slice(0, limit)
    .map((run) =>
      run.blockCount === 1 ? `${run.firstBlock}` : `${run.firstBlock}-${run.firstBlock + run.blockCount - 1}`,
    );
  return runs.length > limit ? `${shown.join(', ')} and ${runs.length - limit} more` : shown.join(', ');
}
