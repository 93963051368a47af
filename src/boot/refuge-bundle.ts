import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { checkItemRanges, type RefugeItemRanges, readLogicalChunks, writeLogical } from './refuge-io.ts';
import { REFUGE_BLOCK_BYTES, roundUpToBlock } from './refuge-layout.ts';

/**
 * The retention bundle persisted in the refuge's 'bundle' room by the recovery run (issue 9,
 * step 1), before the first destructive write. The room's first 4096 bytes are a frame, the data
 * follows:
 *
 *   0   16  magic "REIMAGE-BUNDLE\0\0"
 *   16   4  format, u32 LE (1)
 *   20   4  zero
 *   24   8  data length in bytes, u64 LE
 *   32  32  SHA-256 of the data
 *   64   …  zeros to 4096
 *
 * The data is written first and the frame last, then one fdatasync. Whatever a power cut leaves
 * (the frame of an earlier attempt over new data, a torn frame, a frame whose data the cache
 * never wrote), the digest does not match and the bundle is not found: the run captures again.
 */
export const BUNDLE_FRAME_MAGIC = Buffer.from('REIMAGE-BUNDLE\0\0', 'latin1');
export const BUNDLE_FRAME_FORMAT = 1;
export const BUNDLE_FRAME_BYTES = REFUGE_BLOCK_BYTES;

/** Bytes of bundle data the item's room holds (after its frame). */
export function bundleRoomBytes(item: RefugeItemRanges): number {
  return Math.max(0, roundUpToBlock(item.sizeBytes) - BUNDLE_FRAME_BYTES);
}

/** The frame for `data`, exactly BUNDLE_FRAME_BYTES. */
function encodeFrame(dataBytes: number, sha256: Buffer): Buffer {
  const frame = Buffer.alloc(BUNDLE_FRAME_BYTES);
  BUNDLE_FRAME_MAGIC.copy(frame, 0);
  frame.writeUInt32LE(BUNDLE_FRAME_FORMAT, 16);
  frame.writeBigUInt64LE(BigInt(dataBytes), 24);
  sha256.copy(frame, 32);
  return frame;
}

/** Writes `data` framed into the bundle room, then fdatasync; returns the data's SHA-256 (hex). */
export async function writeBundleRaw(disk: FileHandle, item: RefugeItemRanges, data: Buffer): Promise<string> {
  checkItemRanges(item.name, item.sizeBytes, item.ranges, true);
  const roomBytes = bundleRoomBytes(item);
  if (data.length > roomBytes) {
    throw new ReimageError(
      'REIMAGE_REFUGE_BUNDLE_TOO_BIG',
      `The retention bundle is ${data.length} bytes; the refuge has room for ${roomBytes}. Nothing was written: retain less, or disarm and arm again (arm sizes the room from the plan's retained paths).`,
      { evidence: { bundleBytes: data.length, roomBytes } },
    );
  }
  const sha256 = createHash('sha256').update(data).digest();
  await writeLogical(disk, item.name, item.ranges, BUNDLE_FRAME_BYTES, data, data.length);
  await writeLogical(disk, item.name, item.ranges, 0, encodeFrame(data.length, sha256), BUNDLE_FRAME_BYTES);
  try {
    await disk.datasync();
  } catch (e) {
    throw new ReimageError(
      'REIMAGE_REFUGE_WRITE_FAILED',
      'Flushing the retention bundle in the refuge (fdatasync) failed; it is not persisted.',
      { evidence: { item: item.name }, cause: e },
    );
  }
  return sha256.toString('hex');
}

async function readRange(
  disk: FileHandle,
  item: RefugeItemRanges,
  fromBytes: number,
  lengthBytes: number,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of readLogicalChunks(disk, item.name, item.ranges, fromBytes, lengthBytes)) chunks.push(chunk);
  return Buffer.concat(chunks, lengthBytes);
}

/**
 * The persisted bundle, or undefined unless an intact frame and data whose SHA-256 matches it are
 * there (never written, torn, wiped, an earlier attempt's). Throws only when the disk cannot be read.
 */
export async function readBundleRaw(disk: FileHandle, item: RefugeItemRanges): Promise<Buffer | undefined> {
  checkItemRanges(item.name, item.sizeBytes, item.ranges, true);
  const roomBytes = bundleRoomBytes(item);
  if (roomBytes === 0) return undefined;
  const frame = await readRange(disk, item, 0, BUNDLE_FRAME_BYTES);
  if (!frame.subarray(0, 16).equals(BUNDLE_FRAME_MAGIC)) return undefined;
  if (frame.readUInt32LE(16) !== BUNDLE_FRAME_FORMAT || frame.readUInt32LE(20) !== 0) return undefined;
  if (!frame.subarray(64).every((byte) => byte === 0)) return undefined;
  const dataBytes = frame.readBigUInt64LE(24);
  if (dataBytes > BigInt(roomBytes)) return undefined;
  const data = await readRange(disk, item, BUNDLE_FRAME_BYTES, Number(dataBytes));
  const sha256 = createHash('sha256').update(data).digest();
  return sha256.equals(frame.subarray(32, 64)) ? data : undefined;
}
