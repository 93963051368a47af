import { existsSync } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import { hostPathChain } from './host-path-chain.ts';

/** What the dynamic loader needs to know about one ELF object. */
export interface ElfDynamicInfo {
  /** PT_INTERP: the program interpreter (dynamic loader), for executables. */
  readonly interpreter: string | undefined;
  /** DT_NEEDED entries, in order. */
  readonly needed: readonly string[];
  readonly rpath: readonly string[];
  readonly runpath: readonly string[];
}

/** Where Debian's loader looks when RUNPATH and RPATH do not say (its ld.so.cache holds these). */
export const DEFAULT_LIBRARY_DIRS: readonly string[] = [
  '/lib/x86_64-linux-gnu',
  '/usr/lib/x86_64-linux-gnu',
  '/lib64',
  '/usr/lib64',
  '/lib',
  '/usr/lib',
  '/usr/local/lib',
];

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;
const DT_STRSZ = 10n;
const DT_RPATH = 15n;
const DT_RUNPATH = 29n;

function notElf(path: string, why: string): ReimageError {
  return new ReimageError(
    'REIMAGE_INITRAMFS_NOT_ELF',
    `"${path}" is not a 64-bit little-endian ELF binary (${why}); the initramfs carries only such binaries and busybox. Give the path of a compiled program.`,
    { evidence: { path } },
  );
}

async function readAt(handle: FileHandle, offsetBytes: number, lengthBytes: number): Promise<Buffer> {
  const buffer = Buffer.alloc(lengthBytes);
  const { bytesRead } = await handle.read(buffer, 0, lengthBytes, offsetBytes);
  return buffer.subarray(0, bytesRead);
}

function cString(buffer: Buffer, offset: number): string {
  const end = buffer.indexOf(0, offset);
  return buffer.toString('utf8', offset, end < 0 ? buffer.length : end);
}

/**
 * Reads PT_INTERP and the dynamic section straight from the file, as the loader does; nothing is
 * executed (ldd runs the binary's loader, which we must not do for a foreign or hostile file).
 */
export async function readElfDynamicInfo(path: string): Promise<ElfDynamicInfo> {
  const handle = await open(path, 'r');
  try {
    const header = await readAt(handle, 0, 64);
    if (header.length < 64 || header.readUInt32BE(0) !== 0x7f454c46) throw notElf(path, 'no ELF magic');
    if (header[4] !== 2) throw notElf(path, 'not ELFCLASS64');
    if (header[5] !== 1) throw notElf(path, 'not little-endian');
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = await readAt(handle, phoff, phentsize * phnum);
    const loads: { vaddr: bigint; offset: bigint; fileSize: bigint }[] = [];
    let interpreter: string | undefined;
    let dynamic: { offset: number; sizeBytes: number } | undefined;
    for (let i = 0; i < phnum; i += 1) {
      const base = i * phentsize;
      if (base + 56 > table.length) throw notElf(path, 'truncated program headers');
      const type = table.readUInt32LE(base);
      const offset = table.readBigUInt64LE(base + 8);
      const vaddr = table.readBigUInt64LE(base + 16);
      const fileSize = table.readBigUInt64LE(base + 32);
      if (type === PT_LOAD) loads.push({ vaddr, offset, fileSize });
      if (type === PT_INTERP) interpreter = cString(await readAt(handle, Number(offset), Number(fileSize)), 0);
      if (type === PT_DYNAMIC) dynamic = { offset: Number(offset), sizeBytes: Number(fileSize) };
    }
    if (dynamic === undefined) return { interpreter, needed: [], rpath: [], runpath: [] };

    const entries = await readAt(handle, dynamic.offset, dynamic.sizeBytes);
    const neededOffsets: bigint[] = [];
    const rpathOffsets: bigint[] = [];
    const runpathOffsets: bigint[] = [];
    let strtabVaddr: bigint | undefined;
    let strtabSizeBytes = 0n;
    for (let at = 0; at + 16 <= entries.length; at += 16) {
      const tag = entries.readBigInt64LE(at);
      const value = entries.readBigUInt64LE(at + 8);
      if (tag === DT_NULL) break;
      if (tag === DT_NEEDED) neededOffsets.push(value);
      else if (tag === DT_RPATH) rpathOffsets.push(value);
      else if (tag === DT_RUNPATH) runpathOffsets.push(value);
      else if (tag === DT_STRTAB) strtabVaddr = value;
      else if (tag === DT_STRSZ) strtabSizeBytes = value;
    }
    if (strtabVaddr === undefined) return { interpreter, needed: [], rpath: [], runpath: [] };
    // DT_STRTAB is an address in memory; the PT_LOAD segment that maps it gives its file offset.
    const vaddr = strtabVaddr;
    const load = loads.find((l) => vaddr >= l.vaddr && vaddr < l.vaddr + l.fileSize);
    if (load === undefined) throw notElf(path, 'its string table is not in any loaded segment');
    const strtab = await readAt(handle, Number(vaddr - load.vaddr + load.offset), Number(strtabSizeBytes));
    const strings = (offsets: bigint[]): string[] => offsets.map((o) => cString(strtab, Number(o)));
    const splitPath = (offsets: bigint[]): string[] =>
      strings(offsets)
        .flatMap((value) => value.split(':'))
        .filter((dir) => dir !== '');
    return {
      interpreter,
      needed: strings(neededOffsets),
      rpath: splitPath(rpathOffsets),
      runpath: splitPath(runpathOffsets),
    };
  } finally {
    await handle.close();
  }
}

function expandOrigin(dir: string, originDir: string): string {
  return dir.replaceAll(/\$(ORIGIN|\{ORIGIN\})/g, originDir);
}

/**
 * The shared libraries and the dynamic loader that `binaryPath` needs, recursively, found the
 * way Debian's loader finds them (RPATH unless RUNPATH is set, then the standard library
 * directories), as host paths: every symlink on the way (kept as a symlink) and the file it ends
 * at, so that the same names resolve inside the initramfs. The binary itself is not listed.
 * A static binary gives an empty list.
 */
export async function sharedLibraryClosure(
  binaryPath: string,
  libraryDirs: readonly string[] = DEFAULT_LIBRARY_DIRS,
): Promise<string[]> {
  const result = new Set<string>();
  const visited = new Set<string>();
  const missing: string[] = [];

  const addChain = async (path: string): Promise<string> => {
    const chain = await hostPathChain(path);
    for (const link of chain) result.add(link.path);
    const last = chain[chain.length - 1];
    return last === undefined ? path : last.path;
  };

  const visit = async (objectPath: string, inheritedRpath: readonly string[]): Promise<void> => {
    const realPath = await realpath(objectPath);
    if (visited.has(realPath)) return;
    visited.add(realPath);
    const info = await readElfDynamicInfo(realPath);
    const originDir = dirname(realPath);
    if (info.interpreter !== undefined) {
      const loader = await addChain(info.interpreter);
      await visit(loader, []);
    }
    const rpath =
      info.runpath.length > 0 ? [] : [...info.rpath.map((d) => expandOrigin(d, originDir)), ...inheritedRpath];
    const runpath = info.runpath.map((d) => expandOrigin(d, originDir));
    for (const name of info.needed) {
      let found: string | undefined;
      if (name.includes('/')) {
        found = existsSync(name) ? name : undefined;
      } else {
        for (const dir of [...rpath, ...runpath, ...libraryDirs]) {
          const candidate = join(dir, name);
          if (existsSync(candidate)) {
            found = candidate;
            break;
          }
        }
      }
      if (found === undefined) {
        missing.push(`${name} (needed by ${objectPath})`);
        continue;
      }
      const libraryPath = await addChain(found);
      await visit(libraryPath, rpath);
    }
  };

  await visit(binaryPath, []);
  if (missing.length > 0) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_LIBRARY_MISSING',
      `Shared libraries needed by "${binaryPath}" are not on this machine: ${missing.join(', ')}. Install the packages that provide them.`,
      { evidence: { path: binaryPath, missing } },
    );
  }
  return [...result].sort();
}
