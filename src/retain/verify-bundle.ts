import { createHash } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { closeSync, constants, lstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { getAttributeSync, listAttributesSync } from '@napi-rs/xattr';
import { deviceNumbers } from '../core/device-number.ts';
import { isReimageError, isSystemError } from '../core/reimage-error.ts';
import { emptyAccountDb, readRootAccounts } from './account-db.ts';
import { entryTypeOf } from './entry-type-of.ts';
import type { ManifestEntry } from './manifest.ts';
import type { OwnerMode } from './owner-plan.ts';
import { planOwners } from './owner-plan.ts';
import { checkBundle } from './read-bundle.ts';
import { mappedXattrs } from './restore-bundle.ts';
import { inspectRootPlaceSync, joinUnder, safeComponents } from './safe-path.ts';
import { YIELD_EVERY, yieldToEventLoop } from './yield-to-event-loop.ts';

export interface VerifyOptions {
  readonly root: string;
  readonly bundlePath: string;
  /** Must be the mode the restore used, so remapped owners are expected, not reported. Default by-name. */
  readonly owners?: OwnerMode;
  readonly signal?: AbortSignal;
}

export interface Difference {
  readonly path: string;
  /** What differs: missing, type, mode, uid, gid, size, sha256, mtime, link target, hard link, device, xattr NAME, unsafe path. */
  readonly what: string;
  readonly expected: string;
  readonly actual: string;
}

export interface VerifySummary {
  readonly ok: boolean;
  readonly entriesChecked: number;
  readonly differences: Difference[];
}

const octal = (mode: number): string => mode.toString(8).padStart(4, '0');
const hex = (value: Buffer | null): string => (value === null ? '(absent)' : `0x${value.toString('hex')}`);

const SMALL_FILE_BYTES = 1024 * 1024;

async function hashFile(path: string, sizeBytes: number, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  if (sizeBytes <= SMALL_FILE_BYTES) {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return hash.update(readFileSync(fd)).digest('hex');
    } finally {
      closeSync(fd);
    }
  }
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  // The stream owns the handle and closes it (FileHandle.close() would wait for the stream forever).
  await pipeline(handle.createReadStream(), hash, { signal });
  return hash.digest('hex');
}

/**
 * Re-reads every retained entry under the root and compares it with the bundle's manifest and
 * xattr records — content by SHA-256, owners as the restore mapped them, mtimes to the
 * nanosecond. Differences are data; the caller decides that any difference is a failure.
 */
export async function verifyBundle(options: VerifyOptions): Promise<VerifySummary> {
  const root = resolve(options.root);
  const owners = options.owners ?? 'by-name';
  const { manifest, members } = await checkBundle(options.bundlePath, { signal: options.signal });
  const { accounts } = await readRootAccounts(root);
  const plan = planOwners(manifest.entries, owners === 'by-id' ? emptyAccountDb : accounts, owners);
  const differences: Difference[] = [];
  const inodes = new Map<string, bigint>();
  let entriesChecked = 0;
  const knownDirs = new Set<string>();
  for (const [index, entry] of manifest.entries.entries()) {
    if (index % YIELD_EVERY === 0) await yieldToEventLoop(options.signal);
    const member = members[index];
    if (member === undefined) continue;
    entriesChecked += 1;
    const differ = (what: string, expected: string | number, actual: string | number): void => {
      differences.push({ path: entry.path, what, expected: String(expected), actual: String(actual) });
    };
    const components = safeComponents(entry.path);
    const path = joinUnder(root, components);
    let stats: BigIntStats;
    try {
      inspectRootPlaceSync(root, components, knownDirs);
      stats = lstatSync(path, { bigint: true });
    } catch (e) {
      if (isReimageError(e)) differ('unsafe path', 'real directories above it', e.message);
      else if (isSystemError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR'))
        differ('missing', entry.type, 'absent');
      else throw e;
      continue;
    }
    inodes.set(entry.path, stats.ino);
    const actualType = entryTypeOf(stats);
    if (entry.type === 'hardlink') {
      const targetIno = inodes.get(entry.linkTarget ?? '');
      if (actualType === 'directory' || targetIno !== stats.ino) {
        differ('hard link', `same inode as ${entry.linkTarget}`, `inode ${stats.ino}`);
      }
      continue;
    }
    if (actualType !== entry.type) {
      differ('type', entry.type, actualType);
      continue;
    }
    checkMetadata(
      entry,
      stats,
      plan.uidMap.get(entry.uid) ?? entry.uid,
      plan.gidMap.get(entry.gid) ?? entry.gid,
      differ,
    );
    if (entry.type === 'file') {
      const actual = await hashFile(path, Number(stats.size), options.signal);
      if (actual !== entry.sha256) differ('sha256', entry.sha256 ?? '', actual);
    }
    if (entry.type === 'symlink') {
      const target = readlinkSync(path);
      if (target !== entry.linkTarget) differ('link target', entry.linkTarget ?? '', target);
    }
    const expectedXattrs = mappedXattrs(member, plan);
    const actualNames = new Set(listAttributesSync(path));
    for (const [name, value] of expectedXattrs) {
      const actual = actualNames.has(name) ? getAttributeSync(path, name) : null;
      if (actual === null || !actual.equals(value)) differ(`xattr ${name}`, hex(value), hex(actual));
    }
    for (const name of actualNames) {
      // A label the new system's policy gave is expected when the bundle had none (restore keeps it).
      if (!expectedXattrs.has(name) && name !== 'security.selinux')
        differ(`xattr ${name}`, '(absent)', hex(getAttributeSync(path, name)));
    }
  }
  return { ok: differences.length === 0, entriesChecked, differences };
}

function checkMetadata(
  entry: ManifestEntry,
  stats: BigIntStats,
  uid: number,
  gid: number,
  differ: (what: string, expected: string | number, actual: string | number) => void,
): void {
  const mode = Number(stats.mode) & 0o7777;
  // Linux has no lchmod: a symlink's own mode is always 0777 and is not restored.
  if (entry.type !== 'symlink' && mode !== entry.mode) differ('mode', octal(entry.mode), octal(mode));
  if (Number(stats.uid) !== uid) differ('uid', uid, Number(stats.uid));
  if (Number(stats.gid) !== gid) differ('gid', gid, Number(stats.gid));
  if (entry.type === 'file' && Number(stats.size) !== entry.sizeBytes)
    differ('size', entry.sizeBytes, Number(stats.size));
  if (stats.mtimeNs.toString() !== entry.mtimeNs) differ('mtime', entry.mtimeNs, stats.mtimeNs.toString());
  if (entry.type === 'char-device' || entry.type === 'block-device') {
    const { major, minor } = deviceNumbers(stats.rdev);
    if (major !== entry.devMajor || minor !== entry.devMinor)
      differ('device', `${entry.devMajor},${entry.devMinor}`, `${major},${minor}`);
  }
}
