import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freeDiskRanges } from '../../../src/boot/refuge-room.ts';

describe('freeDiskRanges', () => {
  it('is the complement of the allocated runs, in disk bytes from the partition start', () => {
    const allocated = {
      blockSizeBytes: 1024,
      ranges: [
        { firstBlock: 0, blockCount: 10 },
        { firstBlock: 20, blockCount: 5 },
      ],
    };
    assert.deepEqual(freeDiskRanges(allocated, 40, 1048576, 64 * 1024), [
      { offsetBytes: 1048576 + 10 * 1024, lengthBytes: 10 * 1024 },
      { offsetBytes: 1048576 + 25 * 1024, lengthBytes: 15 * 1024 },
    ]);
  });
  it('stops at the end of the filesystem, not of the partition (blocks past it belong to no file)', () => {
    const allocated = { blockSizeBytes: 4096, ranges: [{ firstBlock: 0, blockCount: 2 }] };
    assert.deepEqual(freeDiskRanges(allocated, 4, 0, 1 << 20), [{ offsetBytes: 8192, lengthBytes: 8192 }]);
  });
  it('stops at the end of the partition for a filesystem that claims more', () => {
    const allocated = { blockSizeBytes: 4096, ranges: [{ firstBlock: 0, blockCount: 1 }] };
    assert.deepEqual(freeDiskRanges(allocated, 100, 0, 3 * 4096), [{ offsetBytes: 4096, lengthBytes: 8192 }]);
  });
  it('is empty for a full filesystem', () => {
    const allocated = { blockSizeBytes: 4096, ranges: [{ firstBlock: 0, blockCount: 8 }] };
    assert.deepEqual(freeDiskRanges(allocated, 8, 0, 1 << 20), []);
  });
});
