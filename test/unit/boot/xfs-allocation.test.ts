import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseXfsFreeSpace } from '../../../src/boot/xfs-allocation.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';

/** xfs_db 6.x output of `p blocksize agblocks dblocks` and `freesp -d` for 2 AGs of 100 blocks (the last short). */
const OUTPUT = `blocksize = 4096
agblocks = 100
dblocks = 180
    agno    agbno      len
       0        6        1
       0        7        3
       0       40       60
       1       10       70
   from      to extents  blocks    pct
      1       1       1       1   0.74
`;

describe('parseXfsFreeSpace', () => {
  it('maps the complement of the free extents, numbering blocks agno * agblocks + agbno', () => {
    const allocation = parseXfsFreeSpace(OUTPUT);
    assert.equal(allocation.blockSizeBytes, 4096);
    assert.deepEqual(allocation.ranges, [
      { firstBlock: 0, blockCount: 6 },
      { firstBlock: 10, blockCount: 30 },
      { firstBlock: 100, blockCount: 10 },
    ]);
  });
  it('maps the rest of a short last AG', () => {
    const allocation = parseXfsFreeSpace(
      OUTPUT.replace('       1       10       70\n', '       1       10       60\n'),
    );
    assert.deepEqual(allocation.ranges.at(-1), { firstBlock: 170, blockCount: 10 });
  });
  const refusals: { name: string; output: string }[] = [
    { name: 'no block size', output: OUTPUT.replace('blocksize = 4096\n', '') },
    { name: 'an extent past its AG', output: OUTPUT.replace('0       40       60', '0       40       61') },
    { name: 'an extent past the filesystem', output: OUTPUT.replace('1       10       70', '1       10       90') },
    { name: 'overlapping extents', output: OUTPUT.replace('0        7        3', '0        6        3') },
  ];
  for (const { name, output } of refusals) {
    it(`refuses ${name}`, () =>
      assert.throws(
        () => parseXfsFreeSpace(output),
        (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
      ));
  }
});
