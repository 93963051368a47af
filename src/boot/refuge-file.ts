import { constants } from 'node:fs';
import { type FileHandle, lstat, open, statfs, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { readFileExtents } from './file-extents.ts';
import { mergeAdjacentExtents, REFUGE_ALIGNMENT_BYTES, type RefugeExtent } from './refuge-extent.ts';

/** The refuge file's name, at the root of the old filesystem. */
export const REFUGE_FILE_NAME = 'reimage-refuge';

/** Zeros written per call when the filesystem cannot fallocate (ext2/ext3 block-mapped files). */
const ZERO_CHUNK_BYTES = 4 * 1024 * 1024;

/** fsync of a directory, so a created or removed name survives a power cut. */
async function syncDirectory(path: string): Promise<void> {
  const dir = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function reserveFailed(what: string, path: string, cause?: unknown): ReimageError {
  return new ReimageError(
    'REIMAGE_REFUGE_RESERVE_FAILED',
    `The refuge file ${path} could not be reserved: ${what}. Nothing reimage created is left there.`,
    { evidence: { path }, cause },
  );
}

/**
 * fallocate(1) without --posix: a filesystem that cannot allocate says so instead of being sent
 * zeros. It takes milliseconds and is not killed on abort: a killed child may still hold the file
 * open after the refusal returns, keeping its blocks and its filesystem busy.
 */
async function allocate(path: string, sizeBytes: number): Promise<'allocated' | 'unsupported' | 'no-room'> {
  const result = await runCommand('fallocate', ['-l', String(sizeBytes), path], { allowFailure: true });
  if (result.exitCode === 0) return 'allocated';
  const said = result.stderr.trim();
  if (/No space left on device|Disk quota exceeded/.test(said)) return 'no-room';
  if (/Operation not supported/.test(said)) return 'unsupported';
  throw reserveFailed(`fallocate failed (${said || `exit ${result.exitCode}`})`, path);
}

/**
 * Writes zeros over the whole file: ext2 and ext3 files (no extents) cannot be fallocated, and
 * writing is the only way to make such a file own its blocks. Flushed by the caller.
 */
async function writeZeros(file: FileHandle, sizeBytes: number, signal?: AbortSignal): Promise<void> {
  const zeros = Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, sizeBytes));
  for (let at = 0; at < sizeBytes; at += zeros.length) {
    signal?.throwIfAborted();
    const lengthBytes = Math.min(zeros.length, sizeBytes - at);
    await file.write(zeros, 0, lengthBytes, at);
  }
}

/** Bytes root may still allocate on the filesystem holding `path`, for a refusal's evidence. */
async function freeBytesAt(path: string): Promise<number | undefined> {
  try {
    const stats = await statfs(path);
    return stats.bfree * stats.bsize;
  } catch {
    return undefined;
  }
}

/**
 * The refuge file's extents, in disk coordinates: FIEMAP (with the sync flag) offsets are from
 * the filesystem's start, so its partition's start is added. Neighbours that continue each other
 * are joined, so a later reading of the same blocks compares equal (arm compares the extents
 * before and after writing through the file: they must not move). With `holes`, the parts arm
 * gave back (punched) are allowed to have no blocks; every other extent rule still holds.
 */
export async function readRefugeExtents(
  path: string,
  partitionStartBytes: number,
  o: { readonly holes?: boolean } = {},
): Promise<RefugeExtent[]> {
  const extents = await readFileExtents(path, o);
  return mergeAdjacentExtents(
    extents.map((extent) => ({
      fileOffsetBytes: extent.logicalBytes,
      diskOffsetBytes: partitionStartBytes + extent.physicalBytes,
      lengthBytes: extent.lengthBytes,
    })),
  );
}

/**
 * Creates `<mountPoint>/reimage-refuge` (never over an existing name, nor through a planted
 * symlink: O_EXCL), gives it `sizeBytes` rounded up to 4096 of its own blocks with fallocate
 * (unwritten extents: allocated, not a sparse hole; written zeros where the filesystem cannot
 * fallocate), flushes the file and its directory, then reads its extents with FIEMAP. Any
 * refusal after the file was created removes it again.
 */
export async function reserveRefugeFile(o: {
  mountPoint: string;
  partitionStartBytes: number;
  sizeBytes: number;
  signal?: AbortSignal;
}): Promise<{ path: string; extents: RefugeExtent[] }> {
  const path = join(o.mountPoint, REFUGE_FILE_NAME);
  if (!Number.isSafeInteger(o.sizeBytes) || o.sizeBytes <= 0) {
    throw new ReimageError('REIMAGE_REFUGE_RESERVE_FAILED', `A refuge of ${o.sizeBytes} bytes cannot be reserved.`, {
      evidence: { path, sizeBytes: o.sizeBytes },
    });
  }
  const sizeBytes = Math.ceil(o.sizeBytes / REFUGE_ALIGNMENT_BYTES) * REFUGE_ALIGNMENT_BYTES;
  o.signal?.throwIfAborted();
  let file: FileHandle;
  try {
    file = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    if (isSystemError(error) && error.code === 'EEXIST') {
      throw new ReimageError(
        'REIMAGE_REFUGE_EXISTS',
        `${path} already exists: an earlier arm left it. Run "reimage disarm" to release it, then arm again.`,
        { evidence: { path }, cause: error },
      );
    }
    throw new ReimageError('REIMAGE_REFUGE_RESERVE_FAILED', `The refuge file ${path} could not be created.`, {
      evidence: { path },
      cause: error,
    });
  }
  // Cleared when the name turns out to be someone else's file: that one is never removed.
  let nameIsOurs = true;
  try {
    o.signal?.throwIfAborted();
    let outcome = await allocate(path, sizeBytes);
    if (outcome === 'unsupported') {
      try {
        await writeZeros(file, sizeBytes, o.signal);
        await file.sync();
      } catch (error) {
        if (!isSystemError(error) || (error.code !== 'ENOSPC' && error.code !== 'EDQUOT')) throw error;
        outcome = 'no-room';
      }
    }
    if (outcome === 'no-room') {
      // Removed first, so the free bytes named are what a smaller refuge could have.
      await file.close();
      await removeQuietly(path);
      const freeBytes = await freeBytesAt(o.mountPoint);
      throw new ReimageError(
        'REIMAGE_REFUGE_NO_ROOM',
        `The filesystem on ${o.mountPoint} has no room for a ${sizeBytes}-byte refuge (${freeBytes ?? 'unknown'} bytes free): the partial file was removed. Free space there, or put the refuge on another partition (the plan may name it).`,
        { evidence: { mountPoint: o.mountPoint, sizeBytes, freeBytes } },
      );
    }
    await file.sync();
    // fallocate(1) opened the path again: it must still be the file created here.
    const [held, named] = await Promise.all([file.stat(), lstat(path)]);
    if (held.ino !== named.ino || held.dev !== named.dev) {
      nameIsOurs = false;
      throw reserveFailed('its name was replaced meanwhile', path);
    }
    await file.close();
    await syncDirectory(o.mountPoint);
    o.signal?.throwIfAborted();
    const extents = await readRefugeExtents(path, o.partitionStartBytes);
    o.signal?.throwIfAborted();
    return { path, extents };
  } catch (error) {
    await file.close().catch(() => undefined);
    if (nameIsOurs) await removeQuietly(path);
    // An abort stays an abort (the caller tells it from a failure); the file is gone either way.
    if (error instanceof ReimageError || o.signal?.aborted === true) throw error;
    throw reserveFailed(error instanceof Error ? error.message : String(error), path, error);
  }
}

/** Best-effort cleanup after a refusal: the refusal, not a failed unlink, is what the operator needs to see. */
async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
    await syncDirectory(dirname(path));
  } catch {
    // Already gone or unremovable: the refusal carries the path.
  }
}

/** Whether lsattr shows the immutable flag ('i'; 'I' is ext4's indexed-directory flag). */
async function isImmutable(path: string): Promise<boolean> {
  const result = await runCommand('lsattr', ['-d', path], { allowFailure: true });
  const flags = result.stdout.trim().split(/\s+/)[0];
  if (result.exitCode !== 0 || flags === undefined) {
    throw new ReimageError('REIMAGE_REFUGE_ATTRIBUTE_FAILED', `lsattr cannot read the flags of ${path}.`, {
      evidence: { path, stderr: result.stderr.trim() },
    });
  }
  return flags.includes('i');
}

/**
 * chattr +i / -i on the refuge file, checked with lsattr. Immutable, it can be neither written,
 * truncated, renamed nor removed, and e4defrag (EXT4_IOC_MOVE_EXT) and xfs_fsr refuse to move
 * its blocks: the extents FIEMAP gave stay the file's until the commit.
 */
export async function setRefugeImmutable(path: string, immutable: boolean): Promise<void> {
  const result = await runCommand('chattr', [immutable ? '+i' : '-i', path], { allowFailure: true });
  if (result.exitCode !== 0 || (await isImmutable(path)) !== immutable) {
    throw new ReimageError(
      'REIMAGE_REFUGE_ATTRIBUTE_FAILED',
      `The immutable flag of ${path} could not be ${immutable ? 'set' : 'cleared'} (${result.stderr.trim() || 'lsattr does not show it'}).`,
      { evidence: { path, immutable, exitCode: result.exitCode } },
    );
  }
}

/** Clears the immutable flag, removes the refuge file and flushes its directory. A missing file is fine. */
export async function releaseRefugeFile(path: string): Promise<void> {
  let isFile: boolean;
  try {
    isFile = (await lstat(path)).isFile();
  } catch (error) {
    if (isSystemError(error) && error.code === 'ENOENT') return;
    throw new ReimageError('REIMAGE_REFUGE_RELEASE_FAILED', `The refuge file ${path} cannot be examined.`, {
      evidence: { path },
      cause: error,
    });
  }
  try {
    // chattr would follow a symlink planted under the name; removing the name alone is safe.
    if (isFile && (await isImmutable(path))) await setRefugeImmutable(path, false);
    await unlink(path);
    await syncDirectory(dirname(path));
  } catch (error) {
    if (isSystemError(error) && error.code === 'ENOENT') return;
    throw new ReimageError(
      'REIMAGE_REFUGE_RELEASE_FAILED',
      `The refuge file ${path} could not be removed: remove it by hand ("chattr -i", then "rm").`,
      { evidence: { path }, cause: error },
    );
  }
}
