import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { grubBlocklist, MAX_FRAGMENT_SECTORS, mergeAdjacentRanges } from '../../../src/boot/grub-blocklist.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';

describe('grubBlocklist', () => {
  const cases: {
    name: string;
    ranges: { startLba: number; sectorCount: number }[];
    device?: string;
    expected: string;
  }[] = [
    { name: 'one range', ranges: [{ startLba: 2048, sectorCount: 100 }], expected: '(hd0)2048+100' },
    {
      name: 'fragments: the device once, then ,START+COUNT',
      ranges: [
        { startLba: 4096, sectorCount: 8 },
        { startLba: 100, sectorCount: 3 },
        { startLba: 9000, sectorCount: 1 },
      ],
      expected: '(hd0)4096+8,100+3,9000+1',
    },
    {
      name: 'adjacent fragments joined, file order kept',
      ranges: [
        { startLba: 10, sectorCount: 5 },
        { startLba: 15, sectorCount: 5 },
        { startLba: 2, sectorCount: 1 },
        { startLba: 3, sectorCount: 1 },
      ],
      expected: '(hd0)10+10,2+2',
    },
    { name: 'another device', ranges: [{ startLba: 1, sectorCount: 1 }], device: '(hd1)', expected: '(hd1)1+1' },
    {
      name: 'the largest fragment',
      ranges: [{ startLba: 0, sectorCount: MAX_FRAGMENT_SECTORS }],
      expected: `(hd0)0+${MAX_FRAGMENT_SECTORS}`,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(grubBlocklist(c.ranges, c.device === undefined ? {} : { device: c.device }), c.expected);
    });
  }

  const refused: { name: string; ranges: { startLba: number; sectorCount: number }[]; device?: string }[] = [
    { name: 'no range', ranges: [] },
    { name: 'zero sectors (GRUB refuses a 0 length)', ranges: [{ startLba: 5, sectorCount: 0 }] },
    { name: 'negative start', ranges: [{ startLba: -1, sectorCount: 1 }] },
    { name: 'fractional count', ranges: [{ startLba: 1, sectorCount: 1.5 }] },
    { name: 'too long a fragment', ranges: [{ startLba: 1, sectorCount: MAX_FRAGMENT_SECTORS + 1 }] },
    { name: 'beyond exact integers', ranges: [{ startLba: Number.MAX_SAFE_INTEGER, sectorCount: 1 }] },
    { name: 'a device that is not one', ranges: [{ startLba: 1, sectorCount: 1 }], device: "(hd0)' ; halt" },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, () => {
      assert.throws(
        () => grubBlocklist(c.ranges, c.device === undefined ? {} : { device: c.device }),
        (error: unknown) => error instanceof ReimageError && error.code === 'REIMAGE_BOOT_RANGES_INVALID',
      );
    });
  }

  it('mergeAdjacentRanges does not merge a range that only touches an earlier one backwards', () => {
    assert.deepEqual(
      mergeAdjacentRanges([
        { startLba: 20, sectorCount: 5 },
        { startLba: 10, sectorCount: 10 },
      ]),
      [
        { startLba: 20, sectorCount: 5 },
        { startLba: 10, sectorCount: 10 },
      ],
    );
  });
});
