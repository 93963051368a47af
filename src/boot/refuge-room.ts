import { constants } from 'node:fs';
import { access, readFile, stat, statfs } from 'node:fs/promises';
import { deviceNumbers } from '../core/device-number.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { parseMountInfo } from '../disk/block-device.ts';
import { type ByteRange, mergeRanges, probeFilesystem, totalBytes } from '../disk/index.ts';
import type { AllocatedBlocks } from './disk-map.ts';
import { parseDumpe2fs } from './ext4-allocation.ts';
import { REFUGE_ALIGNMENT_BYTES, usableRanges } from './refuge-extent.ts';
import { refugeFilesystemVerdict } from './refuge-filesystem-verdict.ts';
import { parseXfsFreeSpace } from './xfs-allocation.ts';

export interface RefugeRoom {
  /** blkid's TYPE. */
  readonly filesystem: string;
  /** Free bytes of the filesystem (root's view: the reserved-for-root blocks count as free). */
  readonly freeBytes: number;
  /** Of those, the bytes outside every excluded range, in whole 4096-byte blocks of the disk. */
  readonly usableBytes: number;
  /** False when read from a filesystem mounted read-write (statfs) or with a journal to replay. */
  readonly exact: boolean;
}

/**
 * The free blocks of a filesystem of `filesystemBlocks` blocks as disk ranges: the complement of
 * its allocated runs, offset by the partition's start and cut at the partition's end. Pure.
 */
export function freeDiskRanges(
  allocated: AllocatedBlocks,
  filesystemBlocks: number,
  partitionStartBytes: number,
  partitionSizeBytes: number,
): ByteRange[] {
  const { blockSizeBytes } = allocated;
  const endBytes = Math.min(filesystemBlocks * blockSizeBytes, partitionSizeBytes);
  const used = mergeRanges(
    allocated.ranges.map((run) => ({
      offsetBytes: run.firstBlock * blockSizeBytes,
      lengthBytes: run.blockCount * blockSizeBytes,
    })),
  );
  const free: ByteRange[] = [];
  let at = 0;
  for (const range of used) {
    if (range.offsetBytes >= endBytes) break;
    if (range.offsetBytes > at) free.push({ offsetBytes: at, lengthBytes: range.offsetBytes - at });
    at = Math.max(at, range.offsetBytes + range.lengthBytes);
  }
  if (at < endBytes) free.push({ offsetBytes: at, lengthBytes: endBytes - at });
  return free.map((range) => ({
    offsetBytes: partitionStartBytes + range.offsetBytes,
    lengthBytes: range.lengthBytes,
  }));
}

/** Bytes of `excluded` inside [startBytes, startBytes + sizeBytes). Pure. */
function overlapBytes(excluded: readonly ByteRange[], startBytes: number, sizeBytes: number): number {
  let bytes = 0;
  for (const range of mergeRanges(excluded)) {
    const from = Math.max(range.offsetBytes, startBytes);
    const to = Math.min(range.offsetBytes + range.lengthBytes, startBytes + sizeBytes);
    if (to > from) bytes += to - from;
  }
  return bytes;
}

function unreadable(what: string, device: string, cause?: unknown): ReimageError {
  return new ReimageError(
    'REIMAGE_REFUGE_ROOM_UNREADABLE',
    `The free space of the old filesystem on ${device} cannot be read: ${what}. Nothing was changed; check the filesystem (e2fsck -n, xfs_repair -n).`,
    { evidence: { device }, cause },
  );
}

/** The mount points of the block device `device` where it is mounted writable (none for a file or an unmounted device). */
async function writableMountPoints(device: string): Promise<string[]> {
  const stats = await stat(device, { bigint: true });
  if (!stats.isBlockDevice()) return [];
  const { major, minor } = deviceNumbers(stats.rdev);
  const mountInfo = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  const writable: string[] = [];
  for (const entry of mountInfo) {
    if (entry.deviceNumber !== `${major}:${minor}`) continue;
    try {
      // access(W_OK) fails with EROFS on a read-only mount or superblock, whoever asks.
      await access(entry.mountPoint, constants.W_OK);
      writable.push(entry.mountPoint);
    } catch {
      // Read-only here; another mount of the same filesystem may still be writable.
    }
  }
  return writable;
}

/** An ext filesystem's allocation, its block count and whether its journal still has to be replayed. */
async function readExtFree(device: string): Promise<{ blocks: AllocatedBlocks; blockCount: number; dirty: boolean }> {
  // libext2fs reads "name?options": a "?" in the device path would open another file.
  if (device.includes('?'))
    throw unreadable('its path contains "?", which e2fsprogs reads as an option separator', device);
  const result = await runCommand('dumpe2fs', [device], { allowFailure: true });
  if (result.exitCode !== 0) {
    throw unreadable(
      `dumpe2fs failed (${result.stderr.trim().split('\n').at(-1) || `exit ${result.exitCode}`})`,
      device,
    );
  }
  const blockCount = Number(/^Block count:\s+(\d+)\s*$/m.exec(result.stdout)?.[1]);
  const features = /^Filesystem features:\s+(.*)$/m.exec(result.stdout)?.[1] ?? '';
  try {
    return {
      blocks: parseDumpe2fs(result.stdout),
      blockCount,
      // The journal holds allocations the bitmaps on disk do not show yet.
      dirty: features.split(/\s+/).includes('needs_recovery'),
    };
  } catch (error) {
    throw unreadable('dumpe2fs printed what reimage cannot read', device, error);
  }
}

/** An xfs filesystem's allocation and its data block count, by xfs_db read-only on the device itself. */
async function readXfsFree(device: string): Promise<{ blocks: AllocatedBlocks; blockCount: number; dirty: boolean }> {
  const result = await runCommand(
    'xfs_db',
    ['-r', '-c', 'sb 0', '-c', 'p blocksize agblocks dblocks', '-c', 'freesp -d', device],
    { allowFailure: true },
  );
  // xfs_db says some errors (a dirty log among them) on stderr and still exits 0.
  if (result.exitCode !== 0 || result.stderr.trim() !== '') {
    throw unreadable(`xfs_db failed (${result.stderr.trim().split('\n').at(-1) || `exit ${result.exitCode}`})`, device);
  }
  try {
    const blocks = parseXfsFreeSpace(result.stdout);
    const blockCount = Number(/^dblocks = (\d+)\s*$/m.exec(result.stdout)?.[1]);
    return { blocks, blockCount, dirty: false };
  } catch (error) {
    throw unreadable('xfs_db printed what reimage cannot read', device, error);
  }
}

/**
 * Read-only, before anything is reserved: the free space of the old filesystem on `device` (the
 * partition's own device or file: its byte 0 is the filesystem's first byte), and how much of it
 * lies outside `excluded` (disk coordinates) in whole 4096-byte disk blocks.
 *
 * Unmounted or mounted read-only, the free lists are read from the filesystem's own bitmaps
 * (dumpe2fs; xfs_db freesp) and `exact` is true. Mounted read-write, the bitmaps on disk lag
 * behind the running kernel: statfs's free blocks are taken instead, usable is that minus every
 * excluded byte inside the partition (a lower bound, alignment not counted) and `exact` is false.
 * ext4 keeps min(2 %, 4096 blocks) of free blocks back from fallocate (s_resv_clusters), so a
 * refuge of all the free bytes will not fit: the caller leaves a margin.
 */
export async function measureRefugeRoom(o: {
  device: string;
  partitionStartBytes: number;
  partitionSizeBytes: number;
  excluded: readonly ByteRange[];
}): Promise<RefugeRoom> {
  const type = (await probeFilesystem(o.device)).TYPE;
  const verdict = refugeFilesystemVerdict(type);
  if (!verdict.ok) {
    throw new ReimageError(
      'REIMAGE_REFUGE_FILESYSTEM_UNSUPPORTED',
      `${o.device}: ${verdict.reason}. Put the refuge on a partition holding ext4 or xfs itself (the plan may name it).`,
      { evidence: { device: o.device, type } },
    );
  }
  const filesystem = type ?? '';
  const mountPoint = (await writableMountPoints(o.device))[0];
  if (mountPoint !== undefined) {
    let freeBytes: number;
    try {
      const stats = await statfs(mountPoint);
      freeBytes = stats.bfree * stats.bsize;
    } catch (error) {
      throw unreadable(`statfs of ${mountPoint} failed`, o.device, error);
    }
    const excludedBytes = overlapBytes(o.excluded, o.partitionStartBytes, o.partitionSizeBytes);
    const usableBytes = Math.max(0, freeBytes - excludedBytes);
    return {
      filesystem,
      freeBytes,
      usableBytes: Math.floor(usableBytes / REFUGE_ALIGNMENT_BYTES) * REFUGE_ALIGNMENT_BYTES,
      exact: false,
    };
  }
  const read = filesystem === 'xfs' ? await readXfsFree(o.device) : await readExtFree(o.device);
  if (!Number.isSafeInteger(read.blockCount) || read.blockCount <= 0) {
    throw unreadable('no block count', o.device);
  }
  const free = freeDiskRanges(read.blocks, read.blockCount, o.partitionStartBytes, o.partitionSizeBytes);
  return {
    filesystem,
    freeBytes: totalBytes(free),
    usableBytes: totalBytes(usableRanges(free, o.excluded)),
    exact: !read.dirty,
  };
}
