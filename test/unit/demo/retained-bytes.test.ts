import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgeRetainedBytes, type OccurrencePlace } from '../../../src/demo/retained-bytes.ts';

const places = {
  restored: new Map([['/k', [{ offsetBytes: 8192, lengthBytes: 4096 }]]]),
  oldCopy: new Map([
    ['/k', [{ offsetBytes: 40960, lengthBytes: 4096 }]],
    [
      '/m',
      [
        { offsetBytes: 61440, lengthBytes: 8192 },
        { offsetBytes: 81920, lengthBytes: 4096 },
      ],
    ],
  ]),
  mapped: [{ offsetBytes: 0, lengthBytes: 65536 }],
};

describe('judgeRetainedBytes', () => {
  const rows: [string, string, number, number, OccurrencePlace][] = [
    ['inside the restored file', '/k', 8192, 400, 'restored'],
    ['at the restored block end', '/k', 12288 - 400, 400, 'restored'],
    ['one byte past the restored block', '/k', 12288 - 399, 400, 'stray'],
    ['in another secret’s restored file', '/m', 8192, 400, 'stray'],
    ['the old copy, but the new image maps it', '/k', 40960, 400, 'stray'],
    ['the old copy the new image leaves alone', '/m', 81920, 400, 'old-copy'],
    ['the old copy straddling a mapped range', '/m', 65536 - 10, 400, 'stray'],
    ['nowhere known', '/k', 100_000, 400, 'stray'],
  ];
  for (const [name, path, offsetBytes, lengthBytes, place] of rows) {
    it(name, () => {
      const verdict = judgeRetainedBytes([{ path, offsetBytes, lengthBytes }], places);
      assert.equal(verdict.occurrences[0]?.place, place);
      assert.equal(verdict.allowed, place !== 'stray');
    });
  }
  it('allows a disk with no occurrence at all', () => {
    assert.deepEqual(judgeRetainedBytes([], places), { allowed: true, occurrences: [] });
  });
});
