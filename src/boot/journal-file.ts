import type { FileHandle } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { readAt, writeAt } from '../disk/index.ts';
import {
  type DecodedSlot,
  decodeJournalSlot,
  encodeJournalSlot,
  JOURNAL_SEQUENCE_MAX,
  JOURNAL_SLOT_SIZE_BYTES,
  type SlotRejection,
} from './journal-slot.ts';
import type { JournalState } from './journal-state.ts';

/**
 * The journal on a file or block device: two slots side by side at `offsetBytes` (8192 bytes in
 * all). Sequence n lives in slot n % 2, so each write goes to the slot that does NOT hold the
 * newest durable state: a power cut can tear only the slot being written, and the other one still
 * holds the last state whose write completed (docs/adr/0600-arm-journal-slots.md).
 */
export interface JournalLocation {
  /** Where slot 0 starts; a multiple of 4096, so no slot shares a logical block with anything. */
  readonly offsetBytes: number;
  /** The 16-byte id arm chose; a slot with another id (an earlier arm's leftovers) is not ours. */
  readonly journalId: Uint8Array;
}

export const JOURNAL_SIZE_BYTES = 2 * JOURNAL_SLOT_SIZE_BYTES;

export type SlotIndex = 0 | 1;

export type JournalReadResult =
  | { readonly trusted: true; readonly state: JournalState; readonly sequence: bigint; readonly slotIndex: SlotIndex }
  | {
      readonly trusted: false;
      /** Why neither slot is trusted, slot 0 first: "no trusted journal". */
      readonly slots: readonly [SlotVerdict, SlotVerdict];
    };

export interface SlotVerdict {
  readonly rejection: SlotRejection | 'wrong-slot';
  readonly detail: string;
}

function checkLocation(location: JournalLocation): void {
  if (!Number.isSafeInteger(location.offsetBytes) || location.offsetBytes < 0 || location.offsetBytes % 4096 !== 0) {
    throw new ReimageError(
      'REIMAGE_JOURNAL_WRITE_REFUSED',
      `The journal offset ${location.offsetBytes} is not a multiple of 4096; place the journal on a 4096-byte boundary.`,
      { evidence: { offsetBytes: location.offsetBytes }, targetState: 'unknown' },
    );
  }
}

function slotOffset(location: JournalLocation, index: SlotIndex): number {
  return location.offsetBytes + index * JOURNAL_SLOT_SIZE_BYTES;
}

type Verdict =
  | { readonly trusted: true; readonly sequence: bigint; readonly state: JournalState }
  | ({ readonly trusted: false } & SlotVerdict);

/** A slot's verdict, with the sequence's parity checked against where the slot lies. */
function judge(decoded: DecodedSlot, index: SlotIndex): Verdict {
  if (!decoded.trusted) return { trusted: false, rejection: decoded.rejection, detail: decoded.detail };
  if (Number(decoded.sequence % 2n) !== index) {
    // An intact slot at the wrong place was copied there, not written by writeJournal.
    return {
      trusted: false,
      rejection: 'wrong-slot',
      detail: `sequence ${decoded.sequence} does not belong in slot ${index}`,
    };
  }
  return decoded;
}

/**
 * The newest trusted state: of the two slots, the one whose digest, id, schema and place check out
 * and whose sequence is higher. Neither: `trusted: false` with each slot's reason. Throws only
 * when the bytes cannot be read at all (REIMAGE_JOURNAL_UNREADABLE).
 */
export async function readJournal(handle: FileHandle, location: JournalLocation): Promise<JournalReadResult> {
  checkLocation(location);
  const bytes = Buffer.alloc(JOURNAL_SIZE_BYTES);
  let readBytes: number;
  try {
    readBytes = await readAt(handle, bytes, location.offsetBytes);
  } catch (e) {
    throw new ReimageError(
      'REIMAGE_JOURNAL_UNREADABLE',
      `Cannot read the journal at byte ${location.offsetBytes}; check the disk (dmesg) and boot again.`,
      { evidence: { offsetBytes: location.offsetBytes }, cause: e, targetState: 'unknown' },
    );
  }
  // A short read (the journal past the end of a file) leaves short slots, which are rejected.
  const verdicts = ([0, 1] as const).map((index) =>
    judge(
      decodeJournalSlot(
        bytes.subarray(
          Math.min(readBytes, index * JOURNAL_SLOT_SIZE_BYTES),
          Math.min(readBytes, (index + 1) * JOURNAL_SLOT_SIZE_BYTES),
        ),
        location.journalId,
      ),
      index,
    ),
  );
  const [first, second] = verdicts;
  if (first === undefined || second === undefined) throw new Error('unreachable: two slots');
  if (first.trusted && (!second.trusted || first.sequence > second.sequence)) {
    return { trusted: true, state: first.state, sequence: first.sequence, slotIndex: 0 };
  }
  if (second.trusted) return { trusted: true, state: second.state, sequence: second.sequence, slotIndex: 1 };
  if (first.trusted) throw new Error('unreachable: a trusted slot 0 is returned above');
  return {
    trusted: false,
    slots: [
      { rejection: first.rejection, detail: first.detail },
      { rejection: second.rejection, detail: second.detail },
    ],
  };
}

async function writeSlotDurably(
  handle: FileHandle,
  location: JournalLocation,
  bytes: Buffer,
  offsetBytes: number,
): Promise<void> {
  try {
    await writeAt(handle, bytes, offsetBytes);
    // Durable means on the medium, not in the page cache: fdatasync returns only after the device
    // acknowledged the data and a cache flush. Until then the previous slot is the one to trust.
    await handle.datasync();
  } catch (e) {
    throw new ReimageError(
      'REIMAGE_JOURNAL_WRITE_FAILED',
      `Cannot write the journal at byte ${offsetBytes}; the previous journal state still holds. Check the disk (dmesg).`,
      { evidence: { offsetBytes, journalOffsetBytes: location.offsetBytes }, cause: e, targetState: 'unknown' },
    );
  }
}

function encodeOrThrow(state: JournalState, sequence: bigint, location: JournalLocation): Buffer {
  const encoded = encodeJournalSlot(state, sequence, location.journalId);
  if (!encoded.ok) {
    throw new ReimageError('REIMAGE_JOURNAL_WRITE_REFUSED', `Refusing to write the journal: ${encoded.reason}.`, {
      evidence: { stage: state.stage, sequence: sequence.toString() },
      targetState: 'unknown',
    });
  }
  return encoded.slot;
}

/**
 * A new journal holding `state` at sequence 0 in slot 0, slot 1 zeroed, all durable before this
 * resolves. Arm calls it once, with a fresh journal id, so nothing an earlier arm left is trusted.
 */
export async function createJournal(
  handle: FileHandle,
  location: JournalLocation,
  state: JournalState,
): Promise<{ readonly sequence: bigint; readonly slotIndex: SlotIndex }> {
  checkLocation(location);
  const bytes = Buffer.alloc(JOURNAL_SIZE_BYTES);
  encodeOrThrow(state, 0n, location).copy(bytes, 0);
  await writeSlotDurably(handle, location, bytes, location.offsetBytes);
  return { sequence: 0n, slotIndex: 0 };
}

/**
 * Writes `state` into the slot that does not hold the newest trusted state, with its sequence + 1,
 * and resolves only after fdatasync. A cut before that leaves the previous state trusted; after
 * it, the new one. One writer at a time per journal: two concurrent calls would pick the same
 * slot. Refuses when no slot is trusted (REIMAGE_JOURNAL_UNTRUSTED): starting over at
 * sequence 0 would forget where the run was, so that decision belongs to the caller.
 */
export async function writeJournal(
  handle: FileHandle,
  location: JournalLocation,
  state: JournalState,
): Promise<{ readonly sequence: bigint; readonly slotIndex: SlotIndex }> {
  const current = await readJournal(handle, location);
  if (!current.trusted) {
    throw new ReimageError(
      'REIMAGE_JOURNAL_UNTRUSTED',
      `No trusted journal at byte ${location.offsetBytes} (slot 0: ${current.slots[0].rejection}, slot 1: ${current.slots[1].rejection}); the refuge is damaged or not this arm's — disarm and arm again.`,
      {
        evidence: {
          offsetBytes: location.offsetBytes,
          slot0: current.slots[0].rejection,
          slot1: current.slots[1].rejection,
        },
        targetState: 'unknown',
      },
    );
  }
  if (current.sequence >= JOURNAL_SEQUENCE_MAX) {
    // 2^64 writes will not happen; wrapping to 0 would make the new state lose to the old one.
    throw new ReimageError(
      'REIMAGE_JOURNAL_WRITE_REFUSED',
      'Refusing to write the journal: its sequence number is exhausted.',
      {
        evidence: { sequence: current.sequence.toString() },
        targetState: 'unknown',
      },
    );
  }
  const sequence = current.sequence + 1n;
  const slotIndex: SlotIndex = current.slotIndex === 0 ? 1 : 0;
  const slot = encodeOrThrow(state, sequence, location);
  await writeSlotDurably(handle, location, slot, slotOffset(location, slotIndex));
  return { sequence, slotIndex };
}
