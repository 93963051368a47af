import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseFilefrag } from '../../../src/boot/file-extents.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';

/** `filefrag -v -s -b1` (e2fsprogs 1.47) of a fallocated 5 MB file on a 1 KiB-block ext4, then split in three. */
const OUTPUT = `Filesystem type is: ef53
File size of ./reimage-refuge is 5000000 (5000192 blocks of 1 bytes)
 ext:     logical_offset:        physical_offset: length:   expected: flags:
   0:        0.. 1048575:    1461248..   2509823: 1048576:            
   1:  1048576.. 2097151:    4194304..   5242879: 1048576:    2509824: unwritten
   2:  2097152.. 5000191:    5242880..   8145919: 2903040:             last,unwritten,eof
./reimage-refuge: 2 extents found
`;

function refusal(output: string): string {
  try {
    parseFilefrag(output);
  } catch (error) {
    assert.ok(isReimageError(error), String(error));
    assert.equal(error.code, 'REIMAGE_REFUGE_EXTENTS_UNSUITABLE');
    return error.message;
  }
  assert.fail('parseFilefrag accepted it');
}

describe('parseFilefrag', () => {
  it('reads each extent in bytes, with and without the "expected" column, and cuts the last at the size', () => {
    const { sizeBytes, extents } = parseFilefrag(OUTPUT);
    assert.equal(sizeBytes, 5000000);
    assert.deepEqual(
      extents.map(({ logicalBytes, physicalBytes, lengthBytes }) => [logicalBytes, physicalBytes, lengthBytes]),
      [
        [0, 1461248, 1048576],
        [1048576, 4194304, 1048576],
        [2097152, 5242880, 5000000 - 2097152],
      ],
    );
    assert.deepEqual(extents[0]?.flags, []);
  });
  it('accepts merged (a block-mapped ext3 file)', () => {
    assert.equal(parseFilefrag(OUTPUT.replace('last,unwritten,eof', 'last,merged,eof')).extents.length, 3);
  });
  it('drops extents past the end of the file (xfs preallocation)', () => {
    const output = OUTPUT.replace(
      './reimage-refuge: 2',
      '   3:  5000192.. 5070847:    9000000..   9070655:  70656:             last,unwritten\n./reimage-refuge: 2',
    );
    assert.equal(parseFilefrag(output).extents.length, 3);
  });
  for (const flag of [
    'unknown_loc',
    'delalloc',
    'encoded',
    'encrypted',
    'not_aligned',
    'inline',
    'tail_packed',
    'shared',
    'hole',
    '0x1000',
  ]) {
    it(`refuses an extent that is ${flag}, naming it`, () => {
      assert.match(refusal(OUTPUT.replace('last,unwritten,eof', `last,${flag},eof`)), new RegExp(flag));
    });
  }
  it('refuses a hole in the file (a sparse region owns no block)', () => {
    assert.match(refusal(OUTPUT.replace('  1048576.. 2097151:', '  1052672.. 2101247:')), /hole/);
  });
  it('with holes allowed (a refuge arm punched), accepts a hole and a short end but still refuses overlaps', () => {
    const punched = OUTPUT.replace(/ {3}1:.*\n/, '');
    assert.match(refusal(punched), /hole/);
    assert.deepEqual(
      parseFilefrag(punched, { holes: true }).extents.map((extent) => extent.logicalBytes),
      [0, 2097152],
    );
    const shortEnd = OUTPUT.replace(/ {3}2:.*\n/, '');
    assert.equal(parseFilefrag(shortEnd, { holes: true }).extents.length, 2);
    const overlap = OUTPUT.replace('  1048576.. 2097151:', '  1044480.. 2093055:');
    assert.throws(() => parseFilefrag(overlap, { holes: true }), /overlap/);
  });
  it('refuses extents that stop before the end', () => {
    assert.match(refusal(OUTPUT.replace(/ {3}2:.*\n/, '')), /do not reach the end/);
  });
  it("refuses FIBMAP's fallback output (no extent table: FIEMAP or its sync flag unsupported)", () => {
    const fibmap = `Filesystem type is: ef53
File size of ./reimage-refuge is 8192 (8 blocks of 1024 bytes)
./reimage-refuge: 1 extent found
`;
    assert.match(refusal(fibmap), /bytes/);
    assert.match(refusal(fibmap.replace('of 1024 bytes', 'of 1 bytes')), /no FIEMAP extents/);
  });
  it('refuses an extent whose ends disagree with its length', () => {
    assert.match(refusal(OUTPUT.replace('1461248..   2509823', '1461248..   2509824')), /ends/);
  });
  it('refuses output without a file size', () => {
    assert.match(refusal('FIEMAP failed with unknown flags 1\n'), /no file size/);
  });
  it('reads an empty file as no extents', () => {
    const empty = 'File size of ./x is 0 (0 blocks of 1 bytes)\n./x: 0 extents found\n';
    assert.deepEqual(parseFilefrag(empty).extents, []);
  });
});
