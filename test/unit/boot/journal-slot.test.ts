import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  decodeJournalSlot,
  encodeJournalSlot,
  JOURNAL_DIGEST_OFFSET_BYTES,
  JOURNAL_PAYLOAD_MAX_BYTES,
  JOURNAL_SEQUENCE_MAX,
  JOURNAL_SLOT_SIZE_BYTES,
  type SlotRejection,
} from '../../../src/boot/journal-slot.ts';
import { initialJournalState, type JournalState } from '../../../src/boot/journal-state.ts';

const ID = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const STATE = initialJournalState('2026-12-01T22:00:00.000Z', { image: 'b'.repeat(64), kernel: 'c'.repeat(64) });

function encode(state: JournalState = STATE, sequence = 7n, id: Uint8Array = ID): Buffer {
  const result = encodeJournalSlot(state, sequence, id);
  assert.ok(result.ok, result.ok ? '' : result.reason);
  return result.slot;
}

/** Re-seals a slot after a deliberate change, so the test reaches the checks behind the digest. */
function reseal(slot: Buffer): Buffer {
  createHash('sha256')
    .update(slot.subarray(0, JOURNAL_DIGEST_OFFSET_BYTES))
    .digest()
    .copy(slot, JOURNAL_DIGEST_OFFSET_BYTES);
  return slot;
}

function withPayload(text: string): Buffer {
  const slot = encode();
  slot.fill(0, 40, JOURNAL_DIGEST_OFFSET_BYTES);
  const payload = Buffer.from(text, 'utf8');
  payload.copy(slot, 40);
  slot.writeUInt32LE(payload.length, 12);
  return reseal(slot);
}

/** mulberry32: a small seeded generator, so a failing fuzz case can be replayed. */
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

describe('journal slot: round trip', () => {
  for (const sequence of [0n, 1n, 2n ** 32n, JOURNAL_SEQUENCE_MAX]) {
    it(`sequence ${sequence}`, () => {
      const slot = encode(STATE, sequence);
      assert.equal(slot.length, JOURNAL_SLOT_SIZE_BYTES);
      assert.deepEqual(decodeJournalSlot(slot, ID), { trusted: true, sequence, state: STATE });
    });
  }

  it('fits the largest state the schema allows (every string at its bound, worst-case JSON escapes)', () => {
    const worst = '\u0001'.repeat(256); // each becomes \u0001: six bytes of JSON
    const refugeSha256: Record<string, string> = {};
    for (let i = 0; i < 8; i++) refugeSha256[`${i}${'x'.repeat(23)}`] = 'f'.repeat(64);
    const big: JournalState = {
      stage: 'failed',
      attempt: 1_000_000,
      refugeSha256,
      bundleSha256: 'e'.repeat(64),
      write: { durableBytes: Number.MAX_SAFE_INTEGER, totalBytes: Number.MAX_SAFE_INTEGER },
      reason: { code: `REIMAGE_${'X'.repeat(56)}`, message: worst },
      failedAt: 'bundle-wiped',
      armedAt: '2026-12-01T22:00:00.000Z',
      updatedAt: '2026-12-01T22:00:00.000Z',
    };
    const slot = encode(big);
    assert.ok(slot.readUInt32LE(12) < 3072, `the largest state is ${slot.readUInt32LE(12)} bytes`);
    assert.deepEqual(decodeJournalSlot(slot, ID), { trusted: true, sequence: 7n, state: big });
  });

  it('refuses to encode what it could not decode', () => {
    assert.equal(encodeJournalSlot(STATE, -1n, ID).ok, false);
    assert.equal(encodeJournalSlot(STATE, JOURNAL_SEQUENCE_MAX + 1n, ID).ok, false);
    assert.equal(encodeJournalSlot(STATE, 0n, ID.subarray(0, 15)).ok, false);
    assert.equal(encodeJournalSlot({ ...STATE, attempt: -1 }, 0n, ID).ok, false);
    const tooLong = { ...STATE, stage: 'refused' as const, reason: { code: 'REIMAGE_X', message: 'x'.repeat(257) } };
    assert.equal(encodeJournalSlot(tooLong, 0n, ID).ok, false);
  });
});

describe('journal slot: each kind of damage is named', () => {
  /** A valid slot with one change; `sealed` recomputes the digest so the check behind it is reached. */
  const edited =
    (change: (slot: Buffer) => void, sealed: boolean): (() => Buffer) =>
    () => {
      const slot = encode();
      change(slot);
      return sealed ? reseal(slot) : slot;
    };
  const xor = (at: number, mask: number) => (slot: Buffer) => {
    slot[at] = (slot[at] ?? 0) ^ mask;
  };
  const cases: ReadonlyArray<readonly [string, () => Uint8Array, SlotRejection]> = [
    ['empty', () => Buffer.alloc(0), 'short-slot'],
    ['one byte short', () => encode().subarray(0, JOURNAL_SLOT_SIZE_BYTES - 1), 'short-slot'],
    ['one byte long', () => Buffer.concat([encode(), Buffer.alloc(1)]), 'short-slot'],
    ['all zeros (a fresh refuge)', () => Buffer.alloc(JOURNAL_SLOT_SIZE_BYTES), 'bad-magic'],
    ['magic changed', edited(xor(0, 0x20), true), 'bad-magic'],
    ['version 2', edited((slot) => slot.writeUInt32LE(2, 8), true), 'unknown-version'],
    ['version 0', edited((slot) => slot.writeUInt32LE(0, 8), true), 'unknown-version'],
    ['length 0', edited((slot) => slot.writeUInt32LE(0, 12), true), 'length-out-of-range'],
    [
      'length one past the room',
      edited((slot) => slot.writeUInt32LE(JOURNAL_PAYLOAD_MAX_BYTES + 1, 12), true),
      'length-out-of-range',
    ],
    ['length 2^32-1', edited((slot) => slot.writeUInt32LE(0xffffffff, 12), true), 'length-out-of-range'],
    [
      'length changed, digest not',
      edited((slot) => slot.writeUInt32LE(slot.readUInt32LE(12) - 1, 12), false),
      'checksum-mismatch',
    ],
    ['sequence changed', edited((slot) => slot.writeBigUInt64LE(8n, 16), false), 'checksum-mismatch'],
    ['journal id changed', edited(xor(24, 0xff), false), 'checksum-mismatch'],
    ['payload byte changed', edited(xor(41, 1), false), 'checksum-mismatch'],
    ['padding byte changed', edited(xor(4000, 1), false), 'checksum-mismatch'],
    ['digest byte changed', edited(xor(4095, 0x80), false), 'checksum-mismatch'],
    ['intact slot of another journal', () => encode(STATE, 7n, Buffer.alloc(16, 9)), 'other-journal'],
    ['payload not JSON', () => withPayload('{"stage":'), 'json-invalid'],
    ['payload not UTF-8', () => reseal(withPayload('"ab"').fill(0xff, 41, 43)), 'json-invalid'],
    ['payload JSON of the wrong shape', () => withPayload('[1,2,3]'), 'schema-invalid'],
    ['unknown stage', () => withPayload(JSON.stringify({ ...STATE, stage: 'finished' })), 'schema-invalid'],
    ['extra key', () => withPayload(JSON.stringify({ ...STATE, extra: 1 })), 'schema-invalid'],
    [
      'a __proto__ key',
      () => withPayload(`{"__proto__":{"stage":"released"},${JSON.stringify(STATE).slice(1)}`),
      'schema-invalid',
    ],
    ['failed without a reason', () => withPayload(JSON.stringify({ ...STATE, stage: 'failed' })), 'schema-invalid'],
  ];
  for (const [name, make, rejection] of cases) {
    it(name, () => {
      const decoded = decodeJournalSlot(make(), ID);
      assert.equal(decoded.trusted, false);
      if (!decoded.trusted) assert.equal(decoded.rejection, rejection, decoded.detail);
    });
  }
});

describe('journal slot: seeded fuzz of decode', () => {
  it('random bytes never throw and are never trusted', () => {
    const random = seeded(0x5eed);
    for (let round = 0; round < 2000; round++) {
      const bytes = Buffer.alloc(round % 7 === 0 ? Math.floor(random() * 5000) : JOURNAL_SLOT_SIZE_BYTES);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      // Half the rounds keep a valid header, to get past the cheap checks into the digest.
      if (round % 2 === 0 && bytes.length === JOURNAL_SLOT_SIZE_BYTES) encode().copy(bytes, 0, 0, 40);
      assert.equal(decodeJournalSlot(bytes, ID).trusted, false, `round ${round}`);
    }
  });

  it('bit flips and byte runs on a valid slot never throw and never yield a state', () => {
    const random = seeded(0xb17f11b);
    const valid = encode();
    for (let round = 0; round < 3000; round++) {
      const bytes = Buffer.from(valid);
      const flips = 1 + Math.floor(random() * 4);
      for (let f = 0; f < flips; f++) {
        const bit = Math.floor(random() * JOURNAL_SLOT_SIZE_BYTES * 8);
        bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) ^ (1 << (bit & 7));
      }
      if (round % 3 === 0) {
        const at = Math.floor(random() * JOURNAL_SLOT_SIZE_BYTES);
        bytes.fill(Math.floor(random() * 256), at, Math.min(bytes.length, at + 1 + Math.floor(random() * 64)));
      }
      const decoded = decodeJournalSlot(bytes, ID);
      if (bytes.equals(valid)) assert.deepEqual(decoded, { trusted: true, sequence: 7n, state: STATE });
      else assert.equal(decoded.trusted, false, `round ${round}`);
    }
  });
});
