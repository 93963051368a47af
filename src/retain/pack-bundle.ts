import { closeSync, constants, createWriteStream, openSync, readSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { OnProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import type { DescribedEntry } from './describe-entries.ts';
import type { BundleManifest, ManifestEntry } from './manifest.ts';
import { archiveName, MANIFEST_MEMBER_NAME, TYPE_FLAGS } from './manifest.ts';
import { createMemberBatch } from './member-batch.ts';
import { createSha256 } from './sha256.ts';
import { paddedSize } from './tar-header.ts';
import { encodeMemberHeader, endOfArchive, memberPadding, prepareMemberHeader } from './tar-writer.ts';
import { YIELD_EVERY, yieldToEventLoop } from './yield-to-event-loop.ts';

/** Large files stream in chunks of this size. */
const CHUNK_BYTES = 1024 * 1024;
/** Members are packed into buffers of this size; a file that fits in one with its header is read in one call. */
const BATCH_BYTES = 1024 * 1024;

export interface PackedBundle {
  /** The manifest's entries, each file with its SHA-256. */
  readonly entries: ManifestEntry[];
  /** Bytes of file content packed. */
  readonly bytes: number;
  readonly bundleSizeBytes: number;
}

/**
 * Packs the described entries and then the manifest (with every file's digest, taken from the
 * bytes packed) into a pax tar at `bundlePath`. It is written beside, as `.partial`, mode 0600
 * from its creation (it holds private keys), and renamed only once complete: a half-written
 * bundle never carries the final name. A file that changed size since it was listed fails.
 */
export async function packBundle(
  described: readonly DescribedEntry[],
  manifestBase: Omit<BundleManifest, 'entries'>,
  bundlePath: string,
  progress: { readonly report: OnProgress },
  signal?: AbortSignal,
): Promise<PackedBundle> {
  const totalBytes = described.reduce((sum, d) => sum + d.entry.sizeBytes, 0);
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
    for (const source of described) {
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
  return { entries: finalEntries, bytes: doneBytes, bundleSizeBytes };
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
