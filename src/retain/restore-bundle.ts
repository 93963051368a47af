import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fdatasyncSync,
  lchownSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { lstat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { listAttributesSync, removeAttributeSync, setAttributeSync } from '@napi-rs/xattr';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ignoreProgress, throttleProgress } from '../core/progress.ts';
import { isReimageError, isSystemError, ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { emptyAccountDb, readRootAccounts } from './account-db.ts';
import { setExactTimes } from './file-times.ts';
import type { ManifestEntry } from './manifest.ts';
import type { OwnerMode, OwnerPlan } from './owner-plan.ts';
import { planOwners } from './owner-plan.ts';
import { type ObservedPlace, planRestore } from './plan-restore.ts';
import { ACL_XATTR_NAMES, remapAcl } from './posix-acl.ts';
import { checkBundle } from './read-bundle.ts';
import { inspectRootPlaceSync, joinUnder, safeComponents } from './safe-path.ts';
import { createSha256 } from './sha256.ts';
import type { TarMember } from './tar-reader.ts';
import type { WindowReader } from './window-reader.ts';
import { createWindowReader } from './window-reader.ts';
import { YIELD_EVERY, yieldToEventLoop } from './yield-to-event-loop.ts';

export interface RestoreOptions {
  /** The new root, with its other filesystems mounted under it. */
  readonly root: string;
  readonly bundlePath: string;
  readonly owners: OwnerMode;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
}

export interface RestoreSummary {
  readonly entriesRestored: number;
  readonly bytes: number;
  /** Directories that restore had to create because the new root lacked them (mode 0755, root:root). */
  readonly createdParents: string[];
  readonly warnings: string[];
}

/** Written last on each entry: the kernel clears file capabilities on chown, and a later xattr write could too. */
const CAPABILITY_XATTR = 'security.capability';
/** Content is copied in chunks of at most this size, so a 1 GiB key store needs 1 MiB of buffer. */
const CHUNK_BYTES = 1024 * 1024;

export function mappedXattrs(member: TarMember, plan: OwnerPlan): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  for (const [name, value] of member.xattrs) {
    xattrs.set(name, ACL_XATTR_NAMES.has(name) ? remapAcl(value, plan.uidMap, plan.gidMap) : value);
  }
  return xattrs;
}

/**
 * Makes a path's xattrs exactly the bundle's: removes inherited ACLs and leftovers, then writes
 * each value, file capabilities last. A label the new system's policy gave (security.selinux)
 * is kept when the bundle has none, since removing it could make the file unusable there.
 */
function applyXattrs(path: string, xattrs: ReadonlyMap<string, Buffer>, isSymlink: boolean): void {
  for (const name of listAttributesSync(path)) {
    if (!xattrs.has(name) && name !== 'security.selinux') removeAttributeSync(path, name);
  }
  const names = [...xattrs.keys()].sort((a, b) => Number(a === CAPABILITY_XATTR) - Number(b === CAPABILITY_XATTR));
  for (const name of names) {
    const value = xattrs.get(name);
    if (value === undefined) continue;
    if (isSymlink && name.startsWith('user.')) continue; // Linux forbids user.* on symlinks; capture cannot have seen one.
    setAttributeSync(path, name, value);
  }
}

function restoreFailed(entry: ManifestEntry, e: unknown): ReimageError {
  if (isReimageError(e)) return e.withTargetTouched();
  const code = isSystemError(e) ? e.code : 'unknown';
  return new ReimageError(
    'REIMAGE_RETAIN_RESTORE_FAILED',
    `Restoring ${entry.path} failed (${code}): ${e instanceof Error ? e.message : String(e)}. The new root is partly restored; fix the cause and run the restore again.`,
    { evidence: { path: entry.path, field: entry.type }, cause: e, targetTouched: true },
  );
}

/**
 * Restores a bundle into a new root. Nothing is written until the whole bundle has been checked
 * (structure, manifest, digests) and every entry's place in the root has been found safe
 * (planRestore).
 * Each non-directory entry is built beside its final name and renamed over it, so a crash
 * never leaves a half-written key under the real name.
 */
export async function restoreBundle(options: RestoreOptions): Promise<RestoreSummary> {
  const root = resolve(options.root);
  const log = options.log ?? silentLogger;
  const signal = options.signal;
  const progress = throttleProgress(options.onProgress ?? ignoreProgress);
  const rootStats = await lstat(`${root}/`).catch(() => null);
  if (rootStats?.isDirectory() !== true) {
    throw new ReimageError(
      'REIMAGE_RETAIN_ROOT_MISSING',
      `The root ${root} is not a directory. Mount the new root there first.`,
      { evidence: { path: root } },
    );
  }

  // 1. Check everything, write nothing: the bundle, each entry's place in the root, the owners.
  const { manifest, members } = await checkBundle(options.bundlePath, { signal });
  const { accounts, warnings: accountWarnings } = await readRootAccounts(root);
  const owners = planOwners(manifest.entries, options.owners === 'by-id' ? emptyAccountDb : accounts, options.owners);
  const warnings = [...accountWarnings, ...owners.warnings];
  const places: ObservedPlace[] = [];
  const knownDirs = new Set<string>();
  for (const [index, entry] of manifest.entries.entries()) {
    if (index % YIELD_EVERY === 0) await yieldToEventLoop(signal);
    const components = safeComponents(entry.path);
    const state = inspectRootPlaceSync(root, components, knownDirs);
    const existing = state.existing;
    const kind =
      existing === null ? null : existing.isDirectory() ? 'directory' : existing.isSymbolicLink() ? 'symlink' : 'other';
    if (kind === 'directory') knownDirs.add(entry.path);
    places.push({ missingAncestors: state.missingAncestors, existing: kind });
  }
  const { createdParents, steps } = planRestore(manifest.entries, places, owners);
  for (const warning of warnings) log.warn(warning);

  // 2. Write. From here on, any failure says the disk was touched. Synchronous calls per entry
  // (docs/adr/0103): a thread-pool round trip per syscall would cost several times the syscall.
  const bundleFd = openSync(options.bundlePath, 'r');
  const totalBytes = manifest.entries.reduce((sum, entry) => sum + entry.sizeBytes, 0);
  let doneBytes = 0;
  let entriesRestored = 0;
  const times: Array<{ path: string; timeNs: bigint }> = [];
  const directories: Array<{ path: string; timeNs: bigint }> = [];
  const bundleReader = createWindowReader(bundleFd);
  const tempNames = createTempNames();
  try {
    for (const parent of createdParents) mkdirSync(joinUnder(root, safeComponents(parent)), { mode: 0o755 });
    for (const [index, { entry, how, uid, gid }] of steps.entries()) {
      if (index % YIELD_EVERY === 0) await yieldToEventLoop(signal);
      const member = members[index];
      if (member === undefined) continue;
      const components = safeComponents(entry.path);
      const finalPath = joinUnder(root, components);
      const xattrs = mappedXattrs(member, owners);
      try {
        if (entry.type === 'directory') {
          if (how === 'make-directory') mkdirSync(finalPath, { mode: 0o700 });
          chownSync(finalPath, uid, gid);
          chmodSync(finalPath, entry.mode);
          applyXattrs(finalPath, xattrs, false);
          directories.push({ path: finalPath, timeNs: BigInt(entry.mtimeNs) });
        } else {
          // planRestore says how (RestoreHow). O_EXCL/O_NOFOLLOW-style creation refuses anything
          // that appeared since the check, and a failure removes what was built (docs/adr/0105).
          const replacing = how === 'replace';
          const besideFirst = replacing || how === 'create-beside';
          const buildPath = besideFirst ? tempNames.next(root, components) : finalPath;
          const built = { created: false };
          try {
            await buildEntry(entry, buildPath, built, {
              root,
              bundle: bundleReader,
              member,
              uid,
              gid,
              xattrs,
              durable: replacing,
              signal,
            });
            if (besideFirst) {
              renameSync(buildPath, finalPath);
              // rename() is a no-op when both names are already links to one inode; drop the spare.
              if (entry.type === 'hardlink') rmSync(buildPath, { force: true });
            }
          } catch (e) {
            if (built.created) rmSync(buildPath, { force: true });
            throw e;
          }
          if (entry.type === 'file') doneBytes += entry.sizeBytes;
          if (entry.type !== 'hardlink') times.push({ path: finalPath, timeNs: BigInt(entry.mtimeNs) });
        }
      } catch (e) {
        throw restoreFailed(entry, e);
      }
      entriesRestored += 1;
      progress.report({
        phase: 'restore',
        done: doneBytes,
        total: totalBytes,
        unit: 'bytes',
        counters: { entries: entriesRestored },
      });
    }
    // Times last: every create and rename above changed some directory's mtime.
    await setExactTimes([...times, ...directories.reverse()], signal);
    // Plain sync: the root may have other filesystems mounted under it (/kiosk), each restored into.
    await runCommand('sync', [], { signal });
  } catch (e) {
    throw isReimageError(e) ? e.withTargetTouched() : restoreFailed({ path: root } as ManifestEntry, e);
  } finally {
    closeSync(bundleFd);
  }
  progress.flush({
    phase: 'restore',
    done: doneBytes,
    total: totalBytes,
    unit: 'bytes',
    counters: { entries: entriesRestored },
  });
  for (const parent of createdParents) log.info(`created missing directory ${parent} (0755, root:root)`);
  log.info(`restored ${entriesRestored} entries (${doneBytes} bytes) into ${root}`);
  return { entriesRestored, bytes: doneBytes, createdParents, warnings };
}

/**
 * Names for entries built beside the one they replace: one random prefix per restore (so a name
 * cannot be guessed and planted in advance) and a counter, instead of random bytes per entry.
 * Creation is exclusive anyway: a planted name makes the restore fail, never write through it.
 */
function createTempNames(): { next(root: string, components: readonly string[]): string } {
  const prefix = `.reimage-${randomBytes(6).toString('hex')}`;
  let counter = 0;
  return {
    next(root, components) {
      counter += 1;
      return joinUnder(root, [...components.slice(0, -1), `${prefix}-${counter}.tmp`]);
    },
  };
}

interface BuildContext {
  readonly root: string;
  readonly bundle: WindowReader;
  readonly member: TarMember;
  readonly uid: number;
  readonly gid: number;
  readonly xattrs: ReadonlyMap<string, Buffer>;
  /** Replacing an existing entry: a file's data must be on disk before the rename (one sync for the rest). */
  readonly durable: boolean;
  readonly signal: AbortSignal | undefined;
}

/**
 * Creates a non-directory entry at `path` with its owner, mode and xattrs. Every way of creating
 * refuses an existing name (O_EXCL|O_NOFOLLOW, symlink(2), link(2), mknod(2) all fail with
 * EEXIST), so nothing planted is ever followed or overwritten. `built.created` turns true as soon
 * as something exists at `path`, so that the caller removes only what this call made.
 */
async function buildEntry(
  entry: ManifestEntry,
  path: string,
  built: { created: boolean },
  context: BuildContext,
): Promise<void> {
  if (entry.type === 'file') {
    writeFileFromBundle(entry, path, built, context);
  } else if (entry.type === 'symlink') {
    symlinkSync(entry.linkTarget ?? '', path);
    built.created = true;
    lchownSync(path, context.uid, context.gid);
    applyXattrs(path, context.xattrs, true);
  } else if (entry.type === 'hardlink') {
    linkSync(joinUnder(context.root, safeComponents(entry.linkTarget ?? '')), path);
    built.created = true;
  } else {
    await makeSpecial(entry, path, context.signal);
    built.created = true;
    chownSync(path, context.uid, context.gid);
    chmodSync(path, entry.mode);
    applyXattrs(path, context.xattrs, false);
  }
}

async function makeSpecial(entry: ManifestEntry, tempPath: string, signal?: AbortSignal): Promise<void> {
  // Node has no mknod/mkfifo; coreutils does, and these entries are rare.
  if (entry.type === 'fifo') {
    await runCommand('mkfifo', ['-m', '600', '--', tempPath], { signal });
    return;
  }
  const kind = entry.type === 'char-device' ? 'c' : 'b';
  const numbers = [String(entry.devMajor ?? 0), String(entry.devMinor ?? 0)];
  await runCommand('mknod', ['-m', '600', '--', tempPath, kind, ...numbers], { signal });
}

function writeFileFromBundle(
  entry: ManifestEntry,
  path: string,
  built: { created: boolean },
  context: BuildContext,
): void {
  const bundle = context.bundle;
  const member = context.member;
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  built.created = true;
  const hash = createSha256(entry.sizeBytes);
  try {
    // Chunk by chunk: a 1 GiB file needs one 1 MiB buffer, never 1 GiB of heap.
    let doneBytes = 0;
    while (doneBytes < entry.sizeBytes) {
      const chunk = bundle.read(member.dataOffsetBytes + doneBytes, Math.min(CHUNK_BYTES, entry.sizeBytes - doneBytes));
      const bytesRead = chunk.length;
      if (bytesRead === 0) break;
      hash.update(chunk);
      let written = 0;
      while (written < bytesRead) written += writeSync(fd, chunk, written, bytesRead - written, doneBytes + written);
      doneBytes += bytesRead;
    }
    // The bundle was checked before; a different digest now means it changed underneath us.
    const actual = hash.hex();
    if (actual !== entry.sha256) {
      throw new ReimageError(
        'REIMAGE_RETAIN_DIGEST_MISMATCH',
        `The bundle changed while ${entry.path} was being restored. Capture it again.`,
        { evidence: { path: entry.path, expected: entry.sha256, actual }, targetTouched: true },
      );
    }
    // chown clears setuid/setgid and file capabilities: owner first, then mode, then xattrs.
    fchownSync(fd, context.uid, context.gid);
    fchmodSync(fd, entry.mode);
    applyXattrs(path, context.xattrs, false);
    // Replacing a key: the new data must be durable before the rename makes it the real one, or a
    // crash could leave an empty file where the old key was. New files are covered by the final sync.
    if (context.durable) fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
