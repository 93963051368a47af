import { createWriteStream } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, createZstdCompress, gunzipSync, constants as zlibConstants, zstdDecompressSync } from 'node:zlib';
import { ReimageError } from '../core/reimage-error.ts';

/** One member of an initramfs archive. */
export interface ArchiveEntry {
  /** Relative path inside the archive, no leading slash, no `.` or `..` components. */
  readonly path: string;
  readonly kind: 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device';
  /** Permission bits including setuid, setgid and sticky (the file-type bits come from `kind`). */
  readonly mode: number;
  /** A host file whose bytes become this file's content. */
  readonly sourcePath?: string;
  /** The content itself, when there is no host file. */
  readonly data?: Uint8Array;
  readonly linkTarget?: string;
  readonly deviceMajor?: number;
  readonly deviceMinor?: number;
}

export type ArchiveCompression = 'zstd' | 'gzip' | 'none';

export interface WriteArchiveOptions {
  /** Default zstd: Debian's kernels have CONFIG_RD_ZSTD=y and it unpacks fastest (docs/adr/0300). */
  readonly compression?: ArchiveCompression;
  /** zstd level (default 6) or gzip level (default 6); docs/adr/0300 has the measurements. */
  readonly level?: number;
  readonly signal?: AbortSignal;
}

const typeBits: Readonly<Record<ArchiveEntry['kind'], number>> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  'char-device': 0o020000,
  'block-device': 0o060000,
};

/** GNU cpio pads its output to whole 512-byte blocks; so do we, to stay byte-compatible with it. */
const blockBytes = 512;
const trailerName = 'TRAILER!!!';

/** An entry after validation, with its parents implied and its place in the sorted order. */
interface NormalizedEntry {
  readonly path: string;
  readonly pathBytes: Buffer;
  readonly entry: ArchiveEntry;
  nlink: number;
}

function invalidPath(path: string, why: string): ReimageError {
  return new ReimageError(
    'REIMAGE_INITRAMFS_ENTRY_INVALID',
    `Archive entry "${path}" is not valid: ${why}. Use a relative path without "." or ".." components.`,
    { evidence: { path } },
  );
}

function checkPath(path: string): void {
  if (path === '') throw invalidPath(path, 'the path is empty');
  if (path.startsWith('/')) throw invalidPath(path, 'it starts with "/"');
  if (path.includes('\0')) throw invalidPath(path, 'it contains a NUL byte');
  for (const component of path.split('/')) {
    if (component === '' || component === '.' || component === '..') {
      throw invalidPath(path, `it has an empty, "." or ".." component`);
    }
  }
}

/**
 * Validates the entries, adds the parent directories nobody listed (mode 0755), sorts them by the
 * bytes of their paths (parents always come first, since a prefix sorts before its extensions) and
 * counts directory links the way a real filesystem does (2 + subdirectories), as `cpio` records them.
 */
export function normalizeArchiveEntries(entries: readonly ArchiveEntry[]): NormalizedEntry[] {
  const byPath = new Map<string, ArchiveEntry>();
  for (const entry of entries) {
    checkPath(entry.path);
    if (byPath.has(entry.path)) {
      throw new ReimageError(
        'REIMAGE_INITRAMFS_ENTRY_DUPLICATE',
        `Archive entry "${entry.path}" is listed twice. List each path once.`,
        { evidence: { path: entry.path } },
      );
    }
    if (entry.kind === 'symlink' && (entry.linkTarget === undefined || entry.linkTarget === '')) {
      throw invalidPath(entry.path, 'a symlink needs a linkTarget');
    }
    if ((entry.kind === 'char-device' || entry.kind === 'block-device') && entry.deviceMajor === undefined) {
      throw invalidPath(entry.path, 'a device needs deviceMajor and deviceMinor');
    }
    byPath.set(entry.path, entry);
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split('/');
    for (let depth = 1; depth < parts.length; depth += 1) {
      const parent = parts.slice(0, depth).join('/');
      const existing = byPath.get(parent);
      if (existing === undefined) {
        byPath.set(parent, { path: parent, kind: 'directory', mode: 0o755 });
      } else if (existing.kind !== 'directory') {
        throw invalidPath(path, `its parent "${parent}" is a ${existing.kind}, not a directory`);
      }
    }
  }
  const normalized: NormalizedEntry[] = [...byPath.values()].map((entry) => ({
    path: entry.path,
    pathBytes: Buffer.from(entry.path, 'utf8'),
    entry,
    nlink: entry.kind === 'directory' ? 2 : 1,
  }));
  const directories = new Map(normalized.filter((n) => n.entry.kind === 'directory').map((n) => [n.path, n]));
  for (const n of normalized) {
    if (n.entry.kind !== 'directory') continue;
    const slash = n.path.lastIndexOf('/');
    if (slash < 0) continue;
    const parent = directories.get(n.path.slice(0, slash));
    if (parent !== undefined) parent.nlink += 1;
  }
  normalized.sort((a, b) => Buffer.compare(a.pathBytes, b.pathBytes));
  return normalized;
}

function hex8(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new ReimageError('REIMAGE_INITRAMFS_ENTRY_INVALID', `Value ${value} does not fit a newc header field.`, {
      evidence: { actual: value },
    });
  }
  return value.toString(16).toUpperCase().padStart(8, '0');
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

interface HeaderFields {
  readonly ino: number;
  readonly mode: number;
  readonly nlink: number;
  readonly fileSizeBytes: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly nameBytes: Buffer;
}

/** The 110-byte "070701" header, the NUL-terminated name and its padding to 4 bytes. */
function newcHeader(fields: HeaderFields): Buffer {
  // uid, gid, mtime, devmajor and devminor are always 0: same inputs, same bytes (reproducible).
  const text = [
    '070701',
    hex8(fields.ino),
    hex8(fields.mode),
    hex8(0),
    hex8(0),
    hex8(fields.nlink),
    hex8(0),
    hex8(fields.fileSizeBytes),
    hex8(0),
    hex8(0),
    hex8(fields.rdevMajor),
    hex8(fields.rdevMinor),
    // The name size counts bytes (not characters) including the NUL; cpio-stream gets this wrong.
    hex8(fields.nameBytes.length + 1),
    hex8(0),
  ].join('');
  const headerLength = text.length + fields.nameBytes.length + 1;
  const out = Buffer.alloc(headerLength + pad4(headerLength));
  out.write(text, 0, 'latin1');
  fields.nameBytes.copy(out, text.length);
  return out;
}

async function entryData(entry: ArchiveEntry): Promise<Uint8Array> {
  switch (entry.kind) {
    case 'file':
      if (entry.data !== undefined) return entry.data;
      if (entry.sourcePath !== undefined) {
        try {
          return await readFile(entry.sourcePath);
        } catch (e) {
          throw new ReimageError(
            'REIMAGE_INITRAMFS_SOURCE_UNREADABLE',
            `Cannot read "${entry.sourcePath}" for archive entry "${entry.path}". Check that it exists and is readable.`,
            { evidence: { path: entry.path, file: entry.sourcePath }, cause: e },
          );
        }
      }
      return new Uint8Array(0);
    case 'symlink':
      return Buffer.from(entry.linkTarget ?? '', 'utf8');
    default:
      return new Uint8Array(0);
  }
}

/**
 * Yields the uncompressed newc stream: headers, data and padding, the trailer, then zeros up to a
 * whole 512-byte block. Byte for byte what `cpio -o -H newc --reproducible` writes for the same
 * tree (checked by test/integration/initramfs/newc-archive.test.ts).
 */
export async function* newcStream(entries: readonly ArchiveEntry[]): AsyncGenerator<Uint8Array> {
  const normalized = normalizeArchiveEntries(entries);
  let offsetBytes = 0;
  let ino = 0;
  for (const n of normalized) {
    const data = await entryData(n.entry);
    const header = newcHeader({
      ino,
      mode: typeBits[n.entry.kind] | (n.entry.mode & 0o7777),
      nlink: n.nlink,
      fileSizeBytes: data.length,
      rdevMajor: n.entry.deviceMajor ?? 0,
      rdevMinor: n.entry.deviceMinor ?? 0,
      nameBytes: n.pathBytes,
    });
    ino += 1;
    yield header;
    if (data.length > 0) yield data;
    const padding = pad4(data.length);
    if (padding > 0) yield Buffer.alloc(padding);
    offsetBytes += header.length + data.length + padding;
  }
  const trailer = newcHeader({
    ino: 0,
    mode: 0,
    nlink: 1,
    fileSizeBytes: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    nameBytes: Buffer.from(trailerName, 'latin1'),
  });
  yield trailer;
  offsetBytes += trailer.length;
  const tail = (blockBytes - (offsetBytes % blockBytes)) % blockBytes;
  if (tail > 0) yield Buffer.alloc(tail);
}

function compressor(compression: ArchiveCompression, level: number | undefined): NodeJS.ReadWriteStream | undefined {
  if (compression === 'zstd') {
    return createZstdCompress({
      params: {
        [zlibConstants.ZSTD_c_compressionLevel]: level ?? 6,
        // A frame checksum lets the kernel's unzstd notice a corrupted copy instead of booting it.
        [zlibConstants.ZSTD_c_checksumFlag]: 1,
      },
    });
  }
  if (compression === 'gzip') return createGzip({ level: level ?? 6 });
  return undefined;
}

/**
 * Writes a newc cpio archive (what the kernel unpacks as an initramfs), compressed. Entries are
 * sorted, owned by 0:0, dated 0, hard-link-free, and parents are implied as directories, so the
 * same entries always give the same bytes. Writes to a temporary file and renames it into place.
 */
export async function writeInitramfsArchive(
  entries: readonly ArchiveEntry[],
  outPath: string,
  options: WriteArchiveOptions = {},
): Promise<{ sizeBytes: number }> {
  const temporaryPath = `${outPath}.tmp-${process.pid}`;
  try {
    const source = Readable.from(newcStream(entries));
    const sink = createWriteStream(temporaryPath, { mode: 0o644 });
    const compress = compressor(options.compression ?? 'zstd', options.level);
    if (compress === undefined) await pipeline(source, sink, { signal: options.signal });
    else await pipeline(source, compress, sink, { signal: options.signal });
    // Durable before it replaces the old file: a boot path must never point at half an initramfs.
    const handle = await open(temporaryPath, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    const { size } = await stat(temporaryPath);
    await rename(temporaryPath, outPath);
    return { sizeBytes: size };
  } catch (e) {
    await rm(temporaryPath, { force: true });
    throw e;
  }
}

/** One member read back from a newc archive. */
export interface NewcMember {
  readonly path: string;
  /** Full st_mode: file-type bits and permissions. */
  readonly mode: number;
  readonly nlink: number;
  readonly sizeBytes: number;
  readonly linkTarget?: string;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  /** The content, for regular files. */
  readonly data: Uint8Array;
}

function corrupt(offsetBytes: number, why: string): ReimageError {
  return new ReimageError(
    'REIMAGE_INITRAMFS_ARCHIVE_CORRUPT',
    `This is not a valid newc cpio archive (${why} at byte ${offsetBytes}). Check that the file is an uncompressed, gzip or zstd initramfs.`,
    { evidence: { offsetBytes } },
  );
}

/** Reads an uncompressed newc archive back (for `reimage initramfs list` and the tests). */
export function listNewcArchive(archive: Uint8Array): NewcMember[] {
  const bytes = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  const members: NewcMember[] = [];
  let at = 0;
  while (at + 110 <= bytes.length) {
    if (bytes.toString('latin1', at, at + 6) !== '070701') throw corrupt(at, 'no "070701" header');
    const field = (index: number): number => {
      const text = bytes.toString('latin1', at + 6 + index * 8, at + 14 + index * 8);
      if (!/^[0-9A-Fa-f]{8}$/.test(text)) throw corrupt(at, `header field ${index} is not hex`);
      return Number.parseInt(text, 16);
    };
    const mode = field(1);
    const nlink = field(4);
    const sizeBytes = field(6);
    const rdevMajor = field(9);
    const rdevMinor = field(10);
    const nameBytes = field(11);
    const nameStart = at + 110;
    const dataStart = nameStart + nameBytes + pad4(110 + nameBytes);
    const dataEnd = dataStart + sizeBytes;
    if (nameBytes < 1 || dataEnd > bytes.length) throw corrupt(at, 'a member runs past the end');
    const path = bytes.toString('utf8', nameStart, nameStart + nameBytes - 1);
    if (path === trailerName) return members;
    const data = bytes.subarray(dataStart, dataEnd);
    const isSymlink = (mode & 0o170000) === 0o120000;
    members.push({
      path,
      mode,
      nlink,
      sizeBytes,
      rdevMajor,
      rdevMinor,
      data,
      ...(isSymlink ? { linkTarget: data.toString('utf8') } : {}),
    });
    at = dataEnd + pad4(sizeBytes);
  }
  throw corrupt(at, 'no TRAILER!!! member');
}

/**
 * Far more than any initramfs we build (a few hundred MiB unpacked): a stream that inflates past
 * it is a decompression bomb or not ours, and must not take the machine's memory with it.
 */
export const MAX_UNPACKED_INITRAMFS_BYTES = 1024 * 1024 * 1024;

/**
 * Lists an initramfs file as `reimage initramfs list` reads it: zstd, gzip or plain newc, told
 * apart by magic bytes. A damaged or truncated stream is a REIMAGE_INITRAMFS_ARCHIVE_CORRUPT like
 * a damaged archive, not zlib's bare Error.
 */
export function listInitramfsFile(
  fileBytes: Uint8Array,
  maxUnpackedBytes = MAX_UNPACKED_INITRAMFS_BYTES,
): NewcMember[] {
  const bytes = Buffer.from(fileBytes.buffer, fileBytes.byteOffset, fileBytes.byteLength);
  const magic = bytes.subarray(0, 4).toString('hex');
  const compression = magic === '28b52ffd' ? 'zstd' : magic.startsWith('1f8b') ? 'gzip' : undefined;
  if (compression === undefined) return listNewcArchive(bytes);
  let plain: Buffer;
  try {
    const options = { maxOutputLength: maxUnpackedBytes };
    plain = compression === 'zstd' ? zstdDecompressSync(bytes, options) : gunzipSync(bytes, options);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new ReimageError(
      'REIMAGE_INITRAMFS_ARCHIVE_CORRUPT',
      `The ${compression} stream of this initramfs is damaged, truncated or unpacks to more than ${maxUnpackedBytes} bytes (${reason}). Rebuild it with "reimage initramfs build".`,
      { evidence: { compression, reason, maxUnpackedBytes }, cause: e },
    );
  }
  return listNewcArchive(plain);
}
