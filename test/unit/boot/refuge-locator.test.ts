import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CORE_ROOM_BYTES,
  coreWithLocator,
  decodeLocator,
  encodeLocator,
  LOCATOR_BYTES,
  LOCATOR_OFFSET_IN_CORE_ROOM,
} from '../../../src/boot/refuge-locator.ts';

const locator = {
  journalOffsetBytes: 123 * 4096 + 2 ** 33,
  headerOffsetBytes: 125 * 4096 + 2 ** 33,
  journalId: '00112233445566778899aabbccddeeff',
};

describe('refuge locator', () => {
  it('round-trips offsets beyond 32 bits and the journal id', () => {
    const block = encodeLocator(locator);
    assert.equal(block.length, LOCATOR_BYTES);
    assert.deepEqual(decodeLocator(block), locator);
  });

  it('refuses any single damaged byte of its body or digest, and an empty block', () => {
    const block = encodeLocator(locator);
    for (let at = 0; at < 52 + 32; at++) {
      const damaged = Buffer.from(block);
      damaged[at] = (damaged[at] ?? 0) ^ 0x01;
      assert.equal(decodeLocator(damaged), undefined, `byte ${at}`);
    }
    assert.equal(decodeLocator(Buffer.alloc(LOCATOR_BYTES)), undefined);
    assert.equal(decodeLocator(Buffer.alloc(10)), undefined);
  });

  it('sits at the end of core.img’s room, after core.img unchanged', () => {
    const core = Buffer.alloc(40_000, 0x5a);
    const room = coreWithLocator(core, locator);
    assert.equal(room.length, CORE_ROOM_BYTES);
    assert.ok(room.subarray(0, core.length).equals(core));
    assert.deepEqual(decodeLocator(room.subarray(LOCATOR_OFFSET_IN_CORE_ROOM)), locator);
    assert.throws(() => coreWithLocator(Buffer.alloc(LOCATOR_OFFSET_IN_CORE_ROOM + 1), locator));
  });
});
