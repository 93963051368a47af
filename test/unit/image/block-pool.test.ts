import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockPool } from '../../../src/image/block-pool.ts';

describe('BlockPool', () => {
  it('cuts distinct blocks from the slab and refuses a slab too small', () => {
    const slab = Buffer.alloc(12);
    const pool = new BlockPool(slab, 3, 4);
    const blocks = [pool.takeNow(), pool.takeNow(), pool.takeNow()];
    for (const [index, block] of blocks.entries()) block.fill(index + 1);
    assert.deepEqual([...slab], [3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1]);
    assert.throws(() => pool.takeNow(), /no free write block/);
    assert.throws(() => new BlockPool(Buffer.alloc(7), 2, 4), RangeError);
  });

  it('makes a taker wait until a block is given back', async () => {
    const pool = new BlockPool(Buffer.alloc(4), 1, 4);
    const only = pool.takeNow();
    let taken: Buffer | undefined;
    const waiting = pool
      .take(() => {})
      .then((block) => {
        taken = block;
      });
    await new Promise((resolvePromise) => setImmediate(resolvePromise));
    assert.equal(taken, undefined, 'no block is free yet');
    pool.give(only);
    await waiting;
    assert.equal(taken, only);
  });

  it('throws what afterWait throws once the wait ends (a write failed meanwhile)', async () => {
    const pool = new BlockPool(Buffer.alloc(4), 1, 4);
    const only = pool.takeNow();
    const waiting = pool.take(() => {
      throw new Error('write failed');
    });
    pool.give(only);
    await assert.rejects(waiting, /write failed/);
  });
});
