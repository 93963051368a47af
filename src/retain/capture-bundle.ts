import type { BigIntStats } from 'node:fs';
import {
  closeSync,
  constants,
  createWriteStream,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
} from 'node:fs';
import { lstat, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { getAttributeSync, listAttributesSync } from '@napi-rs/xattr';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ignoreProgress, throttleProgress } from '../core/progress.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { readRootAccounts } from './account-db.ts';
import { devicePair, entryTypeOf } from './entry-type-of.ts';
import type { BundleManifest, EntryType, ManifestEntry } from './manifest.ts';
import {
  archiveName,
  MANIFEST_FORMAT,
  MANIFEST_MEMBER_NAME,
  MANIFEST_VERSION,
  TYPE_FLAGS,
  xattrDigest,
} from './manifest.ts';
import { createMemberBatch } from './member-batch.ts';
import { ACL_XATTR_NAMES, aclQualifiers } from './posix-acl.ts';
import type { PatternComponent, RetainRequest } from './retain-list.ts';
import { parsePattern } from './retain-list.ts';
import { joinUnder } from './safe-path.ts';
import { createSha256 } from './sha256.ts';
import { paddedSize } from './tar-header.ts';
import { encodeMemberHeader, endOfArchive, memberPadding, prepareMemberHeader } from './tar-writer.ts';
import { YIELD_EVERY, yieldToEventLoop } from './yield-to-event-loop.ts';

export interface CaptureOptions {
  /** The old root filesystem, mounted anywhere. */
  readonly root: string;
  readonly requests: readonly RetainRequest[];
  readonly bundlePath: string;
  /** Recorded as the source host; default: the old root's /etc/hostname, else this host's name. */
  readonly hostName?: string;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
}

export interface CaptureSummary {
  readonly entries: number;
  /** Bytes of file content captured. */
  readonly bytes: number;
  readonly bundleSizeBytes: number;
  readonly missingOptional: string[];
  /** Entries that cannot be retained (sockets), with the reason. */
  readonly skipped: Array<{ path: string; reason: string }>;
  readonly warnings: string[];
}

interface SourceEntry {
  readonly entry: ManifestEntry;
  readonly sourcePath: string;
  readonly xattrs: ReadonlyMap<string, Buffer>;
}

/** Large files stream in chunks of this size. */
const CHUNK_BYTES = 1024 * 1024;
/** Members are packed into buffers of this size; a file that fits in one with its header is read in one call. */
const BATCH_BYTES = 1024 * 1024;

/** Component-wise order, so a directory always comes right before its contents ("a/b" before "a b"). */
function sortedForArchive(paths: string[]): string[] {
  const keyed = paths.map((path) => ({ path, components: path.split('/') }));
  keyed.sort((a, b) => compareComponents(a.components, b.components));
  return keyed.map((k) => k.path);
}

function compareComponents(left: readonly string[], right: readonly string[]): number {
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    const l = left[i] ?? '';
    const r = right[i] ?? '';
    if (l !== r) return l < r ? -1 : 1;
  }
  return left.length - right.length;
}

async function lstatOrNull(path: string): Promise<BigIntStats | null> {
  try {
    return await lstat(path, { bigint: true });
  } catch (e) {
    if (isSystemError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return null;
    throw e;
  }
}

function checkName(path: string): void {
  // Node decodes names as UTF-8; bytes that are not become U+FFFD and could not be written back.
  if (path.includes('\uFFFD')) {
    throw new ReimageError(
      'REIMAGE_RETAIN_NAME_NOT_UTF8',
      `The name ${JSON.stringify(path)} is not valid UTF-8, which retention bundles cannot carry. Rename it on the old system or leave it out of the list.`,
      { evidence: { path } },
    );
  }
}

/** Expands one pattern under the root, never through a symlink. Returns absolute bundle paths. */
async function expandPattern(
  root: string,
  pattern: string,
  components: readonly PatternComponent[],
): Promise<string[]> {
  const found: string[] = [];
  const walk = async (index: number, prefix: readonly string[]): Promise<void> => {
    if (index === components.length) {
      if (prefix.length > 0) found.push(`/${prefix.join('/')}`);
      return;
    }
    const component = components[index];
    if (component === undefined) return;
    const isLast = index === components.length - 1;
    if (component.kind === 'literal') {
      const next = [...prefix, component.name];
      const stats = await lstatOrNull(joinUnder(root, next));
      if (stats === null) return;
      if (!isLast && stats.isSymbolicLink()) {
        throw new ReimageError(
          'REIMAGE_RETAIN_PATH_THROUGH_SYMLINK',
          `The retained path ${pattern} goes through /${next.join('/')}, which is a symlink in the old root. List the path the symlink points to instead.`,
          { evidence: { path: `/${next.join('/')}`, field: pattern } },
        );
      }
      if (!isLast && !stats.isDirectory()) return;
      await walk(index + 1, next);
      return;
    }
    let names: string[];
    try {
      names = await readdir(joinUnder(root, prefix));
    } catch (e) {
      if (isSystemError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return;
      throw e;
    }
    names.sort();
    if (component.kind === 'globstar') {
      await walk(index + 1, prefix);
      for (const name of names) {
        if (name.startsWith('.')) continue;
        const stats = await lstatOrNull(joinUnder(root, [...prefix, name]));
        if (stats?.isDirectory() === true) await walk(index, [...prefix, name]);
      }
      return;
    }
    for (const name of names) {
      if (!component.regex.test(name)) continue;
      const next = [...prefix, name];
      if (!isLast) {
        const stats = await lstatOrNull(joinUnder(root, next));
        if (stats?.isDirectory() !== true) continue;
      }
      await walk(index + 1, next);
    }
  };
  await walk(0, []);
  return [...new Set(found)];
}

function readXattrs(path: string): Map<string, Buffer> {
  const xattrs = new Map<string, Buffer>();
  for (const name of listAttributesSync(path).sort()) {
    const value = getAttributeSync(path, name);
    if (value !== null) xattrs.set(name, value);
  }
  return xattrs;
}

/**
 * Captures the requested paths of the old root into a bundle (a pax tar with a manifest).
 * Every request is resolved before the bundle is created, so a missing required path fails
 * with nothing written. The bundle appears under its name only once complete (written beside,
 * then renamed) and is mode 0600 from its creation: it holds private keys.
 */
export async function captureBundle(options: CaptureOptions): Promise<CaptureSummary> {
  const root = resolve(options.root);
  const log = options.log ?? silentLogger;
  const signal = options.signal;
  const progress = throttleProgress(options.onProgress ?? ignoreProgress);
  const warnings: string[] = [];
  const missingOptional: string[] = [];
  const missingRequired: string[] = [];
  const skipped: Array<{ path: string; reason: string }> = [];

  const rootStats = await lstatOrNull(`${root}/`);
  if (rootStats?.isDirectory() !== true) {
    throw new ReimageError(
      'REIMAGE_RETAIN_ROOT_MISSING',
      `The root ${root} is not a directory. Mount the old root there first.`,
      {
        evidence: { path: root },
      },
    );
  }

  // 1. Resolve every request first: a missing required path must fail before anything is written.
  const matched = new Set<string>();
  for (const request of options.requests) {
    signal?.throwIfAborted();
    const paths = await expandPattern(root, request.pattern, parsePattern(request.pattern));
    if (paths.length === 0) {
      (request.optional ? missingOptional : missingRequired).push(request.pattern);
      continue;
    }
    for (const path of paths) matched.add(path);
  }
  if (missingRequired.length > 0) {
    throw new ReimageError(
      'REIMAGE_RETAIN_REQUIRED_MISSING',
      `Required retained path${missingRequired.length > 1 ? 's' : ''} missing in ${root}: ${missingRequired.join(', ')}. Check the old root is the right filesystem, or mark the line optional with "?".`,
      { evidence: { path: root, actual: missingRequired } },
    );
  }
  for (const pattern of missingOptional) log.info(`optional path not present: ${pattern}`);

  // 2. Walk: a retained directory is retained recursively, every entry with its own metadata.
  const statsByPath = new Map<string, BigIntStats>();
  // Synchronous calls in the per-entry loops: a thread-pool round trip per lstat costs ~10x the
  // syscall itself, and there is nothing to overlap (docs/adr/0103). The loops yield now and then
  // so that an abort or a progress display still gets the event loop.
  const visit = async (path: string): Promise<void> => {
    if (statsByPath.has(path)) return;
    if (statsByPath.size % YIELD_EVERY === 0) await yieldToEventLoop(signal);
    checkName(path);
    const stats = lstatSync(joinUnder(root, path.split('/').slice(1)), { bigint: true });
    statsByPath.set(path, stats);
    if (!stats.isDirectory()) return;
    const names = readdirSync(joinUnder(root, path.split('/').slice(1)));
    for (const name of names) await visit(`${path}/${name}`);
  };
  for (const path of matched) await visit(path);

  // Read without following a planted /etc/passwd symlink out of the old root.
  const { accounts } = await readRootAccounts(root);
  const sourceEntries: SourceEntry[] = [];
  const firstPathByInode = new Map<string, string>();
  let totalBytes = 0;
  let visited = 0;
  for (const path of sortedForArchive([...statsByPath.keys()])) {
    visited += 1;
    if (visited % YIELD_EVERY === 0) await yieldToEventLoop(signal);
    const stats = statsByPath.get(path);
    if (stats === undefined) continue;
    const kind = entryTypeOf(stats);
    const type = kind === 'socket' || kind === 'unknown' ? undefined : kind;
    if (type === undefined) {
      const reason = stats.isSocket()
        ? 'socket (recreated by its service, cannot be retained)'
        : 'unsupported file type';
      skipped.push({ path, reason });
      log.warn(`skipped ${path}: ${reason}`);
      continue;
    }
    const sourcePath = joinUnder(root, path.split('/').slice(1));
    const uid = Number(stats.uid);
    const gid = Number(stats.gid);
    const xattrs = readXattrs(sourcePath);
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
    const linkedTo = type !== 'directory' && stats.nlink > 1n ? firstPathByInode.get(inodeKey) : undefined;
    if (type !== 'directory' && stats.nlink > 1n && linkedTo === undefined) firstPathByInode.set(inodeKey, path);
    const finalType: EntryType = linkedTo !== undefined ? 'hardlink' : type;
    let linkTarget: string | undefined = linkedTo;
    if (finalType === 'symlink') {
      linkTarget = readlinkSync(sourcePath);
      checkName(linkTarget);
    }
    const sizeBytes = finalType === 'file' ? Number(stats.size) : 0;
    totalBytes += sizeBytes;
    const devices = finalType === 'char-device' || finalType === 'block-device' ? devicePair(stats.rdev) : {};
    sourceEntries.push({
      sourcePath,
      xattrs,
      entry: {
        path,
        type: finalType,
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

  const manifestBase: Omit<BundleManifest, 'entries'> = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    capturedAt: new Date().toISOString(),
    sourceHost: options.hostName ?? (await sourceHostName(root)),
    requests: options.requests.map((r) => ({ pattern: r.pattern, optional: r.optional })),
    missingOptional,
    skipped,
  };

  // 3. Write beside, then rename: a half-written bundle never carries the final name.
  const bundlePath = resolve(options.bundlePath);
  const partialPath = `${bundlePath}.partial`;
  await rm(partialPath, { force: true });
  let doneBytes = 0;
  let doneEntries = 0;
  let bundleSizeBytes = 0;
  const finalEntries: ManifestEntry[] = [];
  async function* chunks(): AsyncGenerator<Buffer> {
    // Members are packed into 1 MiB batches: one write per entry part would cost a thread-pool
    // round trip each, and a buffer per part would keep the garbage collector busy.
    const batch = createMemberBatch(BATCH_BYTES);
    let written = 0;
    for (const source of sourceEntries) {
      written += 1;
      if (written % YIELD_EVERY === 0) await yieldToEventLoop(signal);
      const entry = source.entry;
      const header = prepareMemberHeader({
        name: archiveName(entry),
        typeFlag: TYPE_FLAGS[entry.type],
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        userName: entry.user ?? '',
        groupName: entry.group ?? '',
        sizeBytes: entry.sizeBytes,
        mtimeNs: BigInt(entry.mtimeNs),
        linkName: entry.type === 'hardlink' ? (entry.linkTarget ?? '/').slice(1) : (entry.linkTarget ?? ''),
        devMajor: entry.devMajor ?? 0,
        devMinor: entry.devMinor ?? 0,
        xattrs: source.xattrs,
      });
      const paddedBytes = paddedSize(entry.sizeBytes);
      bundleSizeBytes += header.sizeBytes + paddedBytes;
      // A small file goes into the batch with its header: read one byte more than its size, to see it grew.
      const inBatch = header.sizeBytes + Math.max(paddedBytes, entry.sizeBytes + 1) <= BATCH_BYTES;
      if (batch.roomBytes < header.sizeBytes + (inBatch ? Math.max(paddedBytes, entry.sizeBytes + 1) : 0)) {
        if (batch.usedBytes > 0) yield batch.take();
      }
      if (batch.roomBytes >= header.sizeBytes) {
        batch.addHeader(header);
      } else {
        // Larger than a whole batch (megabytes of xattrs): written on its own.
        const alone = Buffer.allocUnsafe(header.sizeBytes);
        header.writeTo(alone, 0);
        yield alone;
      }
      if (entry.type === 'file') {
        const hash = createSha256(entry.sizeBytes);
        if (inBatch) {
          const content = batch.addContent(entry.sizeBytes + 1, paddedBytes, (target, offset) =>
            readSmallFile(source.sourcePath, entry.path, entry.sizeBytes, target, offset),
          );
          hash.update(content);
          doneBytes += entry.sizeBytes;
        } else {
          if (batch.usedBytes > 0) yield batch.take();
          for await (const chunk of readLargeFile(source.sourcePath, entry.path, entry.sizeBytes)) {
            hash.update(chunk);
            yield chunk;
            doneBytes += chunk.length;
            progress.report({ phase: 'capture', done: doneBytes, total: totalBytes, unit: 'bytes' });
          }
          const padding = memberPadding(entry.sizeBytes);
          if (padding.length > 0) yield padding;
        }
        finalEntries.push({ ...entry, sha256: hash.hex() });
      } else {
        finalEntries.push(entry);
      }
      doneEntries += 1;
      progress.report({
        phase: 'capture',
        done: doneBytes,
        total: totalBytes,
        unit: 'bytes',
        counters: { entries: doneEntries },
      });
    }
    const manifest: BundleManifest = { ...manifestBase, entries: finalEntries };
    const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 1)}\n`, 'utf8');
    const manifestHeader = encodeMemberHeader({
      name: MANIFEST_MEMBER_NAME,
      typeFlag: '0',
      mode: 0o600,
      uid: 0,
      gid: 0,
      userName: 'root',
      groupName: 'root',
      sizeBytes: manifestBytes.length,
      mtimeNs: BigInt(Date.now()) * 1_000_000n,
      linkName: '',
      devMajor: 0,
      devMinor: 0,
      xattrs: new Map(),
    });
    const tail = Buffer.concat([manifestHeader, manifestBytes, memberPadding(manifestBytes.length), endOfArchive()]);
    bundleSizeBytes += tail.length;
    yield Buffer.concat([batch.take(), tail]);
  }
  try {
    await pipeline(chunks, createWriteStream(partialPath, { flags: 'wx', mode: 0o600, flush: true }), { signal });
    await rename(partialPath, bundlePath);
  } catch (e) {
    await rm(partialPath, { force: true });
    throw e;
  }
  progress.flush({
    phase: 'capture',
    done: doneBytes,
    total: totalBytes,
    unit: 'bytes',
    counters: { entries: doneEntries },
  });
  log.info(`captured ${finalEntries.length} entries (${doneBytes} bytes of content) into ${bundlePath}`);
  return { entries: finalEntries.length, bytes: doneBytes, bundleSizeBytes, missingOptional, skipped, warnings };
}

async function sourceHostName(root: string): Promise<string> {
  try {
    const text = (await readFile(joinUnder(root, ['etc', 'hostname']), 'utf8')).trim();
    if (text !== '') return text;
  } catch (e) {
    if (!isSystemError(e)) throw e;
  }
  return hostname();
}

function changed(path: string, expectedBytes: number, actualBytes: number): ReimageError {
  return new ReimageError(
    'REIMAGE_RETAIN_FILE_CHANGED',
    `${path} changed size while it was being captured. Stop what writes it (or mount the old root read-only) and capture again.`,
    { evidence: { path, expected: expectedBytes, actual: actualBytes } },
  );
}

/** Streams a large file without following a symlink, failing if it is not exactly the size seen when listed. */
async function* readLargeFile(sourcePath: string, path: string, sizeBytes: number): AsyncGenerator<Buffer> {
  const handle = await open(sourcePath, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    let total = 0;
    for (;;) {
      // A fresh buffer per chunk: the write stream may still hold the previous one.
      const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > sizeBytes) throw changed(path, sizeBytes, total);
      yield buffer.subarray(0, bytesRead);
    }
    if (total !== sizeBytes) throw changed(path, sizeBytes, total);
  } finally {
    await handle.close();
  }
}

/**
 * Reads a small file, without following a symlink, into `target` at `offset`; `target` has room
 * for one byte more than the size, so that one read answers both "is it all there" and "did it
 * grow", where readFileSync would add an fstat and a read that returns 0. A short read of a
 * regular file means its end; it is followed up anyway in case the filesystem returns less.
 */
function readSmallFile(sourcePath: string, path: string, sizeBytes: number, target: Buffer, offset: number): number {
  const fd = openSync(sourcePath, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    let total = 0;
    for (;;) {
      const bytesRead = readSync(fd, target, offset + total, sizeBytes + 1 - total, total);
      total += bytesRead;
      if (bytesRead === 0 || total >= sizeBytes) break;
    }
    if (total !== sizeBytes) throw changed(path, sizeBytes, total);
    return sizeBytes;
  } finally {
    closeSync(fd);
  }
}
