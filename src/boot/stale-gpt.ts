import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { type ByteRange, readAt } from '../disk/index.ts';

/**
 * An old disk's GPT headers that the new image does not overwrite (docs/adr/0607): an msdos image
 * over a GPT disk, or any image smaller than the disk, leaves the old backup header in the disk's
 * last sector — valid, describing the old layout. A kernel booted with `gpt` (force_gpt) then
 * prefers it over the new msdos table once the primary at LBA 1 is gone (seen under QEMU: "Primary
 * GPT is invalid, using alternate GPT", the new root never appears), and `wipefs`, gdisk and
 * friends report a second table. The armed run wipes such headers after the write and before the
 * commit: from then on nothing needs the old table, and the commit stays the one-sector switch.
 */

const SECTOR_BYTES = 512;
const GPT_SIGNATURE = Buffer.from('EFI PART', 'latin1');

/** Whether a sector holds a GPT header: the signature, a header size GPT allows, its own CRC32. Pure. */
export function isGptHeader(sector: Uint8Array): boolean {
  if (sector.byteLength < SECTOR_BYTES || !Buffer.from(sector.subarray(0, 8)).equals(GPT_SIGNATURE)) return false;
  const bytes = Buffer.from(sector.subarray(0, SECTOR_BYTES));
  const headerBytes = bytes.readUInt32LE(12);
  if (headerBytes < 92 || headerBytes > SECTOR_BYTES) return false;
  const header = Buffer.from(bytes.subarray(0, headerBytes));
  const stored = header.readUInt32LE(16);
  header.writeUInt32LE(0, 16);
  return crc32(header) === stored;
}

function touches(offsetBytes: number, ranges: readonly ByteRange[]): boolean {
  return ranges.some(
    (range) => range.offsetBytes < offsetBytes + SECTOR_BYTES && offsetBytes < range.offsetBytes + range.lengthBytes,
  );
}

/**
 * Where a GPT header the new image leaves behind can be: LBA 1 and the disk's last sector, unless
 * the new image writes them (its own table) or they belong to what must stay (the refuge). Pure.
 */
export function staleGptHeaderOffsets(o: {
  diskSizeBytes: number;
  mapped: readonly ByteRange[];
  keep: readonly ByteRange[];
}): number[] {
  const lastBytes = Math.floor(o.diskSizeBytes / SECTOR_BYTES) * SECTOR_BYTES - SECTOR_BYTES;
  const candidates = [...new Set([SECTOR_BYTES, lastBytes])].filter((at) => at >= SECTOR_BYTES);
  return candidates.filter((at) => !touches(at, o.mapped) && !touches(at, o.keep));
}

/**
 * Zeroes each candidate sector that holds a valid GPT header, then flushes. Idempotent: a second
 * call finds none. Returns the byte offsets it wiped.
 */
export async function wipeStaleGptHeaders(
  disk: FileHandle,
  o: { diskSizeBytes: number; mapped: readonly ByteRange[]; keep: readonly ByteRange[] },
): Promise<number[]> {
  const wiped: number[] = [];
  const sector = Buffer.alloc(SECTOR_BYTES);
  for (const at of staleGptHeaderOffsets(o)) {
    await readAt(disk, sector, at);
    if (!isGptHeader(sector)) continue;
    await disk.write(Buffer.alloc(SECTOR_BYTES), 0, SECTOR_BYTES, at);
    wiped.push(at);
  }
  if (wiped.length > 0) await disk.datasync();
  return wiped;
}
