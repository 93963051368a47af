import { readWriteLog, WRITE_LOG_FLAGS, WRITE_LOG_MAGIC, type WriteLog } from '../../src/demo/write-log.ts';

/** One entry of a hand-built blklogwrites log: a write (with its data), a flush, a discard. */
export interface LogRecord {
  readonly sector: number;
  readonly data?: Buffer;
  /** Sector count for entries without data (a discard). */
  readonly sectorCount?: number;
  readonly flags?: number;
}

/**
 * A blklogwrites log as QEMU 7.2 writes it (superblock, then per entry a header sector and its
 * data), built by hand; `superblockEntryCount` undefined leaves the superblock zero (never flushed).
 */
export function buildWriteLog(records: readonly LogRecord[], superblockEntryCount?: number, sectorBytes = 512): Buffer {
  const parts: Buffer[] = [];
  const superblock = Buffer.alloc(sectorBytes);
  if (superblockEntryCount !== undefined) {
    superblock.writeBigUInt64LE(WRITE_LOG_MAGIC, 0);
    superblock.writeBigUInt64LE(1n, 8);
    superblock.writeBigUInt64LE(BigInt(superblockEntryCount), 16);
    superblock.writeUInt32LE(sectorBytes, 24);
  }
  parts.push(superblock);
  for (const record of records) {
    const header = Buffer.alloc(sectorBytes);
    const flags = record.flags ?? 0;
    const sectorCount = record.data === undefined ? (record.sectorCount ?? 0) : record.data.length / sectorBytes;
    header.writeBigUInt64LE(BigInt(record.sector), 0);
    header.writeBigUInt64LE(BigInt(sectorCount), 8);
    header.writeBigUInt64LE(BigInt(flags), 16);
    parts.push(header);
    if ((flags & WRITE_LOG_FLAGS.discard) === 0 && record.data !== undefined) parts.push(record.data);
  }
  return Buffer.concat(parts);
}

export function readWriteLogBuffer(bytes: Buffer): WriteLog {
  return readWriteLog(
    (positionBytes, lengthBytes) => bytes.subarray(positionBytes, positionBytes + lengthBytes),
    bytes.length,
  );
}

/** `count` sectors of one byte value. */
export function sectors(count: number, value: number): Buffer {
  return Buffer.alloc(count * 512, value);
}
