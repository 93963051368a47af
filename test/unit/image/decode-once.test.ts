import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodedCopyBudgetBytes, memAvailableBytes, parseZstdSize } from '../../../src/image/decode-once.ts';

describe('parseZstdSize', () => {
  it("reads the exact decoded size from zstd -vv's summary line, padded or not", () => {
    // As zstd 1.5.4 prints it, for a 2 GiB image and for 3 bytes.
    assert.equal(
      parseZstdSize('/*stdin*\\            :  2.34%   (2147483648 B => 50311594 B, /*stdout*\\) \n'),
      2147483648,
    );
    assert.equal(parseZstdSize('/*stdin*\\            :533.33%   (     3 B =>     16 B, /*stdout*\\) \n'), 3);
  });

  it('gives undefined when there is no summary (the caller then counts the copy)', () => {
    assert.equal(parseZstdSize('/*stdin*\\ : 2.34% (2.00 GiB => 48.0 MiB, /*stdout*\\)'), undefined);
    assert.equal(parseZstdSize(''), undefined);
  });
});

describe('decodedCopyBudgetBytes (docs/adr/0206)', () => {
  it('is never more than the compressed image, a quarter of MemAvailable, or what the caller allows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reimage-budget-'));
    try {
      const image = join(dir, 'image.bz2');
      writeFileSync(image, Buffer.alloc(123_457));
      assert.equal(await decodedCopyBudgetBytes(image, undefined), 123_457);
      assert.equal(await decodedCopyBudgetBytes(image, 1000), 1000);
      assert.equal(await decodedCopyBudgetBytes(image, 0), 0);
      const quarter = Math.floor((await memAvailableBytes()) / 4);
      assert.ok(quarter > 0);
      // A sparse "image" larger than a quarter of the memory: the memory bounds the copy.
      const huge = join(dir, 'huge.bz2');
      writeFileSync(huge, '');
      truncateSync(huge, quarter * 8);
      // MemAvailable moves on a shared machine: the bound is a quarter of it, not the file's size.
      const budgetBytes = await decodedCopyBudgetBytes(huge, undefined);
      assert.ok(
        budgetBytes < quarter * 2 && budgetBytes > quarter / 2,
        `${budgetBytes} vs a quarter of ${quarter * 4}`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
