import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deviceNumbers } from '../../../src/core/device-number.ts';

/** glibc's makedev, written out: the encoding deviceNumbers must undo. */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

describe('deviceNumbers', () => {
  const table: [number, number][] = [
    [8, 1],
    [7, 0],
    [259, 300],
    [4095, 255],
    [4096, 1048575],
  ];
  for (const [major, minor] of table) {
    it(`${major}:${minor}`, () => {
      assert.deepEqual(deviceNumbers(makedev(major, minor)), { major, minor });
      if (major < 4096) assert.deepEqual(deviceNumbers(Number(makedev(major, minor))), { major, minor });
    });
  }
});
