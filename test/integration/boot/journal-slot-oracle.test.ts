import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJournalSlot, encodeJournalSlot } from '../../../src/boot/journal-slot.ts';
import type { JournalState } from '../../../src/boot/journal-state.ts';

/**
 * A byte oracle for the journal slot, independent of src/boot/journal-slot.ts: the layout is read
 * and written here from docs/adr/0600-arm-journal-slots.md's table alone, the digest comes from
 * coreutils' sha256sum and the integers from od. If the code and the ADR drift apart, this fails.
 */

const ID = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex');
const SEQUENCE = 0x0102030405060708n;
const STATE: JournalState = {
  stage: 'writing',
  attempt: 2,
  refugeSha256: { image: '1'.repeat(64), 'core.img': '2'.repeat(64) },
  bundleSha256: '3'.repeat(64),
  write: { durableBytes: 1048576, totalBytes: 4194304 },
  armedAt: '2026-12-01T22:00:00.000Z',
  updatedAt: '2026-12-01T22:05:00.000Z',
};

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'reimage-journal-oracle-'));
});
after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

/** sha256sum of `bytes`, through a file (the tool, not node:crypto). */
function sha256sum(bytes: Uint8Array): string {
  const file = join(dir, 'digest-input');
  writeFileSync(file, bytes);
  return execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0] ?? '';
}

/** od's reading of little-endian unsigned integers at `offset` (od uses the host order: x86-64 is LE). */
function od(file: string, type: 'u4' | 'u8', offset: number, count: number): bigint[] {
  const out = execFileSync(
    'od',
    ['-An', '-v', `-t${type}`, '--endian=little', '-j', String(offset), '-N', String(count), file],
    {
      encoding: 'utf8',
    },
  );
  return out
    .trim()
    .split(/\s+/)
    .map((word) => BigInt(word));
}

describe('journal slot: byte oracle (sha256sum, od)', () => {
  it("our encoder's slot reads back field by field as the ADR's table says", () => {
    const encoded = encodeJournalSlot(STATE, SEQUENCE, ID);
    assert.ok(encoded.ok);
    const slot = encoded.slot;
    const file = join(dir, 'slot');
    writeFileSync(file, slot);
    assert.equal(slot.length, 4096);
    assert.equal(slot.subarray(0, 8).toString('latin1'), 'RIMGJRNL');
    const [version, payloadBytes] = od(file, 'u4', 8, 8);
    assert.equal(version, 1n);
    assert.deepEqual(od(file, 'u8', 16, 8), [SEQUENCE]);
    assert.deepEqual(slot.subarray(24, 40), ID);
    const length = Number(payloadBytes);
    assert.deepEqual(JSON.parse(slot.subarray(40, 40 + length).toString('utf8')), STATE);
    assert.ok(
      slot.subarray(40 + length, 4064).every((byte) => byte === 0),
      'zero padding after the payload',
    );
    assert.equal(slot.subarray(4064).toString('hex'), sha256sum(slot.subarray(0, 4064)), 'SHA-256 of bytes 0…4063');
  });

  it('a slot built here from the table alone decodes to its state', () => {
    const payload = Buffer.from(JSON.stringify(STATE), 'utf8');
    const slot = Buffer.alloc(4096);
    slot.write('RIMGJRNL', 0, 'latin1');
    slot.writeUInt32LE(1, 8);
    slot.writeUInt32LE(payload.length, 12);
    slot.writeBigUInt64LE(SEQUENCE, 16);
    ID.copy(slot, 24);
    payload.copy(slot, 40);
    Buffer.from(sha256sum(slot.subarray(0, 4064)), 'hex').copy(slot, 4064);
    assert.deepEqual(decodeJournalSlot(slot, ID), { trusted: true, sequence: SEQUENCE, state: STATE });
    // The same bytes as our encoder: the layout has one spelling.
    const encoded = encodeJournalSlot(STATE, SEQUENCE, ID);
    assert.ok(encoded.ok);
    assert.deepEqual(encoded.slot, slot);
  });

  it('pins the whole slot: a change of layout or of JSON key order changes this digest', () => {
    const encoded = encodeJournalSlot(STATE, SEQUENCE, ID);
    assert.ok(encoded.ok);
    assert.equal(sha256sum(encoded.slot), 'a6af7c8adabe1ec87c51d75d1d1be5d6e3fea2ef2fd39efbbb256d452f64045a');
  });
});
