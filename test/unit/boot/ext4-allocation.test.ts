import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDumpe2fs } from '../../../src/boot/ext4-allocation.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';

/** The parts of dumpe2fs 1.47's output the parser reads, for a 1 KiB-block filesystem of 3 groups. */
const OUTPUT = `dumpe2fs 1.47.0 (5-Feb-2023)
Filesystem volume name:   <none>
Block count:              24576
Free blocks:              20000
First block:              1
Block size:               1024

Group 0: (Blocks 1-8192) csum 0x1234 [ITABLE_ZEROED]
  Primary superblock at 1, Group descriptors at 2-2
  Free blocks: 2941-8192
  Free inodes: 12-2048
Group 1: (Blocks 8193-16384) csum 0xd7c7 [INODE_UNINIT, BLOCK_UNINIT, ITABLE_ZEROED]
  Backup superblock at 8193, Group descriptors at 8194-8194
  Free blocks: 8451-9000, 9002, 9004-16384
  Free inodes: 2049-4096
Group 2: (Blocks 16385-24575) csum 0x1cb2 [INODE_UNINIT, ITABLE_ZEROED]
  Free blocks: 
  Free inodes: 4097-6144
`;

describe('parseDumpe2fs', () => {
  it('maps the complement of the free lists: block 0, metadata, the used blocks, a full group', () => {
    const allocation = parseDumpe2fs(OUTPUT);
    assert.equal(allocation.blockSizeBytes, 1024);
    assert.deepEqual(allocation.ranges, [
      { firstBlock: 0, blockCount: 2941 },
      { firstBlock: 8193, blockCount: 8451 - 8193 },
      { firstBlock: 9001, blockCount: 1 },
      { firstBlock: 9003, blockCount: 1 },
      { firstBlock: 16385, blockCount: 24576 - 16385 },
    ]);
  });

  const refusals: { name: string; output: string }[] = [
    { name: 'no block count', output: OUTPUT.replace(/^Block count.*$/m, '') },
    { name: 'a missing free list', output: OUTPUT.replace('  Free blocks: \n', '') },
    { name: 'an unreadable free list', output: OUTPUT.replace('9002,', 'x9002,') },
    { name: 'a free run past the end', output: OUTPUT.replace('9004-16384', '9004-99999') },
    { name: 'overlapping free runs', output: OUTPUT.replace('9004-16384', '9004-16384, 16000') },
  ];
  for (const { name, output } of refusals) {
    it(`refuses ${name}`, () =>
      assert.throws(
        () => parseDumpe2fs(output),
        (e: unknown) => isReimageError(e) && e.code === 'REIMAGE_BOOT_FILESYSTEM_UNREADABLE',
      ));
  }
});
