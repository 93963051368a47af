import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import {
  createJournal,
  JOURNAL_SIZE_BYTES,
  type JournalLocation,
  type JournalReadResult,
  readJournal,
  writeJournal,
} from '../../../src/boot/journal-file.ts';
import { encodeJournalSlot, JOURNAL_SEQUENCE_MAX, JOURNAL_SLOT_SIZE_BYTES } from '../../../src/boot/journal-slot.ts';
import {
  initialJournalState,
  type JournalEvent,
  type JournalState,
  nextState,
} from '../../../src/boot/journal-state.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';

/**
 * The journal's hostile set: every kind of damage a power cut, a stale refuge or a stray write can
 * leave yields the last durable state, the one before it, or "no trusted journal" — never a state
 * that was not written, and never an exception from reading.
 */

const OFFSET_BYTES = 3 * 4096;
const FILE_BYTES = OFFSET_BYTES + JOURNAL_SIZE_BYTES + 4096;
const SLOT0 = OFFSET_BYTES;
const SLOT1 = OFFSET_BYTES + JOURNAL_SLOT_SIZE_BYTES;
const ID = Buffer.from('a1a2a3a4a5a6a7a8a9aaabacadaeafb0', 'hex');
const OTHER_ID = Buffer.from('b1a2a3a4a5a6a7a8a9aaabacadaeafb0', 'hex');
const LOCATION: JournalLocation = { offsetBytes: OFFSET_BYTES, journalId: ID };

function advance(state: JournalState, event: JournalEvent): JournalState {
  const result = nextState(state, event);
  assert.ok(result.ok, result.ok ? '' : result.reason);
  return result.state;
}

// S0 … S3: the states written in order (seq 0 → slot 0, 1 → slot 1, 2 → slot 0, 3 → slot 1).
const S0 = initialJournalState('2026-12-01T22:00:00.000Z', { image: 'd'.repeat(64) });
const S1 = advance(S0, { type: 'begin-attempt', at: '2026-12-01T22:01:00.000Z' });
const S2 = advance(S1, { type: 'capture-started', at: '2026-12-01T22:02:00.000Z' });
const S3 = advance(S2, { type: 'bundle-persisted', at: '2026-12-01T22:03:00.000Z', bundleSha256: 'e'.repeat(64) });

function slotFor(state: JournalState, sequence: bigint, id: Uint8Array = ID): Buffer {
  const encoded = encodeJournalSlot(state, sequence, id);
  assert.ok(encoded.ok);
  return encoded.slot;
}

/** Mulberry32, seeded: a failing position can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('journal: hostile and torn slots never yield a wrong state', () => {
  let dir = '';
  let file = '';
  let handle: FileHandle | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'reimage-hostile-journal-'));
    file = join(dir, 'refuge');
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    // Bytes around the journal are 0x5a, so a write outside its 8192 bytes would show.
    writeFileSync(file, Buffer.alloc(FILE_BYTES, 0x5a));
    handle = await open(file, 'r+');
    await createJournal(handle, LOCATION, S0);
    await writeJournal(handle, LOCATION, S1);
    await writeJournal(handle, LOCATION, S2);
  });
  afterEach(async () => {
    await handle?.close();
    handle = undefined;
  });

  function fh(): FileHandle {
    assert.ok(handle !== undefined);
    return handle;
  }

  /** Puts `bytes` at `offset` the way a stray or torn write would: behind the journal code's back. */
  function poke(offset: number, bytes: Uint8Array): void {
    const all = readFileSync(file);
    Buffer.from(bytes).copy(all, offset);
    writeFileSync(file, all);
  }

  function expectState(result: JournalReadResult, state: JournalState, sequence: bigint): void {
    assert.ok(result.trusted, result.trusted ? '' : JSON.stringify(result.slots));
    assert.deepEqual(result.state, state);
    assert.equal(result.sequence, sequence);
  }

  /**
   * A torn slot 1 (old S1 partly overwritten by S3): S2 from slot 0, unless the bytes that landed
   * happen to make the whole new slot (the old tail equal to the new one, e.g. in the zero padding).
   */
  function expectOldOrComplete(result: JournalReadResult, torn: Buffer, complete: Buffer): void {
    if (torn.equals(complete)) expectState(result, S3, 3n);
    else expectState(result, S2, 2n);
  }

  function expectUntrusted(result: JournalReadResult): void {
    assert.equal(result.trusted, false, result.trusted ? `got ${result.state.stage} at ${result.sequence}` : '');
  }

  it('reads the newest of the two slots, and the bytes around the journal are untouched', async () => {
    expectState(await readJournal(fh(), LOCATION), S2, 2n);
    const all = readFileSync(file);
    assert.ok(all.subarray(0, OFFSET_BYTES).every((byte) => byte === 0x5a));
    assert.ok(all.subarray(OFFSET_BYTES + JOURNAL_SIZE_BYTES).every((byte) => byte === 0x5a));
    assert.deepEqual(all.subarray(SLOT1, SLOT1 + 4096), slotFor(S1, 1n));
  });

  it('a write torn at every 512-byte boundary: the old state until the last byte lands, then the new one', async () => {
    const oldSlot = slotFor(S1, 1n);
    const newSlot = slotFor(S3, 3n);
    for (let landedBytes = 0; landedBytes <= JOURNAL_SLOT_SIZE_BYTES; landedBytes += 512) {
      const mixed = Buffer.concat([newSlot.subarray(0, landedBytes), oldSlot.subarray(landedBytes)]);
      poke(SLOT1, mixed);
      expectOldOrComplete(await readJournal(fh(), LOCATION), mixed, newSlot);
    }
  });

  it('a write torn at 300 random byte positions, and sectors landing in any order', async () => {
    const random = seeded(0x70a2);
    const oldSlot = slotFor(S1, 1n);
    const newSlot = slotFor(S3, 3n);
    for (let round = 0; round < 300; round++) {
      const landedBytes = 1 + Math.floor(random() * (JOURNAL_SLOT_SIZE_BYTES - 1));
      const mixed = Buffer.concat([newSlot.subarray(0, landedBytes), oldSlot.subarray(landedBytes)]);
      poke(SLOT1, mixed);
      expectOldOrComplete(await readJournal(fh(), LOCATION), mixed, newSlot);
    }
    for (let round = 0; round < 100; round++) {
      // A disk may persist any subset of a request's sectors; all but the full set is torn.
      const mixed = Buffer.from(oldSlot);
      for (let sector = 0; sector < 8; sector++) {
        if (random() < 0.5) newSlot.copy(mixed, sector * 512, sector * 512, sector * 512 + 512);
      }
      poke(SLOT1, mixed);
      expectOldOrComplete(await readJournal(fh(), LOCATION), mixed, newSlot);
    }
  });

  it('after a torn write, the next write goes to the torn slot again and is trusted', async () => {
    poke(SLOT1, Buffer.concat([slotFor(S3, 3n).subarray(0, 2048), slotFor(S1, 1n).subarray(2048)]));
    assert.deepEqual(await writeJournal(fh(), LOCATION, S3), { sequence: 3n, slotIndex: 1 });
    expectState(await readJournal(fh(), LOCATION), S3, 3n);
    // …and the slot it did not write still holds S2: one good slot at every moment.
    assert.deepEqual(readFileSync(file).subarray(SLOT0, SLOT0 + 4096), slotFor(S2, 2n));
  });

  const fields: ReadonlyArray<readonly [string, number]> = [
    ['magic', 3],
    ['format version', 8],
    ['payload length', 13],
    ['sequence number', 16],
    ['journal id', 30],
    ['payload', 60],
    ['padding', 3000],
    ['digest', 4080],
  ];
  for (const [field, at] of fields) {
    it(`the newest slot's ${field} corrupted: the state before it`, async () => {
      const all = readFileSync(file);
      all[SLOT0 + at] = (all[SLOT0 + at] ?? 0) ^ 0x10;
      writeFileSync(file, all);
      expectState(await readJournal(fh(), LOCATION), S1, 1n);
    });
  }

  it('truncated inside the second slot: the first slot alone; truncated inside the first: no trusted journal', async () => {
    poke(SLOT1, slotFor(S3, 3n));
    truncateSync(file, SLOT1 + 1000);
    expectState(await readJournal(fh(), LOCATION), S2, 2n);
    truncateSync(file, SLOT0 + 1000);
    expectUntrusted(await readJournal(fh(), LOCATION));
  });

  it('both slots torn: no trusted journal, and writeJournal refuses without writing', async () => {
    const all = readFileSync(file);
    all.fill(0x11, SLOT0 + 100, SLOT0 + 612);
    all.fill(0xff, SLOT1 + 4000, SLOT1 + 4001);
    writeFileSync(file, all);
    const result = await readJournal(fh(), LOCATION);
    expectUntrusted(result);
    if (!result.trusted)
      assert.deepEqual(
        result.slots.map((slot) => slot.rejection),
        ['checksum-mismatch', 'checksum-mismatch'],
      );
    await assert.rejects(writeJournal(fh(), LOCATION, S3), (e: unknown) => {
      assert.ok(isReimageError(e));
      assert.equal(e.code, 'REIMAGE_JOURNAL_UNTRUSTED');
      return true;
    });
    assert.deepEqual(readFileSync(file), all);
  });

  it('a fresh refuge (zeros) or garbage is no trusted journal, with each reason', async () => {
    poke(SLOT0, Buffer.alloc(JOURNAL_SIZE_BYTES));
    const zeros = await readJournal(fh(), LOCATION);
    expectUntrusted(zeros);
    if (!zeros.trusted)
      assert.deepEqual(
        zeros.slots.map((slot) => slot.rejection),
        ['bad-magic', 'bad-magic'],
      );
  });

  it('an intact slot of another journal (an earlier arm) is ignored, even with a higher sequence', async () => {
    poke(SLOT1, slotFor(S3, 999n, OTHER_ID));
    expectState(await readJournal(fh(), LOCATION), S2, 2n);
    poke(SLOT0, slotFor(S3, 1000n, OTHER_ID));
    const result = await readJournal(fh(), LOCATION);
    expectUntrusted(result);
    if (!result.trusted)
      assert.deepEqual(
        result.slots.map((slot) => slot.rejection),
        ['other-journal', 'other-journal'],
      );
  });

  it('an intact slot copied to the other place is not trusted there', async () => {
    const all = readFileSync(file);
    const slot0 = Buffer.from(all.subarray(SLOT0, SLOT0 + 4096));
    const slot1 = Buffer.from(all.subarray(SLOT1, SLOT1 + 4096));
    poke(SLOT1, slot0); // seq 2 (even) in slot 1
    expectState(await readJournal(fh(), LOCATION), S2, 2n);
    poke(SLOT0, slot1); // swapped: seq 1 in slot 0, seq 2 in slot 1
    const swapped = await readJournal(fh(), LOCATION);
    expectUntrusted(swapped);
    if (!swapped.trusted)
      assert.deepEqual(
        swapped.slots.map((slot) => slot.rejection),
        ['wrong-slot', 'wrong-slot'],
      );
  });

  it('sequence at 2^64-1: read as the newest, and writeJournal refuses to wrap to 0', async () => {
    poke(SLOT0, slotFor(S2, JOURNAL_SEQUENCE_MAX - 1n));
    poke(SLOT1, slotFor(S3, JOURNAL_SEQUENCE_MAX));
    expectState(await readJournal(fh(), LOCATION), S3, JOURNAL_SEQUENCE_MAX);
    const before_ = readFileSync(file);
    await assert.rejects(writeJournal(fh(), LOCATION, S3), (e: unknown) => {
      assert.ok(isReimageError(e));
      assert.equal(e.code, 'REIMAGE_JOURNAL_WRITE_REFUSED');
      return true;
    });
    assert.deepEqual(readFileSync(file), before_);
    // A slot with sequence 0 beside 2^64-1 loses: there is no wrap-around in the comparison.
    poke(SLOT0, slotFor(S0, 0n));
    expectState(await readJournal(fh(), LOCATION), S3, JOURNAL_SEQUENCE_MAX);
  });

  it('a misaligned offset is refused before any byte is read or written', async () => {
    const before_ = readFileSync(file);
    await assert.rejects(writeJournal(fh(), { offsetBytes: OFFSET_BYTES + 512, journalId: ID }, S3), (e: unknown) => {
      assert.ok(isReimageError(e));
      assert.equal(e.code, 'REIMAGE_JOURNAL_WRITE_REFUSED');
      return true;
    });
    assert.deepEqual(readFileSync(file), before_);
  });

  it('an I/O failure is REIMAGE_JOURNAL_UNREADABLE / REIMAGE_JOURNAL_WRITE_FAILED, not a raw errno', async () => {
    const readOnly = await open(file, 'r');
    try {
      await assert.rejects(writeJournal(readOnly, LOCATION, S3), (e: unknown) => {
        assert.ok(isReimageError(e));
        assert.equal(e.code, 'REIMAGE_JOURNAL_WRITE_FAILED');
        return true;
      });
      const wo = await open(join(dir, 'write-only'), 'w');
      try {
        await assert.rejects(readJournal(wo, LOCATION), (e: unknown) => {
          assert.ok(isReimageError(e));
          assert.equal(e.code, 'REIMAGE_JOURNAL_UNREADABLE');
          return true;
        });
      } finally {
        await wo.close();
      }
    } finally {
      await readOnly.close();
    }
  });
});
