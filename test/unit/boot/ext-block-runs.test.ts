import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  blockRunsTouching,
  blocksOf,
  describeRuns,
  intersectRuns,
  parseBadBlockList,
  parseBlockUninitGroups,
  parseExtGroups,
  parseUnusedMarkedBlocks,
  runsOf,
  subtractRuns,
} from '../../../src/boot/ext-block-runs.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { attachLoopAt } from '../../../src/disk/offset-loop.ts';

const run = (firstBlock: number, blockCount: number) => ({ firstBlock, blockCount });

describe('blockRunsTouching', () => {
  const cases: {
    name: string;
    ranges: { offsetBytes: number; lengthBytes: number }[];
    want: ReturnType<typeof run>[];
  }[] = [
    { name: 'aligned', ranges: [{ offsetBytes: 8192, lengthBytes: 8192 }], want: [run(2, 2)] },
    // One byte into a block protects that block whole, at both ends.
    { name: 'unaligned both ends', ranges: [{ offsetBytes: 4095, lengthBytes: 2 }], want: [run(0, 2)] },
    { name: 'inside one block', ranges: [{ offsetBytes: 4097, lengthBytes: 10 }], want: [run(1, 1)] },
    {
      name: 'two ranges sharing a block merge',
      ranges: [
        { offsetBytes: 4096, lengthBytes: 100 },
        { offsetBytes: 4296, lengthBytes: 4096 },
      ],
      want: [run(1, 2)],
    },
    {
      name: 'unsorted, apart',
      ranges: [
        { offsetBytes: 40960, lengthBytes: 1 },
        { offsetBytes: 0, lengthBytes: 4096 },
      ],
      want: [run(0, 1), run(10, 1)],
    },
    { name: 'empty range dropped', ranges: [{ offsetBytes: 4096, lengthBytes: 0 }], want: [] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(blockRunsTouching(c.ranges, 4096), c.want));

  it('refuses negative or fractional ranges', () => {
    for (const bad of [
      { offsetBytes: -1, lengthBytes: 1 },
      { offsetBytes: 0.5, lengthBytes: 1 },
      { offsetBytes: 0, lengthBytes: Number.NaN },
    ]) {
      assert.throws(
        () => blockRunsTouching([bad], 1024),
        (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_BOOT_RANGES_INVALID',
      );
    }
  });
});

describe('run arithmetic', () => {
  it('blocksOf and runsOf are inverse', () => {
    const runs = [run(1, 3), run(7, 1), run(9, 2)];
    assert.deepEqual(blocksOf(runs), [1, 2, 3, 7, 9, 10]);
    assert.deepEqual(runsOf(blocksOf(runs)), runs);
  });
  it('intersects', () => {
    assert.deepEqual(intersectRuns([run(0, 10), run(20, 5)], [run(5, 17)]), [run(5, 5), run(20, 2)]);
    assert.deepEqual(intersectRuns([run(0, 2)], [run(2, 2)]), []);
  });
  it('subtracts', () => {
    assert.deepEqual(subtractRuns([run(0, 10), run(20, 5)], [run(2, 2), run(8, 14)]), [
      run(0, 2),
      run(4, 4),
      run(22, 3),
    ]);
    assert.deepEqual(subtractRuns([run(0, 4)], []), [run(0, 4)]);
    assert.deepEqual(subtractRuns([run(3, 2)], [run(0, 10)]), []);
  });
  it('describes at most five runs', () => {
    assert.equal(describeRuns([run(1, 1), run(3, 2)]), '1, 3-4');
    assert.equal(describeRuns(blocksOf([run(0, 7)]).map((b) => run(b * 2, 1))), '0, 2, 4, 6, 8 and 2 more');
  });
});

describe('parseBadBlockList', () => {
  it('reads one block a line, sorted and distinct', () => {
    assert.deepEqual(parseBadBlockList('5000\n12\n5000\n\n'), [12, 5000]);
    assert.deepEqual(parseBadBlockList(''), []);
  });
  it('refuses a line that is not a block number (release would drop a bad block)', () => {
    assert.throws(
      () => parseBadBlockList('12\nBad blocks: 13\n'),
      (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
    );
  });
});

describe('parseBlockUninitGroups', () => {
  it('finds the groups whose bitmap the kernel computes', () => {
    const output = `Group 0: (Blocks 1-8192) csum 0x63c7
  Free blocks: 4913-4999
Group 1: (Blocks 8193-16384) csum 0xc8d2 [INODE_UNINIT]
Group 2: (Blocks 16385-24576) csum 0xc9b4 [INODE_UNINIT, BLOCK_UNINIT]
Group 3: (Blocks 24577-32767) [BLOCK_UNINIT, ITABLE_ZEROED]
`;
    assert.deepEqual(parseBlockUninitGroups(output), [run(16385, 8192), run(24577, 8191)]);
  });
});

describe('parseExtGroups', () => {
  it('reads number, span and flags', () => {
    assert.deepEqual(
      parseExtGroups(
        'Group 7: (Blocks 229376-262143) csum 0x1 [INODE_UNINIT, ITABLE_ZEROED]\nGroup 8: (Blocks 262144-294911)\n',
      ),
      [
        { group: 7, firstBlock: 229376, blockCount: 32768, flags: ['INODE_UNINIT', 'ITABLE_ZEROED'] },
        { group: 8, firstBlock: 262144, blockCount: 32768, flags: [] },
      ],
    );
  });
});

describe('parseUnusedMarkedBlocks', () => {
  it('takes the "-" bitmap differences (marked, used by nothing), not the "+" ones', () => {
    // e2fsck 1.47 -fn after debugfs setb 4900 5, setb 9000 20 and setb 9030.
    const output = `Pass 5: Checking group summary information
Block bitmap differences:  -(4900--4904) +5000 -(9000--9019) -9030
Fix? no

Free blocks count wrong for group #0 (3808, counted=3803).
Fix? no
`;
    assert.deepEqual(parseUnusedMarkedBlocks(output), [run(4900, 5), run(9000, 20), run(9030, 1)]);
    assert.deepEqual(parseUnusedMarkedBlocks('Pass 5: Checking group summary information\n'), []);
  });
});

describe('attachLoopAt refuses windows the loop driver cannot hold exactly', () => {
  for (const o of [
    { offsetBytes: 1000, sizeBytes: 4096 },
    { offsetBytes: 4096, sizeBytes: 4000 },
    { offsetBytes: -512, sizeBytes: 4096 },
    { offsetBytes: 0, sizeBytes: 0 },
  ]) {
    it(`offset ${o.offsetBytes}, size ${o.sizeBytes}`, async () => {
      // A path that cannot exist: the refusal must come before losetup is run.
      await assert.rejects(
        attachLoopAt('/nonexistent/disk', o),
        (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_DISK_LOOP_INVALID',
      );
    });
  }
});
