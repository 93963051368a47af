import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLbzip2RatioBound } from '../../../src/image/image-size.ts';

describe('parseLbzip2RatioBound', () => {
  const report = 'lbzip2: "/x/disk.img.bz2": compression ratio is 1:41.301, space savings is 97.58%\n';

  it('bounds the decoded size from above, by half a unit of the last printed digit', () => {
    // The real case: 51995725 compressed bytes that decode to exactly 2 GiB.
    const bound = parseLbzip2RatioBound(report, 51_995_725);
    assert.ok(bound !== undefined);
    assert.ok(bound >= 2 * 1024 ** 3, `${bound} must not be below the real size`);
    assert.ok(bound - 2 * 1024 ** 3 < 51_995_725 * 0.001, 'and stays close to it');
  });

  it('follows the number of decimals printed', () => {
    const bound = parseLbzip2RatioBound('compression ratio is 1:2.5,', 1000);
    assert.equal(bound, Math.ceil(2.55 * 1000) + 1);
  });

  it('gives undefined when the report has no ratio (the caller then counts exactly)', () => {
    assert.equal(parseLbzip2RatioBound('lbzip2: something else\n', 1000), undefined);
    assert.equal(parseLbzip2RatioBound('compression ratio is 1:inf', 1000), undefined);
  });
});
