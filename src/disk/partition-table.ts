import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { ReimageError } from '../core/reimage-error.ts';
import type { ByteRange } from './byte-range.ts';

/**
 * A partition table read from a disk's or an image's own bytes, never from a kernel's view: the
 * armed write needs the NEW image's partitions while the disk still holds the old table (DESIGN:
 * "partition offsets from a partition table held in memory" belong to disk/).
 */
export const TABLE_SECTOR_BYTES = 512;

/**
 * What names one disk whatever the kernel calls it (issue 9: the recovery initramfs finds its disk
 * by identity, never by a device name alone): the msdos disk signature (the 32-bit little-endian
 * word at LBA 0 offset 440, as `sfdisk --disk-id` prints it) or the GPT disk GUID (header offset 56).
 */
export type DiskIdentity =
  | { readonly scheme: 'msdos'; readonly signature: number }
  | { readonly scheme: 'gpt'; readonly diskGuid: string };

/** Where the msdos disk signature lies in LBA 0. */
export const MSDOS_SIGNATURE_OFFSET_BYTES = 440;
/** Where the disk GUID lies in the GPT header (LBA 1). */
const GPT_DISK_GUID_OFFSET_BYTES = 56;

export interface TablePartition {
  /** 1-based: msdos slots 1-4, GPT entry index + 1 (as the kernel names them). */
  readonly number: number;
  readonly startBytes: number;
  readonly sizeBytes: number;
  /** msdos: the type byte as two hex digits ("83"); GPT: the type GUID, lower case. */
  readonly type: string;
  /** An msdos extended partition: a container of logical partitions, not a filesystem. */
  readonly extended: boolean;
}

export interface PartitionTable {
  readonly kind: 'msdos' | 'gpt';
  /** The disk's identity as its table records it (its scheme is always `kind`). */
  readonly identity: DiskIdentity;
  readonly partitions: readonly TablePartition[];
  /** LBA 0 and, for GPT, the primary header and entries: mapped even if a partition claims them. */
  readonly primaryRange: ByteRange;
  /** GPT only: the backup entries and backup header at the disk's end. */
  readonly backupRange?: ByteRange;
  /**
   * msdos with an extended partition, once readPartitionTable followed its chain: the sectors of
   * its extended boot records (each names one logical partition and the next record).
   */
  readonly extendedRecords?: readonly ByteRange[];
}

/** How many bytes of the image's start `parsePartitionTable` needs: LBA 0, the GPT header and 128 entries. */
export const TABLE_HEAD_BYTES = TABLE_SECTOR_BYTES * 34;

const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
const GPT_PROTECTIVE_TYPE = 0xee;

function invalid(what: string, evidence: Record<string, string | number> = {}): ReimageError {
  return new ReimageError(
    'REIMAGE_BOOT_IMAGE_TABLE_INVALID',
    `The new image's partition table cannot be used to map it: ${what}. Check the image (sfdisk -d) or rebuild it with an msdos or GPT table.`,
    { evidence },
  );
}

/** Mixed-endian GUID text as GPT stores it (the first three fields little-endian). */
function guidText(bytes: Uint8Array): string {
  const hex = (from: number, to: number, reverse: boolean): string => {
    const part = [...bytes.subarray(from, to)];
    if (reverse) part.reverse();
    return part.map((byte) => byte.toString(16).padStart(2, '0')).join('');
  };
  return [hex(0, 4, true), hex(4, 6, true), hex(6, 8, true), hex(8, 10, false), hex(10, 16, false)].join('-');
}

function checkInside(partition: TablePartition, imageSizeBytes: number): void {
  if (partition.startBytes + partition.sizeBytes > imageSizeBytes) {
    throw invalid(`partition ${partition.number} ends past the image's end`, {
      partition: partition.number,
      endBytes: partition.startBytes + partition.sizeBytes,
      imageSizeBytes,
    });
  }
}

function parseGpt(head: Uint8Array, imageSizeBytes: number): PartitionTable {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const headerAt = TABLE_SECTOR_BYTES;
  if (Buffer.from(head.subarray(headerAt, headerAt + 8)).toString('latin1') !== 'EFI PART') {
    throw invalid('the protective MBR announces a GPT but LBA 1 holds no "EFI PART" header');
  }
  const headerSizeBytes = view.getUint32(headerAt + 12, true);
  if (headerSizeBytes < 92 || headerSizeBytes > TABLE_SECTOR_BYTES) {
    throw invalid('the GPT header size is out of range', { headerSizeBytes });
  }
  // The header's CRC is computed with its own field zeroed; a bad one means a damaged table.
  const header = Buffer.from(head.subarray(headerAt, headerAt + headerSizeBytes));
  const storedHeaderCrc = header.readUInt32LE(16);
  header.writeUInt32LE(0, 16);
  if (crc32(header) !== storedHeaderCrc) throw invalid('the GPT header CRC does not match');
  const alternateLba = Number(view.getBigUint64(headerAt + 32, true));
  const entriesLba = Number(view.getBigUint64(headerAt + 72, true));
  const entryCount = view.getUint32(headerAt + 80, true);
  const entrySizeBytes = view.getUint32(headerAt + 84, true);
  const storedEntriesCrc = view.getUint32(headerAt + 88, true);
  if (entrySizeBytes < 128 || entrySizeBytes % 8 !== 0)
    throw invalid('the GPT entry size is not usable', { entrySizeBytes });
  const entriesBytes = entryCount * entrySizeBytes;
  const entriesAt = entriesLba * TABLE_SECTOR_BYTES;
  if (entriesAt + entriesBytes > head.byteLength) {
    throw invalid('the GPT entries lie past the first 34 sectors', { entriesLba, entryCount, entrySizeBytes });
  }
  const entries = head.subarray(entriesAt, entriesAt + entriesBytes);
  if (crc32(entries) !== storedEntriesCrc) throw invalid('the GPT entries CRC does not match');
  const partitions: TablePartition[] = [];
  for (let index = 0; index < entryCount; index++) {
    const entry = entries.subarray(index * entrySizeBytes, (index + 1) * entrySizeBytes);
    if (entry.subarray(0, 16).every((byte) => byte === 0)) continue;
    const entryView = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
    const firstLba = Number(entryView.getBigUint64(32, true));
    const lastLba = Number(entryView.getBigUint64(40, true));
    if (lastLba < firstLba) throw invalid(`GPT entry ${index + 1} ends before it starts`, { partition: index + 1 });
    const partition: TablePartition = {
      number: index + 1,
      startBytes: firstLba * TABLE_SECTOR_BYTES,
      sizeBytes: (lastLba - firstLba + 1) * TABLE_SECTOR_BYTES,
      type: guidText(entry.subarray(0, 16)),
      extended: false,
    };
    checkInside(partition, imageSizeBytes);
    partitions.push(partition);
  }
  const entrySectors = Math.ceil(entriesBytes / TABLE_SECTOR_BYTES);
  const backupStartLba = alternateLba - entrySectors;
  if (backupStartLba < 2 || (alternateLba + 1) * TABLE_SECTOR_BYTES > imageSizeBytes) {
    throw invalid("the GPT backup header lies outside the image (was the image's end cut off?)", { alternateLba });
  }
  const guidAt = headerAt + GPT_DISK_GUID_OFFSET_BYTES;
  return {
    kind: 'gpt',
    identity: { scheme: 'gpt', diskGuid: guidText(head.subarray(guidAt, guidAt + 16)) },
    partitions,
    primaryRange: { offsetBytes: 0, lengthBytes: entriesAt + entrySectors * TABLE_SECTOR_BYTES },
    backupRange: {
      offsetBytes: backupStartLba * TABLE_SECTOR_BYTES,
      lengthBytes: (entrySectors + 1) * TABLE_SECTOR_BYTES,
    },
  };
}

/**
 * Parses the msdos table or the GPT of an image from its first `TABLE_HEAD_BYTES` (512-byte
 * sectors). Logical partitions inside an msdos extended partition are not followed: the
 * extended partition is reported whole, as a container, so its EBRs and everything in it stay
 * mapped. Pure.
 */
export function parsePartitionTable(head: Uint8Array, imageSizeBytes: number): PartitionTable {
  if (head.byteLength < TABLE_SECTOR_BYTES || head[510] !== 0x55 || head[511] !== 0xaa) {
    throw invalid('LBA 0 has no boot signature 55 aa, so there is no msdos table or protective MBR');
  }
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const slots = [0, 1, 2, 3].map((slot) => {
    const at = 446 + slot * 16;
    return { type: head[at + 4] ?? 0, startLba: view.getUint32(at + 8, true), sectors: view.getUint32(at + 12, true) };
  });
  if (slots.some((slot) => slot.type === GPT_PROTECTIVE_TYPE)) return parseGpt(head, imageSizeBytes);
  const partitions: TablePartition[] = [];
  slots.forEach((slot, index) => {
    if (slot.type === 0 || slot.sectors === 0) return;
    const partition: TablePartition = {
      number: index + 1,
      startBytes: slot.startLba * TABLE_SECTOR_BYTES,
      sizeBytes: slot.sectors * TABLE_SECTOR_BYTES,
      type: slot.type.toString(16).padStart(2, '0'),
      extended: EXTENDED_TYPES.has(slot.type),
    };
    checkInside(partition, imageSizeBytes);
    partitions.push(partition);
  });
  return {
    kind: 'msdos',
    identity: { scheme: 'msdos', signature: view.getUint32(MSDOS_SIGNATURE_OFFSET_BYTES, true) },
    partitions,
    primaryRange: { offsetBytes: 0, lengthBytes: TABLE_SECTOR_BYTES },
  };
}

/** Logical partitions this code follows at most; a longer chain is refused, not cut short. */
const MAX_LOGICAL_PARTITIONS = 128;

/**
 * One extended boot record (EBR): its first entry is a logical partition (start relative to this
 * record), its second the next record (start relative to the extended partition), or nothing.
 * Undefined when the sector has no 55 aa signature. Pure.
 */
export function parseExtendedRecord(sector: Uint8Array):
  | {
      logical?: { startLbaRelative: number; sectors: number; type: number };
      nextLbaRelative?: number;
    }
  | undefined {
  if (sector.byteLength < TABLE_SECTOR_BYTES || sector[510] !== 0x55 || sector[511] !== 0xaa) return undefined;
  const view = new DataView(sector.buffer, sector.byteOffset, sector.byteLength);
  const entry = (slot: number) => ({
    type: sector[446 + slot * 16 + 4] ?? 0,
    startLba: view.getUint32(446 + slot * 16 + 8, true),
    sectors: view.getUint32(446 + slot * 16 + 12, true),
  });
  const first = entry(0);
  const second = entry(1);
  return {
    ...(first.type !== 0 && first.sectors > 0
      ? { logical: { startLbaRelative: first.startLba, sectors: first.sectors, type: first.type } }
      : {}),
    ...(second.type !== 0 && EXTENDED_TYPES.has(second.type) ? { nextLbaRelative: second.startLba } : {}),
  };
}

/**
 * The table of a disk or image file, read from its own bytes: LBA 0 and the GPT (parsePartitionTable)
 * and, for msdos, the logical partitions of its extended partition, numbered from 5 as the kernel
 * numbers them. Reads only; a broken chain (a record without its signature, one outside the
 * extended partition, a loop) is refused rather than half-read.
 */
export async function readPartitionTable(handle: FileHandle, sizeBytes: number): Promise<PartitionTable> {
  const head = Buffer.alloc(Math.min(TABLE_HEAD_BYTES, sizeBytes));
  await handle.read(head, 0, head.length, 0);
  const table = parsePartitionTable(head, sizeBytes);
  const extended = table.partitions.find((partition) => partition.extended);
  if (table.kind !== 'msdos' || extended === undefined) return table;
  const extendedLba = extended.startBytes / TABLE_SECTOR_BYTES;
  const logical: TablePartition[] = [];
  const records: ByteRange[] = [];
  const seen = new Set<number>();
  let recordLba: number | undefined = extendedLba;
  while (recordLba !== undefined) {
    if (seen.has(recordLba) || logical.length >= MAX_LOGICAL_PARTITIONS) {
      throw invalid('the chain of logical partitions loops or is too long', { recordLba });
    }
    seen.add(recordLba);
    const recordBytes = recordLba * TABLE_SECTOR_BYTES;
    if (recordBytes < extended.startBytes || recordBytes >= extended.startBytes + extended.sizeBytes) {
      throw invalid('an extended boot record lies outside its extended partition', { recordLba });
    }
    const sector = Buffer.alloc(TABLE_SECTOR_BYTES);
    await handle.read(sector, 0, TABLE_SECTOR_BYTES, recordBytes);
    const record = parseExtendedRecord(sector);
    if (record === undefined) {
      // An extended partition with no logical partitions yet has an empty first record.
      if (recordLba === extendedLba && sector.every((byte) => byte === 0)) break;
      throw invalid('an extended boot record has no 55 aa signature', { recordLba });
    }
    records.push({ offsetBytes: recordBytes, lengthBytes: TABLE_SECTOR_BYTES });
    if (record.logical !== undefined) {
      const partition: TablePartition = {
        number: 5 + logical.length,
        startBytes: (recordLba + record.logical.startLbaRelative) * TABLE_SECTOR_BYTES,
        sizeBytes: record.logical.sectors * TABLE_SECTOR_BYTES,
        type: record.logical.type.toString(16).padStart(2, '0'),
        extended: false,
      };
      if (
        partition.startBytes < extended.startBytes ||
        partition.startBytes + partition.sizeBytes > extended.startBytes + extended.sizeBytes
      ) {
        throw invalid(`logical partition ${partition.number} lies outside its extended partition`, {
          partition: partition.number,
        });
      }
      logical.push(partition);
    }
    recordLba = record.nextLbaRelative === undefined ? undefined : extendedLba + record.nextLbaRelative;
  }
  return { ...table, partitions: [...table.partitions, ...logical], extendedRecords: records };
}
