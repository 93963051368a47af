import type { BigIntStats } from 'node:fs';
import { readlinkSync } from 'node:fs';
import { getAttributeSync, listAttributesSync } from '@napi-rs/xattr';
import type { AccountDb } from './account-db.ts';
import { devicePair, entryTypeOf } from './entry-type-of.ts';
import type { EntryType, ManifestEntry } from './manifest.ts';
import { xattrDigest } from './manifest.ts';
import { ACL_XATTR_NAMES, aclQualifiers } from './posix-acl.ts';
import { checkName, type SelectedPath } from './select-paths.ts';

/** What capture needs from an lstat (bigint, as lstat gives it for nanosecond times and large ids). */
export interface EntryStats {
  readonly kind: ReturnType<typeof entryTypeOf>;
  readonly mode: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly nlink: bigint;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly rdev: bigint;
}

/** One path of the old root as it was read: its stats, its xattrs and, for a symlink, its target. */
export interface ObservedEntry {
  readonly path: string;
  readonly sourcePath: string;
  readonly stats: EntryStats;
  readonly xattrs: ReadonlyMap<string, Buffer>;
  readonly linkTarget?: string;
}

/** A manifest entry (without its digest, known once packed) and where its content comes from. */
export interface DescribedEntry {
  readonly entry: ManifestEntry;
  readonly sourcePath: string;
  readonly xattrs: ReadonlyMap<string, Buffer>;
}

export interface Description {
  readonly described: DescribedEntry[];
  /** Entries that cannot be retained (sockets), with the reason. */
  readonly skipped: Array<{ path: string; reason: string }>;
  /** Bytes of file content to capture. */
  readonly totalBytes: number;
}

export function entryStatsOf(stats: BigIntStats): EntryStats {
  const { mode, uid, gid, size, mtimeNs, nlink, dev, ino, rdev } = stats;
  return { kind: entryTypeOf(stats), mode, uid, gid, size, mtimeNs, nlink, dev, ino, rdev };
}

/** Reads a selected path's xattrs (sorted by name) and, for a symlink, its target, never following it. */
export function observeEntry(selected: SelectedPath): ObservedEntry {
  const { path, sourcePath } = selected;
  const stats = entryStatsOf(selected.stats);
  const xattrs = new Map<string, Buffer>();
  // Sockets are skipped, not captured: nothing more to read.
  if (stats.kind === 'socket' || stats.kind === 'unknown') return { path, sourcePath, stats, xattrs };
  for (const name of listAttributesSync(sourcePath).sort()) {
    const value = getAttributeSync(sourcePath, name);
    if (value !== null) xattrs.set(name, value);
  }
  if (stats.kind !== 'symlink') return { path, sourcePath, stats, xattrs };
  return { path, sourcePath, stats, xattrs, linkTarget: readlinkSync(sourcePath) };
}

/**
 * The manifest entries of the observed paths (given in archive order), owners named from the old
 * root's own account database. Pure. The second and later paths of an inode with several links
 * become hard links to the first; sockets are skipped with a reason; ACL qualifiers get names too,
 * so that restore can map them by name.
 */
export function describeEntries(observed: readonly ObservedEntry[], accounts: AccountDb): Description {
  const described: DescribedEntry[] = [];
  const skipped: Array<{ path: string; reason: string }> = [];
  const firstPathByInode = new Map<string, string>();
  let totalBytes = 0;
  for (const { path, sourcePath, stats, xattrs, linkTarget: readTarget } of observed) {
    const kind = stats.kind;
    if (kind === 'socket' || kind === 'unknown') {
      skipped.push({
        path,
        reason: kind === 'socket' ? 'socket (recreated by its service, cannot be retained)' : 'unsupported file type',
      });
      continue;
    }
    const uid = Number(stats.uid);
    const gid = Number(stats.gid);
    let aclUsers: Record<string, string> | undefined;
    let aclGroups: Record<string, string> | undefined;
    for (const name of ACL_XATTR_NAMES) {
      const value = xattrs.get(name);
      if (value === undefined) continue;
      const { uids, gids } = aclQualifiers(value);
      for (const id of uids) {
        const user = accounts.userNameById.get(id);
        if (user !== undefined) aclUsers = { ...aclUsers, [String(id)]: user };
      }
      for (const id of gids) {
        const group = accounts.groupNameById.get(id);
        if (group !== undefined) aclGroups = { ...aclGroups, [String(id)]: group };
      }
    }
    const inodeKey = `${stats.dev}:${stats.ino}`;
    const linked = kind !== 'directory' && stats.nlink > 1n;
    const linkedTo = linked ? firstPathByInode.get(inodeKey) : undefined;
    if (linked && linkedTo === undefined) firstPathByInode.set(inodeKey, path);
    const type: EntryType = linkedTo !== undefined ? 'hardlink' : kind;
    let linkTarget: string | undefined = linkedTo;
    if (type === 'symlink') {
      linkTarget = readTarget ?? '';
      checkName(linkTarget);
    }
    const sizeBytes = type === 'file' ? Number(stats.size) : 0;
    totalBytes += sizeBytes;
    const devices = type === 'char-device' || type === 'block-device' ? devicePair(stats.rdev) : {};
    described.push({
      sourcePath,
      xattrs,
      entry: {
        path,
        type,
        mode: Number(stats.mode) & 0o7777,
        uid,
        gid,
        user: accounts.userNameById.get(uid) ?? null,
        group: accounts.groupNameById.get(gid) ?? null,
        sizeBytes,
        mtimeNs: stats.mtimeNs.toString(),
        ...(linkTarget === undefined ? {} : { linkTarget }),
        ...devices,
        xattrs: [...xattrs.keys()],
        xattrSha256: xattrDigest(xattrs),
        ...(aclUsers === undefined ? {} : { aclUsers }),
        ...(aclGroups === undefined ? {} : { aclGroups }),
      },
    });
  }
  return { described, skipped, totalBytes };
}
