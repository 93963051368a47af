import { createHash } from 'node:crypto';
import { type JournalState, journalStateSchema } from './journal-state.ts';

/**
 * One slot of the armed run's journal: a fixed 4096-byte record (docs/adr/0600-arm-journal-slots.md).
 *
 *   offset  size  field
 *        0     8  magic "RIMGJRNL"
 *        8     4  format version, u32 little-endian (1)
 *       12     4  payload length in bytes, u32 LE (1 … 4024)
 *       16     8  sequence number, u64 LE
 *       24    16  journal id (chosen at arm; a slot of another arm's journal is not ours)
 *       40  4024  payload: the journal state as UTF-8 JSON, then zeros to the end of the field
 *     4064    32  SHA-256 of bytes 0 … 4063
 *
 * 4096 bytes is one page and one logical block of a 4Kn disk (eight of a 512-byte one), so a slot
 * at a 4096-aligned offset never shares a block with the other slot or with anything else.
 * The digest covers the whole slot, padding included: any byte a torn write left behind counts.
 */
export const JOURNAL_SLOT_SIZE_BYTES = 4096;
const JOURNAL_MAGIC = Buffer.from('RIMGJRNL', 'latin1');
export const JOURNAL_FORMAT_VERSION = 1;
export const JOURNAL_ID_SIZE_BYTES = 16;
export const JOURNAL_HEADER_SIZE_BYTES = 40;
export const JOURNAL_DIGEST_SIZE_BYTES = 32;
export const JOURNAL_DIGEST_OFFSET_BYTES = JOURNAL_SLOT_SIZE_BYTES - JOURNAL_DIGEST_SIZE_BYTES;
export const JOURNAL_PAYLOAD_MAX_BYTES = JOURNAL_DIGEST_OFFSET_BYTES - JOURNAL_HEADER_SIZE_BYTES;
export const JOURNAL_SEQUENCE_MAX = 0xffff_ffff_ffff_ffffn;

/** Why a slot is not trusted. Checked in this order, so the first damage found is named. */
export type SlotRejection =
  | 'short-slot'
  | 'bad-magic'
  | 'unknown-version'
  | 'length-out-of-range'
  | 'checksum-mismatch'
  | 'other-journal'
  | 'json-invalid'
  | 'schema-invalid';

export type DecodedSlot =
  | { readonly trusted: true; readonly sequence: bigint; readonly state: JournalState }
  | { readonly trusted: false; readonly rejection: SlotRejection; readonly detail: string };

export type EncodeResult =
  | { readonly ok: true; readonly slot: Buffer }
  | { readonly ok: false; readonly reason: string };

/**
 * The slot for `state` at `sequence` in journal `journalId`. Refuses (never throws) a state that
 * breaks the schema or does not fit, a sequence outside u64, an id of the wrong size.
 */
export function encodeJournalSlot(state: JournalState, sequence: bigint, journalId: Uint8Array): EncodeResult {
  if (journalId.length !== JOURNAL_ID_SIZE_BYTES) {
    return { ok: false, reason: `the journal id must be ${JOURNAL_ID_SIZE_BYTES} bytes, got ${journalId.length}` };
  }
  if (sequence < 0n || sequence > JOURNAL_SEQUENCE_MAX) {
    return { ok: false, reason: `the sequence number ${sequence} is outside 0 … 2^64-1` };
  }
  const checked = journalStateSchema.safeParse(state);
  if (!checked.success) {
    return { ok: false, reason: `the state breaks the journal schema: ${checked.error.issues[0]?.message ?? '?'}` };
  }
  const payload = Buffer.from(JSON.stringify(checked.data), 'utf8');
  if (payload.length > JOURNAL_PAYLOAD_MAX_BYTES) {
    return { ok: false, reason: `the state is ${payload.length} bytes, a slot holds ${JOURNAL_PAYLOAD_MAX_BYTES}` };
  }
  const slot = Buffer.alloc(JOURNAL_SLOT_SIZE_BYTES);
  JOURNAL_MAGIC.copy(slot, 0);
  slot.writeUInt32LE(JOURNAL_FORMAT_VERSION, 8);
  slot.writeUInt32LE(payload.length, 12);
  slot.writeBigUInt64LE(sequence, 16);
  Buffer.from(journalId).copy(slot, 24);
  payload.copy(slot, JOURNAL_HEADER_SIZE_BYTES);
  slotDigest(slot).copy(slot, JOURNAL_DIGEST_OFFSET_BYTES);
  return { ok: true, slot };
}

function slotDigest(slot: Uint8Array): Buffer {
  return createHash('sha256').update(slot.subarray(0, JOURNAL_DIGEST_OFFSET_BYTES)).digest();
}

/**
 * The state a slot holds, or why it is not trusted. The bytes are hostile (a torn write, another
 * arm's journal, garbage in a fresh refuge): nothing here throws, and only a slot whose digest
 * matches, whose id is ours and whose JSON passes the schema yields a state.
 */
export function decodeJournalSlot(bytes: Uint8Array, journalId: Uint8Array): DecodedSlot {
  const reject = (rejection: SlotRejection, detail: string): DecodedSlot => ({ trusted: false, rejection, detail });
  if (bytes.length !== JOURNAL_SLOT_SIZE_BYTES) {
    return reject('short-slot', `a slot is ${JOURNAL_SLOT_SIZE_BYTES} bytes, got ${bytes.length}`);
  }
  const slot = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (!slot.subarray(0, 8).equals(JOURNAL_MAGIC)) return reject('bad-magic', 'no journal magic');
  const version = slot.readUInt32LE(8);
  if (version !== JOURNAL_FORMAT_VERSION) {
    return reject('unknown-version', `format version ${version}, this reimage reads ${JOURNAL_FORMAT_VERSION}`);
  }
  const payloadBytes = slot.readUInt32LE(12);
  if (payloadBytes < 1 || payloadBytes > JOURNAL_PAYLOAD_MAX_BYTES) {
    return reject('length-out-of-range', `payload length ${payloadBytes} outside 1 … ${JOURNAL_PAYLOAD_MAX_BYTES}`);
  }
  if (!slotDigest(slot).equals(slot.subarray(JOURNAL_DIGEST_OFFSET_BYTES))) {
    return reject('checksum-mismatch', 'the SHA-256 does not match: a torn or damaged slot');
  }
  // Checked after the digest: a well-formed slot of another arm's journal is intact, just not ours.
  if (!slot.subarray(24, 40).equals(Buffer.from(journalId))) {
    return reject('other-journal', 'the slot belongs to another journal (another arm)');
  }
  const sequence = slot.readBigUInt64LE(16);
  let parsed: unknown;
  try {
    // fatal: a UTF-8 error is damage, not something to paper over with U+FFFD.
    const text = new TextDecoder('utf-8', { fatal: true }).decode(
      slot.subarray(JOURNAL_HEADER_SIZE_BYTES, JOURNAL_HEADER_SIZE_BYTES + payloadBytes),
    );
    parsed = JSON.parse(text);
  } catch (e) {
    return reject('json-invalid', e instanceof Error ? e.message : String(e));
  }
  const checked = journalStateSchema.safeParse(parsed);
  if (!checked.success) {
    const issue = checked.error.issues[0];
    return reject('schema-invalid', issue === undefined ? '?' : `${issue.path.join('.')}: ${issue.message}`);
  }
  return { trusted: true, sequence, state: checked.data };
}
