import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { unusedRanges } from '../../../src/boot/refuge-punch.ts';

const r = (offsetBytes: number, lengthBytes: number) => ({ offsetBytes, lengthBytes });

describe('unusedRanges', () => {
  it('is the complement of the used ranges within the file, merged and in order', () => {
    assert.deepEqual(unusedRanges([r(8192, 4096), r(0, 4096), r(12288, 4096)], 32768), [
      r(4096, 4096),
      r(16384, 16384),
    ]);
  });

  it('gives the whole file when nothing is used, and nothing when all is', () => {
    assert.deepEqual(unusedRanges([], 8192), [r(0, 8192)]);
    assert.deepEqual(unusedRanges([r(0, 8192)], 8192), []);
  });

  it('tolerates overlapping used ranges', () => {
    assert.deepEqual(unusedRanges([r(0, 8192), r(4096, 8192)], 16384), [r(12288, 4096)]);
  });
});
