import { ReimageError } from '../core/reimage-error.ts';

// QEMU's blklogwrites log (QEMU's block/blklogwrites.c, its layout taken from Linux's
// drivers/md/dm-log-writes.c; checked against QEMU 7.2 by hexdump of qemu-io's logs). All
// fields little-endian; the log is a run of log sectors:
//   sector 0: superblock { u64 magic 0x6a736677736872, u64 version 1, u64 nr_entries,
//             u32 sectorsize }, zero-padded. QEMU rewrites it after each FLUSH entry (and on
//             close, which flushes; builds with the 2024 changes, Debian's 7.2 among them, also
//             every log-super-update-interval entries), so it may be zeros and nr_entries short.
//   from sector 1: entries, in the order QEMU logged them (a request's completion order). Each is
//             one sector { u64 sector, u64 nr_sectors, u64 flags, u64 data_len } zero-padded, then
//             nr_sectors sectors of the written data, except for DISCARD entries (no data).
//   sector and nr_sectors count log sectors (the log-sector-size option; we use 512). flags:
//   FLUSH 1, FUA 2, DISCARD 4, MARK 8; QEMU refuses any other bit. QEMU writes data_len 0 and
//   never sets FUA itself (a FUA write reaches it as a write and a flush).

export const WRITE_LOG_MAGIC = 0x6a736677736872n;
export const WRITE_LOG_VERSION = 1n;

export const WRITE_LOG_FLAGS = { flush: 1, fua: 2, discard: 4, mark: 8 } as const;
const KNOWN_FLAGS = WRITE_LOG_FLAGS.flush | WRITE_LOG_FLAGS.fua | WRITE_LOG_FLAGS.discard | WRITE_LOG_FLAGS.mark;

/** The superblock's and an entry header's size in bytes (before the zero padding to a sector). */
const SUPERBLOCK_BYTES = 28;
const ENTRY_HEADER_BYTES = 32;

export interface WriteLogEntry {
  /** Its place in the log, from 0. */
  readonly index: number;
  /** The first disk sector it wrote (log sectors). */
  readonly sector: number;
  readonly sectorCount: number;
  readonly flush: boolean;
  readonly fua: boolean;
  readonly discard: boolean;
  readonly mark: boolean;
  /** Where its data starts in the log file; absent for a discard (none logged). */
  readonly dataOffsetBytes: number | undefined;
}

export interface WriteLog {
  readonly sectorSizeBytes: number;
  readonly entries: readonly WriteLogEntry[];
  /** The superblock's nr_entries: the entries QEMU had logged at its last flush (0 without one). */
  readonly superblockEntryCount: number;
}

/** Reads `lengthBytes` at `positionBytes` of the log (fewer only at its end). */
export type ReadAt = (positionBytes: number, lengthBytes: number) => Buffer;

function damaged(what: string, evidence: Record<string, string | number>): ReimageError {
  return new ReimageError(
    'REIMAGE_DEMO_WRITE_LOG_DAMAGED',
    `The blklogwrites log is damaged: ${what}. Record it again (a log is only whole after QEMU has exited).`,
    { evidence },
  );
}

function safeNumber(value: bigint, field: string, offsetBytes: number): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw damaged(`${field} ${value} at byte ${offsetBytes} is beyond any disk`, { field, offsetBytes });
  }
  return Number(value);
}

function isSectorSize(bytes: number): boolean {
  return bytes >= ENTRY_HEADER_BYTES && bytes < 1 << 24 && (bytes & (bytes - 1)) === 0;
}

/**
 * The entries of a blklogwrites log of `sizeBytes` bytes, every one up to the end of the file
 * (QEMU's superblock counts only those up to its last flush). A log never flushed has a zero
 * superblock; its sector size is then `sectorSizeBytes`, the log-sector-size it was recorded with.
 * Refuses (REIMAGE_DEMO_WRITE_LOG_DAMAGED) a wrong magic, version or sector size, unknown flags,
 * an entry or its data cut short, and fewer entries than the superblock counts.
 */
export function readWriteLog(readAt: ReadAt, sizeBytes: number, sectorSizeBytes = 512): WriteLog {
  if (sizeBytes === 0) return { sectorSizeBytes, entries: [], superblockEntryCount: 0 };
  if (sizeBytes < SUPERBLOCK_BYTES) throw damaged(`it has ${sizeBytes} bytes, less than a superblock`, { sizeBytes });
  const superblock = readAt(0, SUPERBLOCK_BYTES);
  let sectorBytes = sectorSizeBytes;
  let superblockEntryCount = 0;
  if (!superblock.every((byte) => byte === 0)) {
    const magic = superblock.readBigUInt64LE(0);
    if (magic !== WRITE_LOG_MAGIC) {
      throw damaged(`its magic is 0x${magic.toString(16)}, not 0x${WRITE_LOG_MAGIC.toString(16)}`, { offsetBytes: 0 });
    }
    const version = superblock.readBigUInt64LE(8);
    if (version !== WRITE_LOG_VERSION) throw damaged(`version ${version} (only 1 is known)`, { offsetBytes: 8 });
    superblockEntryCount = safeNumber(superblock.readBigUInt64LE(16), 'nr_entries', 16);
    sectorBytes = superblock.readUInt32LE(24);
  }
  if (!isSectorSize(sectorBytes)) {
    throw damaged(`its sector size ${sectorBytes} is not a power of two from 32 bytes to 8 MiB`, { offsetBytes: 24 });
  }
  const entries: WriteLogEntry[] = [];
  let positionBytes = sectorBytes;
  while (positionBytes < sizeBytes) {
    const index = entries.length;
    if (positionBytes + sectorBytes > sizeBytes) {
      throw damaged(`entry ${index} at byte ${positionBytes} is cut short by the end of the log`, {
        index,
        offsetBytes: positionBytes,
        sizeBytes,
      });
    }
    const header = readAt(positionBytes, ENTRY_HEADER_BYTES);
    const flagsValue = header.readBigUInt64LE(16);
    if ((flagsValue & ~BigInt(KNOWN_FLAGS)) !== 0n) {
      throw damaged(`entry ${index} at byte ${positionBytes} has unknown flags 0x${flagsValue.toString(16)}`, {
        index,
        offsetBytes: positionBytes,
      });
    }
    const flags = Number(flagsValue);
    const sector = safeNumber(header.readBigUInt64LE(0), 'sector', positionBytes);
    const sectorCount = safeNumber(header.readBigUInt64LE(8), 'nr_sectors', positionBytes + 8);
    const discard = (flags & WRITE_LOG_FLAGS.discard) !== 0;
    const dataOffsetBytes = positionBytes + sectorBytes;
    const dataBytes = discard ? 0 : sectorCount * sectorBytes;
    if (dataOffsetBytes + dataBytes > sizeBytes) {
      throw damaged(
        `the data of entry ${index} (${sectorCount} sectors from byte ${dataOffsetBytes}) runs past the end of the log`,
        {
          index,
          offsetBytes: dataOffsetBytes,
          sizeBytes,
        },
      );
    }
    entries.push({
      index,
      sector,
      sectorCount,
      flush: (flags & WRITE_LOG_FLAGS.flush) !== 0,
      fua: (flags & WRITE_LOG_FLAGS.fua) !== 0,
      discard,
      mark: (flags & WRITE_LOG_FLAGS.mark) !== 0,
      dataOffsetBytes: discard ? undefined : dataOffsetBytes,
    });
    positionBytes = dataOffsetBytes + dataBytes;
  }
  if (entries.length < superblockEntryCount) {
    throw damaged(`its superblock counts ${superblockEntryCount} entries but the log holds ${entries.length}`, {
      superblockEntryCount,
      entries: entries.length,
    });
  }
  return { sectorSizeBytes: sectorBytes, entries, superblockEntryCount };
}

/** Whether an entry changes disk bytes (a write; not a bare flush, a mark or a discard). */
export function isDataWrite(entry: WriteLogEntry): boolean {
  return !entry.discard && !entry.mark && entry.sectorCount > 0;
}
