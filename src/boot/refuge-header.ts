import { createHash } from 'node:crypto';
import { z } from 'zod';
import { escapeLine } from '../core/quote-input.ts';
import { ReimageError } from '../core/reimage-error.ts';
import type { ByteRange, DiskIdentity } from '../disk/index.ts';
import {
  REFUGE_BLOCK_BYTES,
  REFUGE_HEADER_BYTES,
  REFUGE_ITEM_NAMES,
  type RefugeItemName,
  roundUpToBlock,
} from './refuge-layout.ts';

/**
 * The refuge's header: what arm put into the refuge and where, read by the recovery initramfs
 * (found through `reimage.refuge=`), `status` and `disarm`. JSON inside a fixed frame of
 * REFUGE_HEADER_BYTES:
 *
 *   0   16  magic "REIMAGE-REFUGE\0\0"
 *   16   4  format, u32 LE (1)
 *   20   4  JSON length in bytes, u32 LE
 *   24  32  SHA-256 of the JSON
 *   56   8  zero
 *   64   …  the JSON (UTF-8), then zeros to the frame's end
 *
 * The header is written once at arm and only read afterwards. The digest tells a header that
 * was torn or overwritten from an intact one; the zero padding is checked too, so leftovers of
 * another write cannot hide behind the JSON.
 */
export const REFUGE_HEADER_MAGIC = Buffer.from('REIMAGE-REFUGE\0\0', 'latin1');
export const REFUGE_HEADER_FORMAT = 1 as const;
const FRAME_BYTES = 64;
export const REFUGE_HEADER_JSON_MAX_BYTES = REFUGE_HEADER_BYTES - FRAME_BYTES;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, { error: 'expected 64 lowercase hex digits' });
const byteCount = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const blockAligned = byteCount.refine((n) => n % REFUGE_BLOCK_BYTES === 0, { error: 'expected a multiple of 4096' });

const diskIdentitySchema = z.discriminatedUnion('scheme', [
  z.strictObject({ scheme: z.literal('msdos'), signature: z.int().min(0).max(0xffffffff) }),
  z.strictObject({
    scheme: z.literal('gpt'),
    diskGuid: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
      error: 'expected a lower-case GUID',
    }),
  }),
]);

const rangeSchema = z.strictObject({
  offsetBytes: blockAligned,
  lengthBytes: blockAligned.refine((n) => n > 0, { error: 'expected at least one block' }),
});

const itemSchema = z
  .strictObject({
    name: z.enum(REFUGE_ITEM_NAMES),
    sizeBytes: byteCount.min(1),
    sha256: sha256Hex.optional(),
    ranges: z.array(rangeSchema).min(1).max(2048),
  })
  .refine((item) => (item.name === 'bundle') === (item.sha256 === undefined), {
    error: "every item but 'bundle' (room only) carries its sha256",
  })
  .refine((item) => item.ranges.reduce((sum, r) => sum + r.lengthBytes, 0) === roundUpToBlock(item.sizeBytes), {
    error: 'the ranges must cover sizeBytes rounded up to 4096, exactly',
  });

export const refugeHeaderSchema = z
  .strictObject({
    format: z.literal(REFUGE_HEADER_FORMAT),
    /** The journal's id (journal-file's JournalLocation.journalId) as 32 hex digits. */
    journalId: z.string().regex(/^[0-9a-f]{32}$/, { error: 'expected 32 lowercase hex digits' }),
    disk: diskIdentitySchema,
    diskSizeBytes: byteCount.min(1),
    refugeFile: z.strictObject({
      partitionNumber: z.int().min(1).max(128),
      name: z
        .string()
        .min(1)
        .max(255)
        .regex(/^[^/\0]+$/, { error: 'expected a file name without / or NUL' }),
    }),
    items: z
      .array(itemSchema)
      .min(1)
      .max(REFUGE_ITEM_NAMES.length)
      .refine((items) => new Set(items.map((item) => item.name)).size === items.length, {
        error: 'an item name appears twice',
      }),
    image: z.strictObject({
      format: z.string().regex(/^[a-z0-9]{1,16}$/, { error: 'expected a short lower-case format name' }),
      sha256: sha256Hex,
      sizeBytes: byteCount.min(1),
    }),
    createdAt: z.iso.datetime({ offset: false, error: 'expected an ISO 8601 UTC time' }),
  })
  .superRefine((header, context) => {
    // Every raw write and wipe goes where these ranges say: they must lie on the disk and never
    // overlap, or wiping the bundle could wipe the image.
    const ranges = header.items.flatMap((item) => item.ranges.map((range) => ({ item: item.name, ...range })));
    for (const range of ranges) {
      if (range.offsetBytes + range.lengthBytes > header.diskSizeBytes) {
        context.addIssue({ code: 'custom', message: `a range of ${range.item} ends past the disk's end` });
      }
    }
    ranges.sort((a, b) => a.offsetBytes - b.offsetBytes);
    for (let i = 1; i < ranges.length; i++) {
      const [a, b] = [ranges[i - 1], ranges[i]];
      if (a !== undefined && b !== undefined && a.offsetBytes + a.lengthBytes > b.offsetBytes) {
        context.addIssue({ code: 'custom', message: `ranges of ${a.item} and ${b.item} overlap` });
      }
    }
  });

/** One item as the header records it; the raw I/O (refuge-io.ts) takes this shape. */
export interface RefugeHeaderItem {
  readonly name: RefugeItemName;
  readonly sizeBytes: number;
  /** Absent for 'bundle': arm reserves room only; the recovery run frames its own digest. */
  readonly sha256?: string;
  /** Disk coordinates, file order, covering sizeBytes rounded up to 4096. */
  readonly ranges: readonly ByteRange[];
}

export interface RefugeHeader {
  readonly format: typeof REFUGE_HEADER_FORMAT;
  readonly journalId: string;
  readonly disk: DiskIdentity;
  readonly diskSizeBytes: number;
  readonly refugeFile: { readonly partitionNumber: number; readonly name: string };
  readonly items: readonly RefugeHeaderItem[];
  readonly image: { readonly format: string; readonly sha256: string; readonly sizeBytes: number };
  readonly createdAt: string;
}

/** The first problems, one line: zod names unknown keys, which come from the untrusted JSON. */
function issuesText(error: z.ZodError): string {
  const text = error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || '(header)'}: ${issue.message}`)
    .join('; ');
  return escapeLine(text.length > 300 ? `${text.slice(0, 300)}…` : text);
}

/** The header in its frame, exactly REFUGE_HEADER_BYTES; refuses a header the decoder would refuse. */
export function encodeRefugeHeader(header: RefugeHeader): Buffer {
  const parsed = refugeHeaderSchema.safeParse(header);
  if (!parsed.success) {
    throw new ReimageError(
      'REIMAGE_REFUGE_LAYOUT_INVALID',
      `The refuge header is not valid (${issuesText(parsed.error)}). This is a bug in arm, which builds it.`,
      { evidence: { field: 'header', actual: issuesText(parsed.error) } },
    );
  }
  const json = Buffer.from(JSON.stringify(parsed.data), 'utf8');
  if (json.length > REFUGE_HEADER_JSON_MAX_BYTES) {
    throw new ReimageError(
      'REIMAGE_REFUGE_LAYOUT_INVALID',
      `The refuge header would be ${json.length} bytes of JSON; its frame holds ${REFUGE_HEADER_JSON_MAX_BYTES}. The refuge is in too many fragments: reserve it again in fewer, larger extents.`,
      { evidence: { field: 'header', expected: `≤ ${REFUGE_HEADER_JSON_MAX_BYTES}`, actual: json.length } },
    );
  }
  const block = Buffer.alloc(REFUGE_HEADER_BYTES);
  REFUGE_HEADER_MAGIC.copy(block, 0);
  block.writeUInt32LE(REFUGE_HEADER_FORMAT, 16);
  block.writeUInt32LE(json.length, 20);
  createHash('sha256').update(json).digest().copy(block, 24);
  json.copy(block, FRAME_BYTES);
  return block;
}

function damaged(what: string, evidence: Record<string, string | number>): ReimageError {
  return new ReimageError(
    'REIMAGE_REFUGE_DAMAGED',
    `The refuge header is damaged: ${what}. The refuge cannot be trusted; the old OS boots after a disarm (reimage disarm), then arm again.`,
    { evidence },
  );
}

/** The header from its frame; refuses (REIMAGE_REFUGE_DAMAGED, naming what) anything not intact. */
export function decodeRefugeHeader(bytes: Uint8Array): RefugeHeader {
  if (bytes.byteLength !== REFUGE_HEADER_BYTES) {
    throw damaged(`it is ${bytes.byteLength} bytes, not ${REFUGE_HEADER_BYTES} (truncated or oversized)`, {
      field: 'length',
      expected: REFUGE_HEADER_BYTES,
      actual: bytes.byteLength,
    });
  }
  const block = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!block.subarray(0, 16).equals(REFUGE_HEADER_MAGIC)) {
    throw damaged('the magic is wrong (this is not a refuge header)', {
      field: 'magic',
      actual: block.subarray(0, 16).toString('hex'),
    });
  }
  const format = block.readUInt32LE(16);
  if (format !== REFUGE_HEADER_FORMAT) {
    throw damaged(`format ${format} is not the format this reimage reads (${REFUGE_HEADER_FORMAT})`, {
      field: 'format',
      expected: REFUGE_HEADER_FORMAT,
      actual: format,
    });
  }
  if (!block.subarray(56, FRAME_BYTES).every((byte) => byte === 0)) {
    throw damaged('the reserved bytes 56–63 are not zero', { field: 'reserved' });
  }
  const jsonBytes = block.readUInt32LE(20);
  if (jsonBytes < 2 || jsonBytes > REFUGE_HEADER_JSON_MAX_BYTES) {
    throw damaged(`the JSON length ${jsonBytes} is outside 2–${REFUGE_HEADER_JSON_MAX_BYTES}`, {
      field: 'jsonLength',
      actual: jsonBytes,
    });
  }
  const json = block.subarray(FRAME_BYTES, FRAME_BYTES + jsonBytes);
  const digest = createHash('sha256').update(json).digest();
  if (!digest.equals(block.subarray(24, 56))) {
    throw damaged('the SHA-256 of its JSON does not match (torn or overwritten)', {
      field: 'sha256',
      expected: block.subarray(24, 56).toString('hex'),
      actual: digest.toString('hex'),
    });
  }
  if (!block.subarray(FRAME_BYTES + jsonBytes).every((byte) => byte === 0)) {
    throw damaged('bytes after the JSON are not zero', { field: 'padding' });
  }
  let value: unknown;
  try {
    value = JSON.parse(json.toString('utf8'));
  } catch (e) {
    throw damaged('its JSON does not parse', {
      field: 'json',
      actual: escapeLine(e instanceof Error ? e.message : String(e)).slice(0, 200),
    });
  }
  const parsed = refugeHeaderSchema.safeParse(value);
  if (!parsed.success) {
    throw damaged(`its contents are not a valid header (${issuesText(parsed.error)})`, {
      field: escapeLine(parsed.error.issues[0]?.path.join('.') || 'header').slice(0, 100),
      actual: issuesText(parsed.error),
    });
  }
  return parsed.data;
}
