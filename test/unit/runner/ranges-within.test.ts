import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rangesWithin } from '../../../src/runner/armed-run.ts';

const r = (offsetBytes: number, lengthBytes: number) => ({ offsetBytes, lengthBytes });

describe('rangesWithin (the refuge inside one new partition, relative to its start)', () => {
  it('clips ranges to the partition and makes them relative to its start', () => {
    assert.deepEqual(rangesWithin([r(0, 4096), r(8192, 8192), r(20480, 4096), r(40960, 4096)], 12288, 16384), [
      r(0, 4096),
      r(8192, 4096),
    ]);
  });
  it('gives nothing for ranges that only touch the partition edges', () => {
    assert.deepEqual(rangesWithin([r(0, 4096), r(8192, 4096)], 4096, 4096), []);
  });
});
