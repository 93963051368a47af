import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkBlockMap, findUncovered } from '../../../src/boot/check-block-map.ts';
import type { DiskMap } from '../../../src/boot/disk-map.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import type { ByteRange } from '../../../src/disk/byte-range.ts';
import type { BlockMap } from '../../../src/image/block-map.ts';

const BLOCK = 4096;
const IMAGE_BYTES = 100 * BLOCK;

function diskMap(...ranges: [number, number][]): DiskMap {
  const byteRanges = ranges.map(([offsetBytes, lengthBytes]) => ({ offsetBytes, lengthBytes }));
  return {
    imageSizeBytes: IMAGE_BYTES,
    ranges: byteRanges,
    mappedBytes: byteRanges.reduce((sum, r) => sum + r.lengthBytes, 0),
    wholePartitions: [],
  };
}

/** A bmap with 4 KiB blocks mapping the given inclusive block runs. */
function bmap(...runs: [number, number][]): BlockMap {
  const ranges = runs.map(([firstBlock, lastBlock]) => ({
    firstBlock,
    lastBlock,
    offsetBytes: firstBlock * BLOCK,
    lengthBytes: (lastBlock - firstBlock + 1) * BLOCK,
  }));
  const mappedBytes = ranges.reduce((sum, r) => sum + r.lengthBytes, 0);
  return {
    version: '2.0',
    imageSizeBytes: IMAGE_BYTES,
    blockSizeBytes: BLOCK,
    blocksCount: 100,
    mappedBlocksCount: mappedBytes / BLOCK,
    checksumType: undefined,
    ranges,
    mappedBytes,
  };
}

describe('findUncovered', () => {
  const cases: { name: string; map: DiskMap; bmap: BlockMap; expected: ByteRange | undefined }[] = [
    { name: 'an empty map is covered by anything', map: diskMap(), bmap: bmap(), expected: undefined },
    {
      name: 'exactly covered',
      map: diskMap([0, BLOCK], [10 * BLOCK, 512]),
      bmap: bmap([0, 0], [10, 10]),
      expected: undefined,
    },
    {
      name: 'a bmap mapping more (holes-based) is fine',
      map: diskMap([BLOCK + 10, 100]),
      bmap: bmap([0, 50]),
      expected: undefined,
    },
    {
      name: 'a range spanning two adjacent bmap ranges is covered',
      map: diskMap([0, 4 * BLOCK]),
      bmap: bmap([0, 1], [2, 3]),
      expected: undefined,
    },
    {
      name: 'the first uncovered bytes are reported, up to where the bmap starts again',
      map: diskMap([0, 6 * BLOCK]),
      bmap: bmap([0, 1], [4, 9]),
      expected: { offsetBytes: 2 * BLOCK, lengthBytes: 2 * BLOCK },
    },
    {
      name: "a range past the bmap's last range is uncovered",
      map: diskMap([0, BLOCK], [50 * BLOCK, 100]),
      bmap: bmap([0, 0]),
      expected: { offsetBytes: 50 * BLOCK, lengthBytes: 100 },
    },
    {
      name: 'a zero-filled file block the bmap skipped (a hole-punching bmap) is caught',
      map: diskMap([0, 3 * BLOCK]),
      bmap: bmap([0, 0], [2, 2]),
      expected: { offsetBytes: BLOCK, lengthBytes: BLOCK },
    },
  ];
  for (const { name, map, bmap: given, expected } of cases) {
    it(name, () => assert.deepEqual(findUncovered(map, given), expected));
  }
});

describe('checkBlockMap', () => {
  it('refuses a bmap that leaves out allocated bytes, naming them', () => {
    assert.throws(
      () => checkBlockMap(diskMap([0, 2 * BLOCK]), bmap([0, 0]), 'new.bmap'),
      (e: unknown) => {
        assert.ok(isReimageError(e));
        assert.equal(e.code, 'REIMAGE_BOOT_BMAP_INCOMPLETE');
        assert.equal(e.evidence.offsetBytes, BLOCK);
        assert.equal(e.targetState, 'untouched');
        return true;
      },
    );
  });
  it('refuses a bmap made for an image of another size', () => {
    assert.throws(
      () => checkBlockMap({ ...diskMap(), imageSizeBytes: IMAGE_BYTES + 1 }, bmap()),
      (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_BOOT_BMAP_INCOMPLETE',
    );
  });
  it('accepts a covering bmap', () => checkBlockMap(diskMap([0, BLOCK]), bmap([0, 0])));
});
