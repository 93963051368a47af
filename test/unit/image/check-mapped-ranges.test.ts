import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { checkMappedRanges } from '../../../src/image/check-mapped-ranges.ts';

const ok = { durableBytes: 0, checkpointBytes: 1024 * 1024, firstBlockBytes: 512 };

function refused(ranges: readonly { offsetBytes: number; lengthBytes: number }[], o = ok): string {
  try {
    checkMappedRanges(ranges, o);
  } catch (e) {
    assert.ok(isReimageError(e));
    assert.equal(e.code, 'REIMAGE_WRITE_RANGES_INVALID');
    assert.equal(e.targetTouched, false);
    return e.message;
  }
  assert.fail('accepted');
}

describe('checkMappedRanges', () => {
  it('returns the mapped bytes of a good map (touching ranges are fine)', () => {
    const ranges = [
      { offsetBytes: 0, lengthBytes: 4096 },
      { offsetBytes: 4096, lengthBytes: 512 },
      { offsetBytes: 1 << 20, lengthBytes: 1 << 20 },
    ];
    assert.equal(checkMappedRanges(ranges, { ...ok, firstBlockBytes: 4096, durableBytes: 4608 }), 4608 + (1 << 20));
  });

  it('refuses what it cannot write honestly, saying which range', () => {
    assert.match(refused([]), /first logical block/);
    assert.match(refused([{ offsetBytes: 512, lengthBytes: 512 }]), /first logical block/);
    assert.match(refused([{ offsetBytes: 0, lengthBytes: 512 }], { ...ok, firstBlockBytes: 4096 }), /bytes 0-4095/);
    assert.match(refused([{ offsetBytes: 0, lengthBytes: 1000 }]), /Range 0 .* not whole 512-byte sectors/);
    assert.match(
      refused([
        { offsetBytes: 0, lengthBytes: 4096 },
        { offsetBytes: 2048, lengthBytes: 4096 },
      ]),
      /Range 1 starts at byte 2048, before the previous range ends \(4096\)/,
    );
    assert.match(
      refused([
        { offsetBytes: 0, lengthBytes: 512 },
        { offsetBytes: 1024, lengthBytes: 0 },
      ]),
      /Range 1 .* not a whole, non-empty/,
    );
    assert.match(refused([{ offsetBytes: 0, lengthBytes: 512 }], { ...ok, durableBytes: 513 }), /resume figure 513/);
    assert.match(refused([{ offsetBytes: 0, lengthBytes: 512 }], { ...ok, durableBytes: -1 }), /resume figure -1/);
    assert.match(refused([{ offsetBytes: 0, lengthBytes: 512 }], { ...ok, checkpointBytes: 0 }), /checkpointBytes 0/);
  });
});
