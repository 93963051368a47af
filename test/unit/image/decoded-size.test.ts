import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReimageError } from '../../../src/core/reimage-error.ts';
import { checkImageFits, type TargetInfo } from '../../../src/disk/index.ts';
import type { BlockMap } from '../../../src/image/block-map.ts';
import { type KnownSize, refuseSizeConflict, sizeAllows, sizeMismatch } from '../../../src/image/decoded-size.ts';

const exact: KnownSize = { maxBytes: 1000, exact: true, source: 'container' };
const bound: KnownSize = { maxBytes: 1000, exact: false, source: 'lbzip2 -t' };

describe('the decoded size against what was known of it', () => {
  const table: ReadonlyArray<[KnownSize, number, boolean, boolean]> = [
    // size, decoded bytes, ended, allowed
    [exact, 500, false, true],
    [exact, 1000, false, true],
    [exact, 1001, false, false],
    [exact, 1000, true, true],
    [exact, 999, true, false],
    [bound, 999, true, true],
    [bound, 1000, true, true],
    [bound, 1001, true, false],
    [bound, 1001, false, false],
  ];
  for (const [size, decodedBytes, ended, allowed] of table) {
    it(`${size.exact ? 'exact' : 'bound'} ${size.maxBytes}: ${decodedBytes} bytes${ended ? ' at the end' : ' so far'} is ${allowed ? 'allowed' : 'refused'}`, () => {
      assert.equal(sizeAllows(size, decodedBytes, ended), allowed);
    });
  }

  it('names what was expected, what was found and where the size came from', () => {
    const ended = sizeMismatch('/i.zst', exact, 999, true);
    assert.equal(ended.code, 'REIMAGE_IMAGE_SIZE_MISMATCH');
    assert.deepEqual(ended.evidence, { path: '/i.zst', expected: 1000, actual: 999, source: 'container' });
    const early = sizeMismatch('/i.bz2', bound, 1001, false);
    assert.equal(early.evidence.expected, '<= 1000');
    assert.match(early.message, /more than 1000 bytes/);
  });
});

describe('checkImageFits (the one "image larger than target" check)', () => {
  const target: TargetInfo = {
    path: '/dev/sdz',
    realPath: '/dev/sdz',
    kind: 'block-device',
    sizeBytes: 4096,
    logicalBlockSizeBytes: 512,
    directIoAlignmentBytes: 512,
    deviceNumber: '8:0',
    identity: 'block 8:0',
  };

  it('accepts an image up to the target size', () => {
    checkImageFits(target, 4096);
    checkImageFits(target, 1);
  });

  it('refuses a larger one untouched, with evidence about the target', () => {
    assert.throws(
      () => checkImageFits(target, 4097),
      (e: unknown) => {
        assert.ok(e instanceof Error && 'code' in e);
        const error = e as Error & { code: string; targetTouched: boolean; evidence: Record<string, unknown> };
        assert.equal(error.code, 'REIMAGE_TARGET_TOO_SMALL');
        assert.equal(error.targetTouched, false);
        assert.equal(error.evidence.expected, '>= 4097');
        assert.equal(error.evidence.actual, 4096);
        return true;
      },
    );
  });
});

describe('refuseSizeConflict (a given size against a block map, in the writer itself)', () => {
  const map: BlockMap = {
    version: '2.0',
    imageSizeBytes: 8192,
    blockSizeBytes: 4096,
    blocksCount: 2,
    mappedBlocksCount: 1,
    checksumType: 'sha256',
    ranges: [],
    mappedBytes: 4096,
  };

  it('accepts agreement, or either size alone', () => {
    refuseSizeConflict(map, 8192);
    refuseSizeConflict(map, undefined);
    refuseSizeConflict(undefined, 1234);
  });

  it('refuses two sizes that differ, untouched, saying which to correct', () => {
    assert.throws(
      () => refuseSizeConflict(map, 4096),
      (e: unknown) => {
        assert.ok(e instanceof ReimageError);
        assert.equal(e.code, 'REIMAGE_IMAGE_SIZE_MISMATCH');
        assert.equal(e.targetState, 'untouched');
        assert.match(e.message, /reimage image inspect/);
        return true;
      },
    );
  });
});
