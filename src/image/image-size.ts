import { open, stat } from 'node:fs/promises';
import { runCommand } from '../core/run-command.ts';
import { corrupt } from './decoder.ts';
import type { ImageFormat } from './image-format.ts';

/** What the container says about the decoded size, read without decoding. */
export interface SizeHint {
  /** The exact decoded size, when the container records it for every part. */
  readonly exactBytes?: number;
}

const ZSTD_MAGIC = 0xfd2fb528;
const WINDOW_BYTES = 1024 * 1024;

/** Positional reads through a 1 MiB window, so walking thousands of block headers stays cheap. */
class WindowReader {
  readonly #handle: Awaited<ReturnType<typeof open>>;
  #window = Buffer.alloc(0);
  #windowStart = 0;

  constructor(handle: Awaited<ReturnType<typeof open>>) {
    this.#handle = handle;
  }

  async bytes(position: number, length: number): Promise<Buffer | undefined> {
    const end = position + length;
    if (position < this.#windowStart || end > this.#windowStart + this.#window.length) {
      const buffer = Buffer.alloc(Math.max(WINDOW_BYTES, length));
      const { bytesRead } = await this.#handle.read(buffer, 0, buffer.length, position);
      this.#window = buffer.subarray(0, bytesRead);
      this.#windowStart = position;
      if (bytesRead < length) return undefined;
    }
    return this.#window.subarray(position - this.#windowStart, end - this.#windowStart);
  }
}

/**
 * Sums the Frame_Content_Size of every zstd frame (RFC 8878), walking block headers to find
 * where each frame ends. Undefined when any frame omits its size or the walk goes wrong; the
 * decode itself is the judge of corruption.
 */
async function zstdContentSize(reader: WindowReader, fileSizeBytes: number): Promise<number | undefined> {
  let position = 0;
  let total = 0;
  while (position < fileSizeBytes) {
    const head = await reader.bytes(position, 4);
    if (head === undefined) return undefined;
    const magic = head.readUInt32LE(0);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      const skip = await reader.bytes(position + 4, 4);
      if (skip === undefined) return undefined;
      position += 8 + skip.readUInt32LE(0);
      continue;
    }
    if (magic !== ZSTD_MAGIC) return undefined;
    const fhdBytes = await reader.bytes(position + 4, 1);
    if (fhdBytes === undefined) return undefined;
    const fhd = fhdBytes[0] ?? 0;
    const fcsFlag = fhd >> 6;
    const singleSegment = (fhd >> 5) & 1;
    const hasChecksum = (fhd >> 2) & 1;
    const didBytes = [0, 1, 2, 4][fhd & 3] ?? 0;
    const fcsBytes = fcsFlag === 0 ? singleSegment : ([1, 2, 4, 8][fcsFlag] ?? 0);
    if (fcsBytes === 0) return undefined;
    const fcsAt = position + 5 + (singleSegment ? 0 : 1) + didBytes;
    const fcs = await reader.bytes(fcsAt, fcsBytes);
    if (fcs === undefined) return undefined;
    let size: number;
    if (fcsBytes === 1) size = fcs.readUInt8(0);
    else if (fcsBytes === 2) size = fcs.readUInt16LE(0) + 256;
    else if (fcsBytes === 4) size = fcs.readUInt32LE(0);
    else size = Number(fcs.readBigUInt64LE(0));
    total += size;
    position = fcsAt + fcsBytes;
    for (;;) {
      const blockHeader = await reader.bytes(position, 3);
      if (blockHeader === undefined) return undefined;
      const value = blockHeader.readUIntLE(0, 3);
      const last = value & 1;
      const type = (value >> 1) & 3;
      const blockSize = value >> 3;
      if (type === 3) return undefined;
      // An RLE block stores one byte however many it decodes to.
      position += 3 + (type === 1 ? 1 : blockSize);
      if (last) break;
    }
    position += hasChecksum ? 4 : 0;
  }
  return Number.isSafeInteger(total) ? total : undefined;
}

/** The uncompressed size from the .xz index, via `xz --robot --list` (xz is the decoder anyway). */
async function xzContentSize(path: string): Promise<number | undefined> {
  const result = await runCommand('xz', ['--robot', '--list', path], { allowFailure: true }).catch(() => undefined);
  if (result === undefined || result.exitCode !== 0) return undefined;
  const totals = result.stdout.split('\n').find((line) => line.startsWith('totals\t'));
  const value = totals?.split('\t')[4];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** Reads what the container says about the decoded size, cheaply (no decoding). */
export async function readSizeHint(path: string, format: ImageFormat): Promise<SizeHint> {
  const handle = await open(path, 'r');
  try {
    const fileSizeBytes = (await handle.stat()).size;
    if (format === 'raw') return { exactBytes: fileSizeBytes };
    if (format === 'zstd') {
      const exactBytes = await zstdContentSize(new WindowReader(handle), fileSizeBytes);
      return exactBytes === undefined ? {} : { exactBytes };
    }
    if (format === 'xz') {
      const exactBytes = await xzContentSize(path);
      return exactBytes === undefined ? {} : { exactBytes };
    }
    // gzip's ISIZE is only the last member's size modulo 2^32, and garbage in a truncated
    // file; bzip2 records no size at all. Both get the counting pass.
    return {};
  } finally {
    await handle.close();
  }
}

/**
 * An upper bound on a bzip2 image's decoded size, from `lbzip2 -t -v` (a parallel integrity test:
 * every block CRC and the stream CRC, output discarded, so no pipe, no copy). lbzip2 reports
 * only the ratio ("compression ratio is 1:41.301"), rounded; the bound adds half a unit of its
 * last printed digit. Undefined when the report cannot be read (the caller then counts exactly).
 * A failed test is REIMAGE_IMAGE_CORRUPT: the stream is damaged or truncated.
 */
export async function bzip2SizeBound(path: string, signal?: AbortSignal): Promise<number | undefined> {
  const compressedBytes = (await stat(path)).size;
  const result = await runCommand('lbzip2', ['-t', '-v', '-n2', path], {
    allowFailure: true,
    ...(signal === undefined ? {} : { signal }),
  });
  if (result.exitCode !== 0) {
    const said = result.stderr.trim().split('\n').at(-1) ?? '';
    throw corrupt('bzip2', path, `lbzip2 -t exited with ${result.exitCode}${said ? `: ${said}` : ''}`);
  }
  return parseLbzip2RatioBound(result.stderr, compressedBytes);
}

/** The bound from lbzip2's verbose report. Pure; exported for tests. */
export function parseLbzip2RatioBound(report: string, compressedBytes: number): number | undefined {
  const match = /compression ratio is 1:(\d+)\.(\d+)/.exec(report);
  if (match === null) return undefined;
  const decimals = match[2] ?? '';
  const ratio = Number(`${match[1]}.${decimals}`);
  const halfUnit = 0.5 / 10 ** decimals.length;
  const bound = Math.ceil((ratio + halfUnit) * compressedBytes) + 1;
  return Number.isSafeInteger(bound) ? bound : undefined;
}
