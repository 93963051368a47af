import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import type { ByteRange } from '../disk/index.ts';
import {
  type BlockRun,
  blockRunsTouching,
  blocksOf,
  describeRuns,
  EXT_GROUP_FLAG_BITS,
  type ExtGroup,
  intersectRuns,
  parseBadBlockList,
  parseBlockUninitGroups,
  parseExtGroups,
  parseUnusedMarkedBlocks,
  runBlockCount,
  runsOf,
  subtractRuns,
} from './ext-block-runs.ts';
import { parseDumpe2fs } from './ext4-allocation.ts';

/**
 * e2fsprogs keeps the bad-block list as 32-bit block numbers (ext2fs_read_bb_FILE, the bad-block
 * inode's indirect blocks), even on a 64bit filesystem.
 */
const BAD_BLOCK_LIMIT = 2 ** 32;

/**
 * The most bytes the bad-block list can hold, counting the bad blocks a filesystem already had:
 * ext2fs_update_bb_inode sets the inode's size to `int count * int blocksize`, which overflows
 * at 2 GiB and fails ("Ext2 file too big while updating bad block inode", e2fsck exit 9) after
 * it has started to rewrite the inode. So the limit is checked first: 2 GiB less one block
 * (524287 blocks of 4 KiB, measured: one more fails). The arm must place at most this much of
 * the refuge inside one new ext filesystem.
 */
export function maxProtectedBytes(blockSizeBytes: number): number {
  return 2 ** 31 - blockSizeBytes;
}

/** e2fsck's exit codes: 0 clean, 1 errors corrected. Anything else leaves the job undone. */
const E2FSCK_DONE = new Set([0, 1]);

interface ExtState {
  readonly blockSizeBytes: number;
  readonly blockCount: number;
  /** Blocks dumpe2fs does not list as free (data, metadata, bad blocks), sorted, merged. */
  readonly notFree: readonly BlockRun[];
  /** The bad-block inode's list, sorted, distinct. */
  readonly badBlocks: readonly number[];
  /** Spans of groups whose bitmap the kernel computes instead of reading. */
  readonly blockUninit: readonly BlockRun[];
  readonly groups: readonly ExtGroup[];
}

/**
 * Replays the filesystem's journal if it has one to replay, and changes nothing else
 * (`e2fsck -E journal_only`). A power cut while the armed run had the new filesystem mounted (the
 * restore, the after-hooks) leaves it needing recovery, and with the disk's unflushed writes lost
 * or torn its bitmaps on disk may be stale or fail their checksums: dumpe2fs then refuses them,
 * and the run could never resume. After the replay the bitmaps are the ones the kernel's own
 * mount would see. On a clean filesystem it reads the superblock and writes nothing.
 */
async function replayExtJournal(device: string, signal: AbortSignal | undefined): Promise<void> {
  const replay = await runCommand('e2fsck', ['-E', 'journal_only', '-p', device], { allowFailure: true, signal });
  // 0: nothing to do or replayed; 1: replayed (errors corrected). Anything else is a failure.
  if (replay.exitCode === 0 || replay.exitCode === 1) return;
  throw new ReimageError(
    'REIMAGE_REFUGE_PROTECT_UNSUPPORTED',
    `The journal of the filesystem on ${device} could not be replayed (e2fsck -E journal_only exit ${replay.exitCode}: ${replay.stderr.trim().split('\n').at(-1) || replay.stdout.trim().split('\n').at(-1) || 'no message'}), so its bitmaps cannot be trusted and the refuge's blocks cannot be protected inside it. Nothing else was changed; reimage status --disk and the log say where the run is.`,
    { evidence: { device, exitCode: replay.exitCode } },
  );
}

async function readExtState(device: string, signal: AbortSignal | undefined): Promise<ExtState> {
  // The full dump carries the header ("Block size", "Block count") and every group's free list.
  const dump = await runCommand('dumpe2fs', [device], { allowFailure: true, signal });
  if (dump.exitCode !== 0) {
    throw new ReimageError(
      'REIMAGE_REFUGE_PROTECT_UNSUPPORTED',
      `${device} holds no ext2/3/4 filesystem dumpe2fs can read (${dump.stderr.trim().split('\n').at(-1) || `exit ${dump.exitCode}`}), so the refuge's blocks cannot be protected inside it. Nothing was changed.`,
      { evidence: { device, exitCode: dump.exitCode } },
    );
  }
  const allocation = parseDumpe2fs(dump.stdout);
  const blockCount = Number(/^Block count:\s+(\d+)\s*$/m.exec(dump.stdout)?.[1]);
  const bad = await runCommand('dumpe2fs', ['-b', device], { signal });
  return {
    blockSizeBytes: allocation.blockSizeBytes,
    blockCount,
    notFree: allocation.ranges,
    badBlocks: parseBadBlockList(bad.stdout),
    blockUninit: parseBlockUninitGroups(dump.stdout),
    groups: parseExtGroups(dump.stdout),
  };
}

/** The filesystem's blocks touching `ranges`, refused when any lies past its end or past e2fsprogs' reach. */
function blocksWithin(device: string, ranges: readonly ByteRange[], state: ExtState): BlockRun[] {
  const runs = blockRunsTouching(ranges, state.blockSizeBytes);
  const last = runs.at(-1);
  const endBlock = last === undefined ? 0 : last.firstBlock + last.blockCount;
  if (endBlock > state.blockCount) {
    const filesystemBytes = state.blockCount * state.blockSizeBytes;
    throw new ReimageError(
      'REIMAGE_REFUGE_PROTECT_OUTSIDE',
      `A refuge range ends at byte ${endBlock * state.blockSizeBytes} of the filesystem on ${device}, which is only ${filesystemBytes} bytes: it cannot be protected by that filesystem. Offsets must be relative to the filesystem's start; nothing was changed.`,
      { evidence: { device, endBytes: endBlock * state.blockSizeBytes, filesystemBytes } },
    );
  }
  if (endBlock > BAD_BLOCK_LIMIT) {
    throw new ReimageError(
      'REIMAGE_REFUGE_PROTECT_UNSUPPORTED',
      `A refuge block on ${device} is numbered ${endBlock - 1}; e2fsprogs' bad-block list holds only 32-bit block numbers. Place the refuge below ${BAD_BLOCK_LIMIT * state.blockSizeBytes} bytes of that filesystem or outside it; nothing was changed.`,
      { evidence: { device, block: endBlock - 1 } },
    );
  }
  return runs;
}

/**
 * Replaces the bad-block list with `blocks` (sorted) by `e2fsck -fy -L`. -L rather than -l
 * even when adding: -l re-adds every listed block to the current list one by one, and
 * libext2fs' list insert scans from the start for a block already there, so a resumed run
 * re-adding a large refuge would be quadratic; a sorted full list only appends.
 * Rewriting the inode first frees every block the old list held, reuses the old inode's
 * indirect blocks, and takes any more at the lowest free block: protect marks the refuge in
 * use first (markInUse). Pass 5 then writes the bitmaps and fixes the free counts.
 */
async function writeBadBlockList(
  device: string,
  blocks: readonly number[],
  signal: AbortSignal | undefined,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'reimage-badblocks-'));
  try {
    const listPath = join(dir, 'list');
    await writeFile(listPath, blocks.length === 0 ? '' : `${blocks.join('\n')}\n`);
    const fsck = await runCommand('e2fsck', ['-f', '-y', '-L', listPath, device], { allowFailure: true, signal });
    if (!E2FSCK_DONE.has(fsck.exitCode)) {
      throw new ReimageError(
        'REIMAGE_REFUGE_PROTECT_FAILED',
        `"e2fsck -fy -L" on ${device} exited ${fsck.exitCode} (${(fsck.stderr.trim() || fsck.stdout.trim()).split('\n').slice(-2).join(' / ')}): the bad-block list that keeps the refuge safe may not be written. Do not mount ${device}; check it with "e2fsck -fn ${device}" and run the step again.`,
        { evidence: { device, exitCode: fsck.exitCode }, targetState: 'unknown' },
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Marks `runs` in use in the on-disk block bitmap (debugfs setb) BEFORE e2fsck rewrites the
 * bad-block inode. Needed: libext2fs 1.47's ext2fs_update_bb_inode marks each listed block in
 * use only as it reaches it, and allocates the inode's indirect blocks (written with zeros at
 * once) at the lowest free block of the bitmap; a refuge starting at the first free block lost
 * its 13th block that way (measured: zeros written over it, then e2fsck dropped it from the
 * list). setb alone is lost in a BLOCK_UNINIT group (libext2fs never writes such a bitmap), so
 * those groups lose the flag first; the free counts left stale are e2fsck's to fix next.
 */
async function markInUse(device: string, runs: readonly BlockRun[], state: ExtState, signal: AbortSignal | undefined) {
  // Only blocks free now: setb warns once per block already set, which on a resumed run of a
  // 2 GiB refuge is half a million lines and eight seconds.
  const free = intersectRuns(runs, subtractRuns([{ firstBlock: 0, blockCount: state.blockCount }], state.notFree));
  if (free.length === 0) return;
  const commands: string[] = [];
  for (const group of state.groups) {
    if (!group.flags.includes('BLOCK_UNINIT') || intersectRuns(runs, [group]).length === 0) continue;
    let bits = 0;
    for (const flag of group.flags) {
      const bit = EXT_GROUP_FLAG_BITS[flag];
      if (bit === undefined) {
        throw new ReimageError(
          'REIMAGE_REFUGE_PROTECT_UNSUPPORTED',
          `Group ${group.group} of the filesystem on ${device} has a flag this tool does not know (${flag}), so its BLOCK_UNINIT flag cannot be cleared safely. Nothing was changed.`,
          { evidence: { device, group: group.group, flag } },
        );
      }
      bits |= bit;
    }
    commands.push(`set_bg ${group.group} flags ${bits & ~(EXT_GROUP_FLAG_BITS.BLOCK_UNINIT ?? 0)}`);
    commands.push(`set_bg ${group.group} checksum calc`);
  }
  for (const run of free) commands.push(`setb ${run.firstBlock} ${run.blockCount}`);
  const dir = await mkdtemp(join(tmpdir(), 'reimage-setb-'));
  try {
    const commandPath = join(dir, 'commands');
    await writeFile(commandPath, `${commands.join('\n')}\n`);
    // debugfs reports a failed command on stderr and still exits 0: the dumpe2fs check after
    // this is what decides.
    await runCommand('debugfs', ['-w', '-f', commandPath, device], { signal });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const marked = await readExtState(device, signal);
  const stillFree = intersectRuns(
    runs,
    subtractRuns([{ firstBlock: 0, blockCount: marked.blockCount }], marked.notFree),
  );
  const uninit = intersectRuns(runs, marked.blockUninit);
  if (stillFree.length > 0 || uninit.length > 0) {
    throw protectFailed(device, 'marking the refuge blocks in use with debugfs did not hold', [
      ...stillFree,
      ...uninit,
    ]);
  }
}

function protectFailed(device: string, what: string, runs: readonly BlockRun[]): ReimageError {
  return new ReimageError(
    'REIMAGE_REFUGE_PROTECT_FAILED',
    `After writing the bad-block list of ${device}, ${what} (blocks ${describeRuns(runs)}). Do not mount ${device}; this is a bug, report it with "dumpe2fs ${device}".`,
    { evidence: { device, blocks: describeRuns(runs) }, targetState: 'changed' },
  );
}

/**
 * Keeps the refuge's bytes inside a new ext2/3/4 filesystem from being allocated (and so
 * written or zeroed) while that filesystem is mounted read-write before the commit: every
 * block touching `ranges` (bytes from the filesystem's start) joins the filesystem's
 * bad-block list, where neither the kernel's allocator nor fstrim ever goes.
 *
 * Steps: dumpe2fs (block size, free lists, groups) and dumpe2fs -b (the list); refusals;
 * debugfs marks the still-free refuge blocks in use (markInUse); `e2fsck -fy -L` writes the
 * list (the old one plus the refuge); dumpe2fs checks that every block is listed, marked in
 * use, in a group whose bitmap the kernel reads, and that the old bad blocks are still there.
 *
 * `device` must not be mounted (e2fsck refuses a mounted one). Each block must be free in the
 * filesystem, or already listed, or marked in use by nothing (both left by a run cut short:
 * a resumed run protects again, and the full e2fsck runs again to repair a cut mid-write); a
 * block in use holds data or metadata, and the call is refused before anything is written.
 * So is a list past maxProtectedBytes. Costs one full e2fsck (two after a cut left a partial
 * list; one more read-only e2fsck -n when blocks look in use).
 */
export async function protectExtBlocks(
  device: string,
  ranges: readonly ByteRange[],
  o: { readonly signal?: AbortSignal } = {},
): Promise<{ blocks: number; alreadyProtected: number }> {
  await replayExtJournal(device, o.signal);
  const before = await readExtState(device, o.signal);
  const runs = blocksWithin(device, ranges, before);
  const badRuns = runsOf(before.badBlocks);
  let inUse = subtractRuns(intersectRuns(runs, before.notFree), badRuns);
  if (inUse.length > 0) {
    // A run cut short after markInUse left refuge blocks marked but unlisted: nothing uses
    // them, which only a full read-only e2fsck can tell (it lists them as bitmap differences).
    const check = await runCommand('e2fsck', ['-fn', device], { allowFailure: true, signal: o.signal });
    inUse = subtractRuns(inUse, parseUnusedMarkedBlocks(check.stdout));
  }
  if (inUse.length > 0) {
    const firstByte = (inUse[0]?.firstBlock ?? 0) * before.blockSizeBytes;
    throw new ReimageError(
      'REIMAGE_REFUGE_BLOCKS_IN_USE',
      `${runBlockCount(inUse)} block(s) of the refuge inside the filesystem on ${device} are in use there (blocks ${describeRuns(inUse)} of ${before.blockSizeBytes} bytes, the first at byte ${firstByte}): they hold the new image's data or metadata, so the refuge cannot lie there. The refuge must be placed in blocks the new image leaves free; nothing was changed.`,
      { evidence: { device, blocks: describeRuns(inUse), blockSizeBytes: before.blockSizeBytes, firstByte } },
    );
  }
  const alreadyProtected = runBlockCount(intersectRuns(runs, badRuns));
  const union = runsOf([...new Set([...before.badBlocks, ...blocksOf(runs)])].sort((a, b) => a - b));
  const listBytes = runBlockCount(union) * before.blockSizeBytes;
  if (listBytes > maxProtectedBytes(before.blockSizeBytes)) {
    throw new ReimageError(
      'REIMAGE_REFUGE_PROTECT_UNSUPPORTED',
      `The refuge inside the filesystem on ${device} needs ${runBlockCount(runs)} blocks of ${before.blockSizeBytes} bytes on its bad-block list (with the ${before.badBlocks.length} it has: ${listBytes} bytes); e2fsprogs' bad-block inode holds at most ${maxProtectedBytes(before.blockSizeBytes)} bytes. Place less of the refuge in this filesystem; nothing was changed.`,
      { evidence: { device, listBytes, maxBytes: maxProtectedBytes(before.blockSizeBytes) } },
    );
  }
  // A list holding some refuge blocks but not all (a run cut short) is cut back to the blocks
  // the filesystem had first: rewriting the inode frees every block it lists, and a longer
  // list needs new indirect blocks, which could then land on those freed refuge blocks. A
  // shorter list reuses the inode's old indirect blocks only.
  let current = before;
  if (alreadyProtected > 0 && runBlockCount(union) > before.badBlocks.length) {
    await writeBadBlockList(device, blocksOf(subtractRuns(badRuns, runs)), o.signal);
    current = await readExtState(device, o.signal);
  }
  await markInUse(device, runs, current, o.signal);
  await writeBadBlockList(device, blocksOf(union), o.signal);

  const after = await readExtState(device, o.signal);
  const unlisted = subtractRuns(runs, runsOf(after.badBlocks));
  if (unlisted.length > 0)
    throw protectFailed(device, 'refuge blocks are missing from its bad-block list (the refuge is not safe)', unlisted);
  const stillFree = subtractRuns(runs, after.notFree);
  if (stillFree.length > 0)
    throw protectFailed(device, 'refuge blocks are still free in its bitmap (the refuge is not safe)', stillFree);
  const uninit = intersectRuns(runs, after.blockUninit);
  if (uninit.length > 0)
    throw protectFailed(
      device,
      'refuge blocks lie in BLOCK_UNINIT groups, whose bitmap the kernel does not read (the refuge is not safe)',
      uninit,
    );
  const lost = subtractRuns(badRuns, runsOf(after.badBlocks));
  if (lost.length > 0) throw protectFailed(device, 'bad blocks it had before are gone from its list', lost);
  return { blocks: runBlockCount(runs), alreadyProtected };
}

/**
 * Undoes protectExtBlocks (before the commit, docs/adr/0608): removes exactly the blocks
 * touching `ranges` from the bad-block list (the ones the filesystem had before stay) with
 * `e2fsck -fy -L`, which frees them and writes none of them (a shorter list reuses the inode's
 * indirect blocks). `device` must not be mounted. Idempotent: releasing blocks not on the list
 * rewrites the same list. Returns how many blocks left the list and how many are free now (a
 * block released may at once hold the list's own indirect block: in use, and rightly so).
 *
 * The blocks touching `ranges` must be the ones protected: a bad block the filesystem had
 * before that lies inside them leaves too. The refuge never holds one, since a new image's
 * bad blocks are in use in it and so in the map, and the refuge lies outside the map.
 */
export async function releaseExtBlocks(
  device: string,
  ranges: readonly ByteRange[],
  o: { readonly signal?: AbortSignal } = {},
): Promise<{ blocks: number; freeBlocks: number }> {
  await replayExtJournal(device, o.signal);
  // Writing the list runs e2fsck, which repairs whatever else it finds: on a filesystem that is
  // not clean that may allocate blocks (a new lost+found, a rebuilt journal) among the ones just
  // freed — the refuge, which must boot the recovery path until the commit. Only a clean one is
  // released; the caller leaves the blocks listed otherwise (lost room, never a damaged refuge).
  const check = await runCommand('e2fsck', ['-fn', device], { allowFailure: true, signal: o.signal });
  if (check.exitCode !== 0) {
    throw new ReimageError(
      'REIMAGE_REFUGE_RELEASE_UNSAFE',
      `The filesystem on ${device} is not clean (e2fsck -fn exit ${check.exitCode}), so the refuge's blocks stay on its bad-block list: releasing them runs a repair that could write into the refuge. After the new OS boots, e2fsck -f and then e2fsck -L with an empty list give them back.`,
      { evidence: { device, exitCode: check.exitCode }, targetTouched: true },
    );
  }
  const before = await readExtState(device, o.signal);
  const runs = blocksWithin(device, ranges, before);
  const badRuns = runsOf(before.badBlocks);
  const kept = subtractRuns(badRuns, runs);
  await writeBadBlockList(device, blocksOf(kept), o.signal);

  const after = await readExtState(device, o.signal);
  const afterRuns = runsOf(after.badBlocks);
  const stillListed = intersectRuns(runs, afterRuns);
  if (stillListed.length > 0)
    throw protectFailed(device, 'released blocks are still on its bad-block list', stillListed);
  const lost = subtractRuns(kept, afterRuns);
  if (lost.length > 0) throw protectFailed(device, 'bad blocks it had before are gone from its list', lost);
  return {
    blocks: runBlockCount(intersectRuns(runs, badRuns)),
    freeBlocks: runBlockCount(subtractRuns(runs, after.notFree)),
  };
}
