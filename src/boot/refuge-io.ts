import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { type ByteRange, readAt, writeAt } from '../disk/index.ts';
import { REFUGE_BLOCK_BYTES, type RefugeItemName, roundUpToBlock } from './refuge-layout.ts';

/**
 * Reading and writing refuge items. Arm writes them through the refuge FILE (file offsets, while
 * the old filesystem is mounted); the recovery initramfs, `status` and arm's read-back use the
 * whole disk raw (disk offsets). Every read and write starts and ends on a 4096-byte boundary of
 * the item (the last block padded with zeros), so the raw side stays aligned on the disk; the
 * buffers are at most REFUGE_IO_CHUNK_BYTES, so a multi-gigabyte image streams in bounded memory.
 */
export const REFUGE_IO_CHUNK_BYTES = 1024 * 1024;

/** What the raw I/O needs of an item: a header item (RefugeHeaderItem) is one. */
export interface RefugeItemRanges {
  readonly name: RefugeItemName;
  readonly sizeBytes: number;
  /** Disk coordinates, in file order, covering sizeBytes rounded up to 4096. */
  readonly ranges: readonly ByteRange[];
}

/** Data to write: bytes in memory, or a stream of chunks (a file's read stream) for the image. */
export type RefugeItemData = Uint8Array | AsyncIterable<Uint8Array>;

function layoutInvalid(what: string, evidence: Record<string, string | number>): ReimageError {
  return new ReimageError('REIMAGE_REFUGE_LAYOUT_INVALID', `${what}. This is a bug in the caller.`, { evidence });
}

/** Refuses ranges that are not whole blocks or do not cover the size (before any byte moves). */
export function checkItemRanges(
  name: string,
  sizeBytes: number,
  ranges: readonly ByteRange[],
  alignedOffsets: boolean,
): void {
  for (const [index, range] of ranges.entries()) {
    const whole = Number.isSafeInteger(range.offsetBytes) && range.offsetBytes >= 0;
    if (
      !whole ||
      (alignedOffsets && range.offsetBytes % REFUGE_BLOCK_BYTES !== 0) ||
      !Number.isSafeInteger(range.lengthBytes) ||
      range.lengthBytes <= 0 ||
      range.lengthBytes % REFUGE_BLOCK_BYTES !== 0
    ) {
      throw layoutInvalid(`Range ${index} of the refuge item ${name} is not whole 4096-byte blocks`, {
        field: `${name}.ranges[${index}]`,
        offsetBytes: range.offsetBytes,
        lengthBytes: range.lengthBytes,
      });
    }
  }
  const coveredBytes = ranges.reduce((sum, range) => sum + range.lengthBytes, 0);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || coveredBytes !== roundUpToBlock(sizeBytes)) {
    throw layoutInvalid(
      `The ranges of the refuge item ${name} cover ${coveredBytes} bytes, not its ${sizeBytes} bytes rounded up to 4096`,
      { field: name, expected: roundUpToBlock(sizeBytes), actual: coveredBytes },
    );
  }
}

/** The places (target offsets) of the item's logical bytes [fromBytes, fromBytes + lengthBytes), in order. */
function* locate(
  ranges: readonly ByteRange[],
  fromBytes: number,
  lengthBytes: number,
): Generator<{ readonly offsetBytes: number; readonly lengthBytes: number; readonly logicalBytes: number }> {
  let rangeStart = 0;
  const endBytes = fromBytes + lengthBytes;
  for (const range of ranges) {
    const rangeEnd = rangeStart + range.lengthBytes;
    const from = Math.max(fromBytes, rangeStart);
    const to = Math.min(endBytes, rangeEnd);
    if (from < to) {
      yield { offsetBytes: range.offsetBytes + (from - rangeStart), lengthBytes: to - from, logicalBytes: from };
    }
    if (rangeEnd >= endBytes) return;
    rangeStart = rangeEnd;
  }
  throw new Error(`${endBytes - Math.max(fromBytes, rangeStart)} bytes lie past the item's ranges`);
}

async function* chunksOf(data: RefugeItemData): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    for (let at = 0; at < data.byteLength; at += REFUGE_IO_CHUNK_BYTES) {
      yield data.subarray(at, at + REFUGE_IO_CHUNK_BYTES);
    }
  } else {
    yield* data;
  }
}

function writeFailed(name: string, where: string, e: unknown): ReimageError {
  return new ReimageError(
    'REIMAGE_REFUGE_WRITE_FAILED',
    `Writing the refuge item ${name} failed at ${where} (${isSystemError(e) ? e.code : String(e)}). Check the disk (dmesg) and try again.`,
    { evidence: { item: name, where }, cause: e },
  );
}

/**
 * Writes exactly `sizeBytes` of `data` at the item's logical offset `startBytes` (a multiple of
 * 4096) through `ranges` (target coordinates), in whole blocks: the last block is padded with zeros.
 */
export async function writeLogical(
  handle: FileHandle,
  name: string,
  ranges: readonly ByteRange[],
  startBytes: number,
  data: RefugeItemData,
  sizeBytes: number,
): Promise<void> {
  if (data instanceof Uint8Array && data.byteLength !== sizeBytes) {
    // Refused before a byte is written (a stream can only be counted as it goes).
    throw layoutInvalid(
      `The data for the refuge item ${name} is ${data.byteLength} bytes; it was placed for ${sizeBytes}`,
      {
        field: name,
        expected: sizeBytes,
        actual: data.byteLength,
      },
    );
  }
  const staging = Buffer.alloc(REFUGE_IO_CHUNK_BYTES);
  let filled = 0;
  let logicalBytes = startBytes;
  let receivedBytes = 0;
  const flush = async (bytes: number): Promise<void> => {
    for (const place of locate(ranges, logicalBytes, bytes)) {
      const from = place.logicalBytes - logicalBytes;
      try {
        await writeAt(handle, staging.subarray(from, from + place.lengthBytes), place.offsetBytes);
      } catch (e) {
        throw writeFailed(name, `byte ${place.offsetBytes}`, e);
      }
    }
    logicalBytes += bytes;
    filled = 0;
  };
  for await (const chunk of chunksOf(data)) {
    receivedBytes += chunk.byteLength;
    if (receivedBytes > sizeBytes) break;
    let at = 0;
    while (at < chunk.byteLength) {
      const take = Math.min(chunk.byteLength - at, staging.length - filled);
      staging.set(chunk.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (filled === staging.length) await flush(filled);
    }
  }
  if (receivedBytes !== sizeBytes) {
    const got = receivedBytes > sizeBytes ? `more than ${sizeBytes}` : `${receivedBytes}`;
    throw layoutInvalid(`The data for the refuge item ${name} is ${got} bytes; it was placed for ${sizeBytes}`, {
      field: name,
      expected: sizeBytes,
      actual: receivedBytes,
    });
  }
  const paddedBytes = roundUpToBlock(filled);
  staging.fill(0, filled, paddedBytes);
  if (paddedBytes > 0) await flush(paddedBytes);
}

async function dataSync(disk: FileHandle, name: string): Promise<void> {
  try {
    await disk.datasync();
  } catch (e) {
    throw writeFailed(name, 'the flush (fdatasync)', e);
  }
}

/**
 * Reads the item's logical bytes [fromBytes, fromBytes + lengthBytes) raw, in chunks of at most
 * `chunkBytes` (each a fresh buffer, so a consumer may keep it). Reads whole blocks; the chunks
 * hold exactly the bytes asked for.
 */
export async function* readLogicalChunks(
  disk: FileHandle,
  name: string,
  ranges: readonly ByteRange[],
  fromBytes: number,
  lengthBytes: number,
  chunkBytes = REFUGE_IO_CHUNK_BYTES,
): AsyncGenerator<Buffer> {
  let doneBytes = 0;
  const paddedBytes = roundUpToBlock(lengthBytes);
  while (doneBytes < lengthBytes) {
    const stepBytes = Math.min(chunkBytes, paddedBytes - doneBytes);
    const chunk = Buffer.allocUnsafe(stepBytes);
    for (const place of locate(ranges, fromBytes + doneBytes, stepBytes)) {
      const into = chunk.subarray(place.logicalBytes - fromBytes - doneBytes).subarray(0, place.lengthBytes);
      let gotBytes: number;
      try {
        gotBytes = await readAt(disk, into, place.offsetBytes);
      } catch (e) {
        throw new ReimageError(
          'REIMAGE_REFUGE_UNREADABLE',
          `Reading the refuge item ${name} at byte ${place.offsetBytes} failed (${isSystemError(e) ? e.code : String(e)}).`,
          { evidence: { item: name, offsetBytes: place.offsetBytes }, cause: e },
        );
      }
      if (gotBytes !== place.lengthBytes) {
        throw new ReimageError(
          'REIMAGE_REFUGE_UNREADABLE',
          `The refuge item ${name} lies past the end of the disk (byte ${place.offsetBytes + gotBytes}): this is not the disk the refuge was made on, or its header is wrong.`,
          { evidence: { item: name, offsetBytes: place.offsetBytes, lengthBytes: place.lengthBytes, gotBytes } },
        );
      }
    }
    const keepBytes = Math.min(stepBytes, lengthBytes - doneBytes);
    doneBytes += stepBytes;
    yield keepBytes === stepBytes ? chunk : chunk.subarray(0, keepBytes);
  }
}

/**
 * Writes an item through the refuge file at the file offsets its extents give, the last block
 * padded with zeros. No flush: arm fsyncs the file once everything is written.
 */
export async function writeItemThroughFile(
  file: FileHandle,
  item: {
    readonly name: RefugeItemName;
    readonly sizeBytes: number;
    readonly extents: readonly { fileOffsetBytes: number; lengthBytes: number }[];
  },
  data: RefugeItemData,
): Promise<void> {
  const ranges = item.extents.map((e) => ({ offsetBytes: e.fileOffsetBytes, lengthBytes: e.lengthBytes }));
  // File offsets follow the partition's start, which an old msdos disk may not align to 4096.
  checkItemRanges(item.name, item.sizeBytes, ranges, false);
  await writeLogical(file, item.name, ranges, 0, data, item.sizeBytes);
}

/** The item's bytes, read raw (whole in memory: for the small items; see readItemChunksRaw). */
export async function readItemRaw(disk: FileHandle, item: RefugeItemRanges): Promise<Buffer> {
  checkItemRanges(item.name, item.sizeBytes, item.ranges, true);
  const chunks: Buffer[] = [];
  for await (const chunk of readLogicalChunks(disk, item.name, item.ranges, 0, item.sizeBytes)) chunks.push(chunk);
  return Buffer.concat(chunks, item.sizeBytes);
}

/** The item's bytes, read raw as a stream of chunks of at most REFUGE_IO_CHUNK_BYTES (the image). */
export function readItemChunksRaw(disk: FileHandle, item: RefugeItemRanges): AsyncGenerator<Buffer> {
  checkItemRanges(item.name, item.sizeBytes, item.ranges, true);
  return readLogicalChunks(disk, item.name, item.ranges, 0, item.sizeBytes);
}

/** SHA-256 (hex) of the item's bytes, read raw and streamed. */
export async function sha256ItemRaw(disk: FileHandle, item: RefugeItemRanges): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of readItemChunksRaw(disk, item)) hash.update(chunk);
  return hash.digest('hex');
}

/** Writes the item raw on the whole disk (the last block padded with zeros), then fdatasync. */
export async function writeItemRaw(disk: FileHandle, item: RefugeItemRanges, data: RefugeItemData): Promise<void> {
  checkItemRanges(item.name, item.sizeBytes, item.ranges, true);
  await writeLogical(disk, item.name, item.ranges, 0, data, item.sizeBytes);
  await dataSync(disk, item.name);
}

/** Zeros over every range of the item, then fdatasync: after it, the item's bytes are gone from the disk. */
export async function wipeItemRaw(disk: FileHandle, item: RefugeItemRanges): Promise<void> {
  checkItemRanges(item.name, item.sizeBytes, item.ranges, true);
  const zeros = Buffer.alloc(REFUGE_IO_CHUNK_BYTES);
  for (const range of item.ranges) {
    for (let at = 0; at < range.lengthBytes; at += zeros.length) {
      const offsetBytes = range.offsetBytes + at;
      try {
        await writeAt(disk, zeros.subarray(0, Math.min(zeros.length, range.lengthBytes - at)), offsetBytes);
      } catch (e) {
        throw writeFailed(item.name, `byte ${offsetBytes} (wipe)`, e);
      }
    }
  }
  await dataSync(disk, item.name);
}
