import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isZeroGranule, planBlockSegments, ZERO_GRANULE_BYTES } from '../../../src/image/segments.ts';

const G = ZERO_GRANULE_BYTES;

/** A block of `granules` granules, with a non-zero byte in the ones listed. */
function block(granules: number, dataAt: readonly number[], tailBytes = 0): Buffer {
  const buffer = Buffer.alloc(granules * G + tailBytes);
  for (const index of dataAt) buffer[index * G + 7] = 1;
  return buffer;
}

describe('planBlockSegments', () => {
  it('merges runs of zero and data granules, offset by the block start', () => {
    assert.deepEqual(planBlockSegments(block(5, [0, 3]), 1000 * G), [
      { startBytes: 1000 * G, endBytes: 1001 * G, zero: false },
      { startBytes: 1001 * G, endBytes: 1003 * G, zero: true },
      { startBytes: 1003 * G, endBytes: 1004 * G, zero: false },
      { startBytes: 1004 * G, endBytes: 1005 * G, zero: true },
    ]);
  });

  it('gives one zero run for an all-zero block and one data run for a full one', () => {
    assert.deepEqual(planBlockSegments(block(4, []), 0), [{ startBytes: 0, endBytes: 4 * G, zero: true }]);
    assert.deepEqual(planBlockSegments(block(2, [0, 1]), 0), [{ startBytes: 0, endBytes: 2 * G, zero: false }]);
  });

  it('handles a partial last granule (an image tail), zero or not', () => {
    assert.deepEqual(planBlockSegments(block(1, [0], 100), 0), [
      { startBytes: 0, endBytes: G, zero: false },
      { startBytes: G, endBytes: G + 100, zero: true },
    ]);
    const tail = block(1, [], 100);
    tail[G + 99] = 9;
    assert.deepEqual(planBlockSegments(tail, 0), [
      { startBytes: 0, endBytes: G, zero: true },
      { startBytes: G, endBytes: G + 100, zero: false },
    ]);
  });

  it('returns nothing for an empty block', () => {
    assert.deepEqual(planBlockSegments(Buffer.alloc(0), 0), []);
  });

  it('takes granules marked known-zero as zero without reading their (stale) bytes', () => {
    const stale = block(3, [0, 1, 2]);
    const knownZero = new Uint8Array(3);
    knownZero[1] = 1;
    assert.deepEqual(planBlockSegments(stale, 0, knownZero), [
      { startBytes: 0, endBytes: G, zero: false },
      { startBytes: G, endBytes: 2 * G, zero: true },
      { startBytes: 2 * G, endBytes: 3 * G, zero: false },
    ]);
  });

  it('isZeroGranule judges whole and partial granules', () => {
    assert.equal(isZeroGranule(Buffer.alloc(G)), true);
    assert.equal(isZeroGranule(Buffer.alloc(100)), true);
    assert.equal(isZeroGranule(block(1, [0])), false);
  });
});
