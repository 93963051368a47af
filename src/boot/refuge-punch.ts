import { runCommand } from '../core/run-command.ts';
import { type ByteRange, mergeRanges } from '../disk/index.ts';

/**
 * The parts of [0, fileSizeBytes) that `used` does not cover, merged. Pure.
 */
export function unusedRanges(used: readonly ByteRange[], fileSizeBytes: number): ByteRange[] {
  const gaps: ByteRange[] = [];
  let at = 0;
  for (const range of mergeRanges(used)) {
    if (range.offsetBytes > at) gaps.push({ offsetBytes: at, lengthBytes: range.offsetBytes - at });
    at = Math.max(at, range.offsetBytes + range.lengthBytes);
  }
  if (at < fileSizeBytes) gaps.push({ offsetBytes: at, lengthBytes: fileSizeBytes - at });
  return gaps;
}

/**
 * Gives back to the old filesystem every block of the refuge file outside `used` (file offsets),
 * with `fallocate --punch-hole` (the size stays, the blocks are freed). Arm reserves more than it
 * needs, because it cannot choose where the filesystem allocates, and keeps only the part the
 * new image leaves alone. Punching frees blocks; it never moves the ones kept (the caller checks).
 */
export async function punchRefugeFile(path: string, used: readonly ByteRange[], fileSizeBytes: number): Promise<void> {
  for (const gap of unusedRanges(used, fileSizeBytes)) {
    await runCommand('fallocate', [
      '--punch-hole',
      '--keep-size',
      '--offset',
      String(gap.offsetBytes),
      '--length',
      String(gap.lengthBytes),
      path,
    ]);
  }
}
