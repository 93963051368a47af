import { createHash } from 'node:crypto';

/**
 * The locator: one 4096-byte block at the end of core.img's room in the refuge, saying where the
 * journal and header are. `reimage status` and `disarm` on the old OS find the refuge from LBA 0
 * alone — LBA 0's boot code names core.img's sector, the locator sits at a fixed distance from it
 * — with no search of the disk and no mounted filesystem, as the recovery boot does from its
 * command line. It is part of the core item, so the journal's digest of the core covers it.
 */
export const LOCATOR_BYTES = 4096;
/** core.img's room in the refuge; the locator is its last 4096 bytes. */
export const CORE_ROOM_BYTES = 256 * 1024;
export const LOCATOR_OFFSET_IN_CORE_ROOM = CORE_ROOM_BYTES - LOCATOR_BYTES;

const MAGIC = 'REIMAGE-LOCATOR\0';
const FORMAT = 1;
const BODY_BYTES = 16 + 4 + 8 + 8 + 16;

export interface RefugeLocator {
  readonly journalOffsetBytes: number;
  readonly headerOffsetBytes: number;
  /** 32 hex digits: the journal's id, so a stale locator of an earlier arm is not taken for this one. */
  readonly journalId: string;
}

/** The locator block. Pure. */
export function encodeLocator(locator: RefugeLocator): Buffer {
  const block = Buffer.alloc(LOCATOR_BYTES);
  block.write(MAGIC, 0, 'latin1');
  block.writeUInt32LE(FORMAT, 16);
  block.writeBigUInt64LE(BigInt(locator.journalOffsetBytes), 20);
  block.writeBigUInt64LE(BigInt(locator.headerOffsetBytes), 28);
  Buffer.from(locator.journalId, 'hex').copy(block, 36);
  createHash('sha256').update(block.subarray(0, BODY_BYTES)).digest().copy(block, BODY_BYTES);
  return block;
}

/** The locator in a block, or undefined when it is not one (wrong magic, format or digest). Pure. */
export function decodeLocator(block: Uint8Array): RefugeLocator | undefined {
  if (block.byteLength < BODY_BYTES + 32) return undefined;
  const bytes = Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  if (bytes.subarray(0, 16).toString('latin1') !== MAGIC || bytes.readUInt32LE(16) !== FORMAT) return undefined;
  const digest = createHash('sha256').update(bytes.subarray(0, BODY_BYTES)).digest();
  if (!digest.equals(bytes.subarray(BODY_BYTES, BODY_BYTES + 32))) return undefined;
  return {
    journalOffsetBytes: Number(bytes.readBigUInt64LE(20)),
    headerOffsetBytes: Number(bytes.readBigUInt64LE(28)),
    journalId: bytes.subarray(36, 52).toString('hex'),
  };
}

/** core.img padded to its room with the locator at the end: the core item's bytes. Pure. */
export function coreWithLocator(core: Buffer, locator: RefugeLocator): Buffer {
  if (core.length > LOCATOR_OFFSET_IN_CORE_ROOM) {
    throw new Error(
      `core.img is ${core.length} bytes; its room holds ${LOCATOR_OFFSET_IN_CORE_ROOM} before the locator`,
    );
  }
  const room = Buffer.alloc(CORE_ROOM_BYTES);
  core.copy(room);
  encodeLocator(locator).copy(room, LOCATOR_OFFSET_IN_CORE_ROOM);
  return room;
}
