import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { type TargetInfo, targetBusy } from './block-device.ts';

/** The target opened for writing: an O_DIRECT fd when the target takes it, and a buffered one. */
export interface OpenedTarget {
  /** The fd to write through; opened with O_DIRECT when `direct` is true. */
  readonly handle: FileHandle;
  /** A buffered fd (O_EXCL on a block device) for what O_DIRECT cannot take; same as handle when not direct. */
  readonly bufferedHandle: FileHandle;
  readonly direct: boolean;
  /** `slabBytes` of memory, aligned for O_DIRECT when `direct`. */
  readonly slab: Buffer;
}

/**
 * Opens the target for writing without creating or truncating it. A block device is opened
 * O_EXCL, which the kernel refuses while anything mounts or holds it, and which keeps others
 * from mounting it during the write. O_DIRECT is used when the target and memory alignment allow
 * (no dirty page cache to bound, and measured faster here; see docs/adr/0202). Opening changes
 * nothing on the target (the alignment probe only reads).
 */
export async function openTarget(target: TargetInfo, slabBytes: number): Promise<OpenedTarget> {
  const exclusive = target.kind === 'block-device' ? constants.O_EXCL : 0;
  let bufferedHandle: FileHandle;
  try {
    bufferedHandle = await open(target.realPath, constants.O_RDWR | exclusive);
  } catch (e) {
    if (isSystemError(e) && e.code === 'EBUSY') throw targetBusy(target, ['the kernel reports it busy (EBUSY)']);
    throw new ReimageError(
      'REIMAGE_TARGET_UNREADABLE',
      `Cannot open the target ${target.path} for writing (${isSystemError(e) ? e.code : String(e)}). ${openAdvice(e)}`,
      { evidence: { path: target.path }, cause: e },
    );
  }
  const aligned = pageAlignedBuffer(slabBytes);
  const raw = aligned ?? Buffer.allocUnsafeSlow(slabBytes + PAGE_BYTES);
  let directHandle: FileHandle | undefined;
  try {
    directHandle = await open(target.realPath, constants.O_RDWR | constants.O_DIRECT);
  } catch {
    // tmpfs and some other filesystems refuse O_DIRECT: the page cache path it is.
  }
  if (directHandle !== undefined) {
    const offset = await findAlignedOffset(directHandle, raw, target.directIoAlignmentBytes, aligned !== undefined);
    if (offset !== undefined)
      return { handle: directHandle, bufferedHandle, direct: true, slab: raw.subarray(offset, offset + slabBytes) };
    await directHandle.close();
  }
  return { handle: bufferedHandle, bufferedHandle, direct: false, slab: raw.subarray(0, slabBytes) };
}

/** What to do when the target does not open for writing, by the kernel's reason. */
function openAdvice(e: unknown): string {
  const code = isSystemError(e) ? e.code : '';
  if (code === 'EACCES' || code === 'EPERM') return 'Run reimage as root.';
  if (code === 'EROFS') return 'The device or its filesystem is read-only: make it writable (blockdev --setrw) first.';
  return 'Check that the path names the disk or disk image you mean.';
}

const PAGE_BYTES = 4096;
const WASM_PAGE_BYTES = 64 * 1024;

interface WasmGlobal {
  readonly Memory: new (descriptor: { initial: number }) => { readonly buffer: ArrayBuffer };
}

/**
 * Memory that starts on a page boundary, which every device's O_DIRECT accepts. Node cannot
 * allocate aligned memory, but a WebAssembly memory is mapped page by page, so it starts on one.
 * Probing alignment with a read is not enough on its own: a read of a hole (a sparse file)
 * builds no I/O and passes at any address, then the writes fail with EINVAL.
 */
export function pageAlignedBuffer(bytes: number): Buffer | undefined {
  try {
    // The project's TypeScript libs do not declare WebAssembly; Node has it.
    const wasm = (globalThis as unknown as { WebAssembly?: WasmGlobal }).WebAssembly;
    if (wasm === undefined) return undefined;
    const memory = new wasm.Memory({ initial: Math.ceil(bytes / WASM_PAGE_BYTES) });
    return Buffer.from(memory.buffer, 0, bytes);
  } catch {
    return undefined;
  }
}

/**
 * Node cannot allocate aligned memory, and O_DIRECT needs it. The fallback slab is allocated with
 * a page to spare; a one-page O_DIRECT read (which changes nothing on the target) tells which start
 * offset the kernel accepts. Undefined if none does.
 */
async function findAlignedOffset(
  handle: FileHandle,
  raw: Buffer,
  logicalBlockBytes: number,
  pageAligned: boolean,
): Promise<number | undefined> {
  // Measured: a one-sector read passed at misaligned addresses here, a one-page read does not.
  const probeBytes = Math.min(raw.length, Math.max(PAGE_BYTES, logicalBlockBytes));
  // An already page-aligned slab only needs the one probe that says O_DIRECT reads work at all.
  for (let offset = 0; offset < (pageAligned ? 1 : PAGE_BYTES); offset += 16) {
    try {
      await handle.read(raw, offset, Math.min(probeBytes, raw.length - offset), 0);
      return offset;
    } catch (e) {
      if (!isSystemError(e) || e.code !== 'EINVAL') return undefined;
    }
  }
  return undefined;
}

/** Reads `buffer.length` bytes at `positionBytes` (fewer only at the end of the target); bytes read. */
export async function readAt(handle: FileHandle, buffer: Buffer, positionBytes: number): Promise<number> {
  let got = 0;
  while (got < buffer.length) {
    const { bytesRead } = await handle.read(buffer, got, buffer.length - got, positionBytes + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * The target's first logical block as it is now (the whole target if smaller): what a write that
 * holds LBA 0 back starts its held copy from.
 */
export async function readFirstLogicalBlock(opened: OpenedTarget, target: TargetInfo): Promise<Buffer> {
  const block = Buffer.alloc(Math.min(target.logicalBlockSizeBytes, target.sizeBytes));
  await readAt(opened.bufferedHandle, block, 0);
  return block;
}

/** Writes all of `data` at `positionBytes`. */
export async function writeAt(handle: FileHandle, data: Buffer, positionBytes: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, positionBytes + done);
    if (bytesWritten === 0) throw new Error(`write returned 0 at byte ${positionBytes + done}`);
    done += bytesWritten;
  }
}

/** Flushes every fd of the target (fsync: the device's write cache too), without closing. */
export async function syncTarget(opened: OpenedTarget): Promise<void> {
  await opened.bufferedHandle.sync();
  if (opened.handle !== opened.bufferedHandle) await opened.handle.sync();
}

/** Flushes (fsync) and closes every fd of the target; closes them even when a flush fails. */
export async function closeTarget(opened: OpenedTarget): Promise<void> {
  const handles = new Set([opened.handle, opened.bufferedHandle]);
  let syncError: unknown;
  for (const handle of handles) {
    if (handle.fd === -1) continue;
    // fsync on a block device also flushes the device's write cache. Close whatever happens:
    // a leaked exclusive descriptor would keep the device busy (and a loop device attached).
    try {
      await handle.sync();
    } catch (error) {
      syncError ??= error;
    } finally {
      await handle.close();
    }
  }
  if (syncError !== undefined) throw syncError;
}
