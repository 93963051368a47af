import { basename, dirname } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';

/** One FIEMAP extent of a file, in bytes: `physicalBytes` is from the start of its filesystem. */
export interface FileExtent {
  readonly logicalBytes: number;
  readonly physicalBytes: number;
  readonly lengthBytes: number;
  readonly flags: readonly string[];
}

/**
 * FIEMAP flags that still mean "these bytes of the file are these bytes of the device": `last`
 * (the final extent), `eof` (filefrag's own mark), `unwritten` (allocated by fallocate, reads as
 * zeros through the filesystem until written, but the blocks are the file's) and `merged` (a
 * block-mapped ext2/ext3 file, reported block by block). Every other flag means the raw bytes
 * are elsewhere, not yet placed, or not the file's bytes: unknown_loc, delalloc (no block yet),
 * encoded/encrypted (the disk holds other bytes than the file), not_aligned/inline/tail_packed
 * (packed into metadata), shared (reflinked: a write through the file would move it), hole.
 */
const PLAIN_FLAGS: ReadonlySet<string> = new Set(['last', 'eof', 'unwritten', 'merged']);

function unsuitable(what: string, evidence: Record<string, string | number>): ReimageError {
  return new ReimageError(
    'REIMAGE_REFUGE_EXTENTS_UNSUITABLE',
    `The refuge file's blocks cannot be located on the disk: ${what}. Nothing was written raw to the disk; put the refuge on another filesystem (the plan may name its partition).`,
    { evidence },
  );
}

/**
 * Extents from `filefrag -v -b1` output (every offset and length in bytes). filefrag falls back
 * to FIBMAP without a word when FIEMAP fails (and FIEMAP with the sync flag fails on a kernel that
 * does not know it): that output has no extent table, so the coverage check below refuses it.
 * Every extent must carry only plain flags (see PLAIN_FLAGS), and together they must cover the
 * file from 0 to its size without a hole (a sparse file owns no blocks there). Extents past the
 * end (xfs's speculative preallocation) are dropped and the last one is cut at the size. Pure.
 */
export function parseFilefrag(
  output: string,
  o: { readonly holes?: boolean } = {},
): { sizeBytes: number; extents: FileExtent[] } {
  const header = /^File size of .* is (\d+) \((\d+) blocks? of (\d+) bytes\)/m.exec(output);
  if (header?.[1] === undefined || header[3] === undefined) {
    throw unsuitable('filefrag printed no file size', { output: output.slice(0, 200) });
  }
  const sizeBytes = Number(header[1]);
  if (header[3] !== '1') throw unsuitable('filefrag did not count in bytes', { unitBytes: header[3] });
  const extents: FileExtent[] = [];
  const row = /^\s*(\d+):\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*(\d+):\s+(\d+):\s*(?:\d+:)?\s*(\S*)\s*$/gm;
  for (const match of output.matchAll(row)) {
    const [logicalStart, logicalEnd, physicalStart, physicalEnd, lengthBytes] = match.slice(2, 7).map(Number) as [
      number,
      number,
      number,
      number,
      number,
    ];
    const flags = (match[7] ?? '').split(',').filter((flag) => flag !== '');
    const odd = flags.filter((flag) => !PLAIN_FLAGS.has(flag));
    if (odd.length > 0) {
      throw unsuitable(`an extent is ${odd.join(', ')}`, { flags: odd.join(','), logicalBytes: logicalStart });
    }
    // filefrag prints the last byte of each range: both must agree with the length.
    if (
      lengthBytes <= 0 ||
      logicalEnd - logicalStart + 1 !== lengthBytes ||
      physicalEnd - physicalStart + 1 !== lengthBytes
    ) {
      throw unsuitable('filefrag printed an extent whose ends do not match its length', {
        logicalBytes: logicalStart,
        lengthBytes,
      });
    }
    extents.push({ logicalBytes: logicalStart, physicalBytes: physicalStart, lengthBytes, flags });
  }
  extents.sort((a, b) => a.logicalBytes - b.logicalBytes);
  const covering: FileExtent[] = [];
  let coveredBytes = 0;
  for (const extent of extents) {
    if (extent.logicalBytes >= sizeBytes) continue;
    if (o.holes === true && extent.logicalBytes > coveredBytes) coveredBytes = extent.logicalBytes;
    if (extent.logicalBytes !== coveredBytes) {
      throw unsuitable(
        extent.logicalBytes > coveredBytes ? 'the file has a hole (no block)' : 'two extents overlap in the file',
        { atBytes: coveredBytes },
      );
    }
    const lengthBytes = Math.min(extent.lengthBytes, sizeBytes - extent.logicalBytes);
    covering.push({ ...extent, lengthBytes });
    coveredBytes += lengthBytes;
  }
  if (coveredBytes !== sizeBytes && (o.holes !== true || covering.length === 0)) {
    throw unsuitable(
      covering.length === 0 && sizeBytes > 0
        ? 'filefrag printed no FIEMAP extents (FIEMAP or its sync flag is not supported here)'
        : 'the extents do not reach the end of the file',
      { sizeBytes, coveredBytes },
    );
  }
  return { sizeBytes, extents: covering };
}

/**
 * The file's extents through FIEMAP with FIEMAP_FLAG_SYNC (`filefrag -s`): the kernel writes the
 * file's dirty pages back first, so delayed allocation has placed every block before it answers.
 * filefrag runs in the file's directory on its bare name, so nothing of the path can show up in
 * its output as an extra line.
 */
export async function readFileExtents(path: string, o: { readonly holes?: boolean } = {}): Promise<FileExtent[]> {
  const name = basename(path);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(name)) throw unsuitable('the file name holds a control character', { path });
  const result = await runCommand('filefrag', ['-v', '-s', '-b1', `./${name}`], {
    cwd: dirname(path),
    allowFailure: true,
  });
  if (result.exitCode !== 0 || result.stderr.trim() !== '') {
    throw unsuitable(`filefrag failed (${result.stderr.trim().split('\n').at(-1) || `exit ${result.exitCode}`})`, {
      path,
      exitCode: result.exitCode,
    });
  }
  return parseFilefrag(result.stdout, o).extents;
}
