import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MappedRangeWalker, resumeOffsetBytes } from '../../../src/image/mapped-range-walker.ts';

const ranges = [
  { offsetBytes: 0, lengthBytes: 4096 },
  { offsetBytes: 8192, lengthBytes: 1024 },
  { offsetBytes: 10240, lengthBytes: 512 },
  { offsetBytes: 20480, lengthBytes: 8192 },
];

describe('MappedRangeWalker', () => {
  it('gives the mapped pieces of each decoded run, with their place in the map', () => {
    const walker = new MappedRangeWalker(ranges);
    assert.deepEqual(walker.piecesOf(0, 3000), [{ diskOffsetBytes: 0, mappedOffsetBytes: 0, lengthBytes: 3000 }]);
    // Finishes the first range, skips the gap, takes the second and part of nothing else.
    assert.deepEqual(walker.piecesOf(3000, 6000), [
      { diskOffsetBytes: 3000, mappedOffsetBytes: 3000, lengthBytes: 1096 },
      { diskOffsetBytes: 8192, mappedOffsetBytes: 4096, lengthBytes: 808 },
    ]);
    assert.deepEqual(walker.piecesOf(9000, 12000), [
      { diskOffsetBytes: 9000, mappedOffsetBytes: 4904, lengthBytes: 216 },
      { diskOffsetBytes: 10240, mappedOffsetBytes: 5120, lengthBytes: 512 },
      { diskOffsetBytes: 20480, mappedOffsetBytes: 5632, lengthBytes: 520 },
    ]);
    assert.deepEqual(walker.piecesOf(21000, 100000), [
      { diskOffsetBytes: 21000, mappedOffsetBytes: 6152, lengthBytes: 7672 },
    ]);
    // Past the last range: nothing, however much more comes.
    assert.deepEqual(walker.piecesOf(121000, 5000), []);
  });

  it('gives nothing for runs in gaps, and the same pieces whatever the chunking', () => {
    const whole = new MappedRangeWalker(ranges).piecesOf(0, 40000);
    const walker = new MappedRangeWalker(ranges);
    const bytes: number[] = [];
    for (let at = 0; at < 40000; at += 777) {
      for (const piece of walker.piecesOf(at, Math.min(777, 40000 - at)))
        for (let i = 0; i < piece.lengthBytes; i++) bytes.push(piece.diskOffsetBytes + i);
    }
    const expected: number[] = [];
    for (const piece of whole) for (let i = 0; i < piece.lengthBytes; i++) expected.push(piece.diskOffsetBytes + i);
    assert.deepEqual(bytes, expected);
    assert.equal(bytes.length, 4096 + 1024 + 512 + 8192);
  });
});

describe('resumeOffsetBytes', () => {
  const table: readonly [durableBytes: number, alignBytes: number, expected: number][] = [
    [0, 512, 0],
    [4096, 512, 8192], // all of the first range durable: the second range's start
    [4096 + 600, 512, 8192 + 512], // mid-range: back to a sector boundary
    [4096 + 600, 4096, 8192], // never before the range's own start
    [4096 + 1024 + 512 + 5000, 4096, 20480 + 4096],
    [4096 + 1024 + 512 + 8192, 4096, 28672], // everything durable: the end of the map
  ];
  for (const [durableBytes, alignBytes, expected] of table) {
    it(`durable ${durableBytes}, units of ${alignBytes} → byte ${expected}`, () => {
      assert.equal(resumeOffsetBytes(ranges, durableBytes, alignBytes), expected);
    });
  }
});
