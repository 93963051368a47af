import { open } from 'node:fs/promises';
import { findArm } from '../arm/find-arm.ts';
import { decodeMapItem, type MapItem, readItemRaw } from '../boot/index.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { type ByteRange, mergeRanges, readPartitionTable } from '../disk/index.ts';
import { sshHostKeyTypes } from './demo-layout.ts';

/**
 * Where a retained secret's bytes lie on a raw disk, and whether each place is allowed (issue 9:
 * "a retained key's bytes occur only in the restored file and, where the new image does not map
 * it, in the old filesystem's own copy"). Anything else — a bundle left in the refuge, a scratch
 * copy, a torn write — is a private key behind the new OS's back.
 */

/** One secret as the old OS held it: its path in the old root, its bytes, where its blocks lay. */
export interface RetainedSecret {
  /** The path in the old root, which is also the restored file's path in the new root. */
  readonly path: string;
  readonly bytes: Buffer;
  /** The old filesystem's own copy, disk coordinates (its data blocks before any write). */
  readonly oldCopy: readonly ByteRange[];
}

export interface SecretOccurrence {
  readonly path: string;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
}

/** Where an occurrence lies: the restored file, the old copy the new image leaves alone, or elsewhere. */
export type OccurrencePlace = 'restored' | 'old-copy' | 'stray';

export interface RetainedBytesVerdict {
  /** True when no occurrence is stray. */
  readonly allowed: boolean;
  readonly occurrences: readonly (SecretOccurrence & { readonly place: OccurrencePlace })[];
}

/** The SSH host private keys of the demo's old OS (demo-layout.ts sshHostKeyTypes). */
export const oldSshHostKeyPaths: readonly string[] = sshHostKeyTypes.map(({ type }) => `/etc/ssh/ssh_host_${type}_key`);

const sectorBytes = 512;

/** e2fsprogs opens a filesystem inside an image file at a byte offset with `path?offset=N`. */
function extAt(diskPath: string, startBytes: number): string {
  return `${diskPath}?offset=${startBytes}`;
}

async function partitionStartBytes(diskPath: string, partitionNumber: number): Promise<number> {
  const handle = await open(diskPath, 'r');
  try {
    const table = await readPartitionTable(handle, (await handle.stat()).size);
    const partition = table.partitions.find((p) => p.number === partitionNumber);
    if (partition === undefined) {
      throw new ReimageError(
        'REIMAGE_DEMO_RETAINED_BYTES_UNREADABLE',
        `${diskPath} has no partition ${partitionNumber}. Pass the old root's partition number.`,
        {
          evidence: {
            path: diskPath,
            expected: `partition ${partitionNumber}`,
            actual: table.partitions.map((p) => p.number).join(','),
          },
        },
      );
    }
    return partition.startBytes;
  } finally {
    await handle.close();
  }
}

/**
 * The disk byte ranges of a regular file's data in an ext2/3/4 filesystem that starts
 * `startBytes` into a disk image (debugfs `blocks`, no loop device, no mount). Inline data has no
 * blocks: an empty list.
 */
export async function extFileDiskRanges(
  diskPath: string,
  startBytes: number,
  path: string,
  signal?: AbortSignal,
): Promise<ByteRange[]> {
  const device = extAt(diskPath, startBytes);
  const { stdout: stats } = await runCommand('debugfs', ['-R', 'stats', device], { signal });
  const blockBytes = Number(/^Block size:\s+(\d+)/m.exec(stats)?.[1]);
  // debugfs exits 0 when the file is missing and says so on stderr only.
  const { stdout, stderr } = await runCommand('debugfs', ['-R', `blocks "${path}"`, device], { signal });
  if (!Number.isSafeInteger(blockBytes) || blockBytes <= 0 || /File not found|Bad magic|Invalid/.test(stderr)) {
    throw new ReimageError(
      'REIMAGE_DEMO_RETAINED_BYTES_UNREADABLE',
      `debugfs cannot read the blocks of ${path} in ${device}: check that the file exists there and that the partition is the one holding it.`,
      {
        evidence: { path: device, expected: path, actual: stderr.trim().split('\n').at(-1)?.slice(0, 200) ?? '' },
      },
    );
  }
  const blocks = stdout.trim().split(/\s+/).filter(Boolean).map(Number);
  return mergeRanges(
    blocks.map((block) => ({ offsetBytes: startBytes + block * blockBytes, lengthBytes: blockBytes })),
  );
}

/**
 * Reads the secrets at `paths` from an ext filesystem on a partition of a (pristine, not yet
 * written) disk image: their bytes and where their blocks lie. Call it before the run: the old
 * copy's place is only known while the old filesystem is whole.
 */
export async function readRetainedSecrets(
  diskPath: string,
  partitionNumber: number,
  paths: readonly string[] = oldSshHostKeyPaths,
  signal?: AbortSignal,
): Promise<RetainedSecret[]> {
  const startBytes = await partitionStartBytes(diskPath, partitionNumber);
  const secrets: RetainedSecret[] = [];
  for (const path of paths) {
    const oldCopy = await extFileDiskRanges(diskPath, startBytes, path, signal);
    const file = await open(diskPath, 'r');
    const parts: Buffer[] = [];
    try {
      for (const range of oldCopy) {
        const part = Buffer.alloc(range.lengthBytes);
        await file.read(part, 0, part.length, range.offsetBytes);
        parts.push(part);
      }
    } finally {
      await file.close();
    }
    const { stdout } = await runCommand('debugfs', ['-R', `stat "${path}"`, extAt(diskPath, startBytes)], { signal });
    const sizeBytes = Number(/Size:\s+(\d+)/.exec(stdout)?.[1]);
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      throw new ReimageError(
        'REIMAGE_DEMO_RETAINED_BYTES_UNREADABLE',
        `${path} on partition ${partitionNumber} of ${diskPath} is empty or unreadable.`,
        {
          evidence: { path: diskPath, expected: path, actual: stdout.slice(0, 200) },
        },
      );
    }
    secrets.push({ path, bytes: Buffer.concat(parts).subarray(0, sizeBytes), oldCopy });
  }
  return secrets;
}

/**
 * Every byte offset on the raw disk where each secret occurs, in disk order. Reads the whole disk
 * in `chunkBytes` windows that overlap by the longest secret less one byte, so an occurrence
 * across a window's end is found once.
 */
export async function findRetainedBytes(
  diskPath: string,
  secrets: readonly Pick<RetainedSecret, 'path' | 'bytes'>[],
  o: { chunkBytes?: number; signal?: AbortSignal } = {},
): Promise<SecretOccurrence[]> {
  const chunkBytes = o.chunkBytes ?? 8 * 1024 * 1024;
  const overlapBytes = Math.max(0, ...secrets.map((secret) => secret.bytes.length - 1));
  const found: SecretOccurrence[] = [];
  const file = await open(diskPath, 'r');
  try {
    const window = Buffer.alloc(chunkBytes + overlapBytes);
    for (let position = 0; ; position += chunkBytes) {
      o.signal?.throwIfAborted();
      const { bytesRead } = await file.read(window, 0, window.length, position);
      if (bytesRead === 0) break;
      const view = window.subarray(0, bytesRead);
      for (const secret of secrets) {
        if (secret.bytes.length === 0) continue;
        // Only starts inside this window's own chunk: the overlap's are the next window's.
        for (let at = view.indexOf(secret.bytes); at >= 0 && at < chunkBytes; at = view.indexOf(secret.bytes, at + 1)) {
          found.push({ path: secret.path, offsetBytes: position + at, lengthBytes: secret.bytes.length });
        }
      }
      if (bytesRead < window.length) break;
    }
  } finally {
    await file.close();
  }
  return found.sort((a, b) => a.offsetBytes - b.offsetBytes || a.path.localeCompare(b.path));
}

function inside(occurrence: ByteRange, ranges: readonly ByteRange[]): boolean {
  const end = occurrence.offsetBytes + occurrence.lengthBytes;
  return mergeRanges(ranges).some(
    (range) => range.offsetBytes <= occurrence.offsetBytes && end <= range.offsetBytes + range.lengthBytes,
  );
}

function overlaps(occurrence: ByteRange, ranges: readonly ByteRange[]): boolean {
  const end = occurrence.offsetBytes + occurrence.lengthBytes;
  return ranges.some(
    (range) => range.offsetBytes < end && occurrence.offsetBytes < range.offsetBytes + range.lengthBytes,
  );
}

/**
 * Decides each occurrence's place. Allowed: wholly inside the restored file's blocks of the same
 * secret, or wholly inside the old copy's blocks where the new image maps none of its bytes (a
 * mapped old copy was to be overwritten: finding it means a skipped write). Pure.
 */
export function judgeRetainedBytes(
  occurrences: readonly SecretOccurrence[],
  places: {
    /** Secret path → its restored file's data, disk coordinates (extFileDiskRanges on the new root). */
    readonly restored: ReadonlyMap<string, readonly ByteRange[]>;
    /** Secret path → the old filesystem's copy, disk coordinates (RetainedSecret.oldCopy). */
    readonly oldCopy: ReadonlyMap<string, readonly ByteRange[]>;
    /** Every byte the new image writes (its map), disk coordinates. */
    readonly mapped: readonly ByteRange[];
  },
): RetainedBytesVerdict {
  const judged = occurrences.map((occurrence) => {
    let place: OccurrencePlace = 'stray';
    if (inside(occurrence, places.restored.get(occurrence.path) ?? [])) place = 'restored';
    else if (inside(occurrence, places.oldCopy.get(occurrence.path) ?? []) && !overlaps(occurrence, places.mapped)) {
      place = 'old-copy';
    }
    return { ...occurrence, place };
  });
  return { allowed: judged.every((occurrence) => occurrence.place !== 'stray'), occurrences: judged };
}

/**
 * The armed disk's map (the new image's partitions and the ranges the armed write writes), read
 * from its refuge as `status` finds it. Read it after arm and before the run: the commit and
 * release leave no refuge to read.
 */
export async function readArmedMap(diskPath: string): Promise<MapItem> {
  const disk = await open(diskPath, 'r');
  try {
    const found = await findArm(disk);
    const mapItem = found.kind === 'armed' ? found.header.items.find((item) => item.name === 'map') : undefined;
    if (mapItem === undefined) {
      throw new ReimageError(
        'REIMAGE_DEMO_RETAINED_BYTES_UNREADABLE',
        `${diskPath} holds no armed refuge with a map: arm it first.`,
        {
          evidence: { path: diskPath, expected: 'armed', actual: found.kind === 'armed' ? 'no map item' : found.why },
        },
      );
    }
    return decodeMapItem(await readItemRaw(disk, mapItem));
  } finally {
    await disk.close();
  }
}

/**
 * The whole check on a disk after the run: where every secret occurs, judged against the restored
 * files in the new root (`newRootPartition` of `map`) and the old copies outside `map.ranges`.
 */
export async function checkRetainedBytes(o: {
  diskPath: string;
  secrets: readonly RetainedSecret[];
  map: Pick<MapItem, 'partitions' | 'ranges'>;
  newRootPartition: number;
  signal?: AbortSignal;
}): Promise<RetainedBytesVerdict> {
  const root = o.map.partitions.find((p) => p.number === o.newRootPartition);
  if (root === undefined) {
    throw new ReimageError(
      'REIMAGE_DEMO_RETAINED_BYTES_UNREADABLE',
      `The new image has no partition ${o.newRootPartition}.`,
      {
        evidence: {
          expected: `partition ${o.newRootPartition}`,
          actual: o.map.partitions.map((p) => p.number).join(','),
        },
      },
    );
  }
  const restored = new Map<string, ByteRange[]>();
  for (const secret of o.secrets) {
    restored.set(secret.path, await extFileDiskRanges(o.diskPath, root.startBytes, secret.path, o.signal));
  }
  const occurrences = await findRetainedBytes(o.diskPath, o.secrets, { signal: o.signal });
  return judgeRetainedBytes(occurrences, {
    restored,
    oldCopy: new Map(o.secrets.map((secret) => [secret.path, secret.oldCopy])),
    mapped: o.map.ranges,
  });
}

/** A verdict's stray occurrences as one line each, for an assertion message. */
export function describeStrayBytes(verdict: RetainedBytesVerdict): string {
  return verdict.occurrences
    .filter((occurrence) => occurrence.place === 'stray')
    .map((o) => `${o.path} at byte ${o.offsetBytes} (sector ${Math.floor(o.offsetBytes / sectorBytes)})`)
    .join('\n');
}
