import { z } from 'zod';
import { ReimageError } from '../core/reimage-error.ts';
import type { ByteRange } from '../disk/index.ts';

/**
 * The refuge's `map` item: what the armed run needs of the new image without decoding it first —
 * the ranges to write (from its filesystems), its partitions (the disk's LBA 0 keeps the old table
 * until the commit, so the new partitions are reached at these offsets), the partitions the
 * restore mounts read-write, and the new image's first sector (the commit's one write). Arm
 * computes it from the decoded image; the journal holds its digest.
 */
export interface MapItem {
  readonly format: 1;
  readonly imageSizeBytes: number;
  readonly table: 'msdos' | 'gpt';
  readonly partitions: readonly { readonly number: number; readonly startBytes: number; readonly sizeBytes: number }[];
  readonly ranges: readonly ByteRange[];
  readonly writablePartitions: readonly { readonly number: number; readonly filesystem?: string | undefined }[];
  /** The new image's first 512 bytes, base64. */
  readonly firstSector: string;
}

const count = z.int().min(0).max(Number.MAX_SAFE_INTEGER);

const mapItemSchema = z.strictObject({
  format: z.literal(1),
  imageSizeBytes: count,
  table: z.enum(['msdos', 'gpt']),
  partitions: z.array(z.strictObject({ number: z.int().min(1).max(4096), startBytes: count, sizeBytes: count })),
  ranges: z.array(z.tuple([count, count.min(1)])),
  writablePartitions: z.array(
    z.strictObject({ number: z.int().min(1).max(4096), filesystem: z.string().max(32).optional() }),
  ),
  firstSector: z.base64().refine((text) => Buffer.from(text, 'base64').length === 512, {
    error: 'expected 512 bytes',
  }),
});

/** The item's bytes: JSON, ranges as [offset, length] pairs to stay compact. Pure. */
export function encodeMapItem(item: MapItem): Buffer {
  return Buffer.from(
    `${JSON.stringify({ ...item, ranges: item.ranges.map((range) => [range.offsetBytes, range.lengthBytes]) })}\n`,
  );
}

/** The item from its bytes, or REIMAGE_REFUGE_DAMAGED naming what is wrong. Pure. */
export function decodeMapItem(bytes: Uint8Array): MapItem {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (error) {
    throw damaged('it is not JSON', error);
  }
  const parsed = mapItemSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw damaged(`${issue?.path.join('.') ?? '?'}: ${issue?.message ?? '?'}`);
  }
  const { ranges, writablePartitions, ...rest } = parsed.data;
  let endBytes = 0;
  for (const [offsetBytes, lengthBytes] of ranges) {
    if (offsetBytes < endBytes || offsetBytes + lengthBytes > rest.imageSizeBytes) {
      throw damaged('its ranges are not sorted, overlap, or pass the image end');
    }
    endBytes = offsetBytes + lengthBytes;
  }
  return {
    ...rest,
    writablePartitions: writablePartitions.map((p) => ({ number: p.number, filesystem: p.filesystem })),
    ranges: ranges.map(([offsetBytes, lengthBytes]) => ({ offsetBytes, lengthBytes })),
  };
}

function damaged(what: string, cause?: unknown): ReimageError {
  return new ReimageError(
    'REIMAGE_REFUGE_DAMAGED',
    `The refuge's map of the new image cannot be used: ${what}. Its digest matched, so arm wrote it so: disarm and arm again with this reimage version.`,
    { evidence: { item: 'map' }, cause },
  );
}
