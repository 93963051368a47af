import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import type { AllocatedBlocks } from './disk-map.ts';

function unreadable(what: string, evidence: Record<string, string | number>): ReimageError {
  return new ReimageError(
    'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
    `The new image's xfs filesystem cannot be mapped: ${what}. Check it with "xfs_repair -n" on the image's partition; nothing was changed.`,
    { evidence },
  );
}

/**
 * Allocated blocks from `xfs_db -r -c 'sb 0' -c 'p blocksize agblocks dblocks' -c 'freesp -d'`:
 * the complement of the free extents within the data device's blocks. freesp walks each
 * allocation group's by-block free-space btree and its AGFL (blocks held back for btree splits,
 * referenced by nothing), printing "agno agbno len"; a filesystem block's linear number is
 * agno * agblocks + agbno. Everything else stays mapped: AG headers, inode chunks, btrees, the
 * internal log, files. Pure.
 */
export function parseXfsFreeSpace(output: string): AllocatedBlocks {
  const field = (name: string): number => {
    const match = new RegExp(`^${name} = (\\d+)\\s*$`, 'm').exec(output);
    if (match?.[1] === undefined) throw unreadable(`xfs_db printed no "${name}"`, { field: name });
    return Number(match[1]);
  };
  const blockSizeBytes = field('blocksize');
  const agBlocks = field('agblocks');
  const dataBlocks = field('dblocks');
  const free: { first: number; count: number }[] = [];
  // Free extents are the lines of exactly three numbers; the histogram after them has five.
  for (const match of output.matchAll(/^\s*(\d+)\s+(\d+)\s+(\d+)\s*$/gm)) {
    const [agNumber, agBlock, count] = [Number(match[1]), Number(match[2]), Number(match[3])];
    if (agBlock + count > agBlocks)
      throw unreadable('a free extent runs past its allocation group', { agNumber, agBlock });
    free.push({ first: agNumber * agBlocks + agBlock, count });
  }
  free.sort((a, b) => a.first - b.first);
  const ranges: { firstBlock: number; blockCount: number }[] = [];
  let nextBlock = 0;
  for (const run of free) {
    if (run.first < nextBlock || run.first + run.count > dataBlocks) {
      throw unreadable('free extents overlap or lie past the filesystem', { block: run.first });
    }
    if (run.first > nextBlock) ranges.push({ firstBlock: nextBlock, blockCount: run.first - nextBlock });
    nextBlock = run.first + run.count;
  }
  if (nextBlock < dataBlocks) ranges.push({ firstBlock: nextBlock, blockCount: dataBlocks - nextBlock });
  return { blockSizeBytes, ranges };
}

/**
 * Reads the allocation of the xfs filesystem in `sizeBytes` at `offsetBytes` of an image file.
 * xfs_db has no offset option (unlike libext2fs's "file?offset="), so the partition is attached
 * to a READ-ONLY loop device with --offset and --sizelimit: no copy of a partition that may be
 * gigabytes, and nothing can write to the image. Needs root, as arm does.
 */
export async function readXfsAllocation(
  imagePath: string,
  offsetBytes: number,
  sizeBytes: number,
): Promise<AllocatedBlocks> {
  const attach = await runCommand(
    'losetup',
    ['--find', '--show', '--read-only', '--offset', String(offsetBytes), '--sizelimit', String(sizeBytes), imagePath],
    { allowFailure: true },
  );
  if (attach.exitCode !== 0) {
    throw unreadable(`no read-only loop device for it (${attach.stderr.trim()})`, { path: imagePath, offsetBytes });
  }
  const device = attach.stdout.trim();
  try {
    const result = await runCommand(
      'xfs_db',
      ['-r', '-c', 'sb 0', '-c', 'p blocksize agblocks dblocks', '-c', 'freesp -d', device],
      { allowFailure: true },
    );
    // xfs_db says some errors on stderr and still exits 0: a filesystem it doubts is refused too.
    if (result.exitCode !== 0 || result.stderr.trim() !== '') {
      throw unreadable(`xfs_db failed (${result.stderr.trim().split('\n').at(-1) || `exit ${result.exitCode}`})`, {
        path: imagePath,
        offsetBytes,
        exitCode: result.exitCode,
      });
    }
    return parseXfsFreeSpace(result.stdout);
  } finally {
    await runCommand('losetup', ['-d', device], { allowFailure: true });
  }
}
