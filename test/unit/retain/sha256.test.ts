import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { createSha256 } from '../../../src/retain/sha256.ts';

const reference = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('createSha256', () => {
  const data = Buffer.from('PRIVATE KEY old machine\n');
  const cases: Array<[string, Buffer[]]> = [
    ['empty content, no piece', []],
    ['one piece (one-shot)', [data]],
    ['several pieces (incremental)', [data.subarray(0, 5), data.subarray(5, 6), data.subarray(6)]],
  ];
  for (const [name, pieces] of cases) {
    it(`matches createHash: ${name}`, () => {
      const total = Buffer.concat(pieces);
      const hash = createSha256(total.length);
      for (const piece of pieces) hash.update(piece);
      assert.equal(hash.hex(), reference(total));
    });
  }

  it('hashes a piece when fed, so a reused buffer does not change the digest', () => {
    const window = Buffer.from(data);
    const hash = createSha256(window.length);
    hash.update(window);
    window.fill(0);
    assert.equal(hash.hex(), reference(data));
  });

  it('refuses content beyond the announced size', () => {
    const hash = createSha256(data.length);
    hash.update(data);
    assert.throws(() => hash.update(data), RangeError);
  });
});
