import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type RefugeItemRanges,
  readItemRaw,
  readLogicalChunks,
  sha256ItemRaw,
  writeItemRaw,
} from '../../../src/boot/refuge-io.ts';
import type { ByteRange } from '../../../src/disk/index.ts';
import { SeededRandom } from '../../fuzz/seeded-random.ts';

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** `count` one-to-four-block ranges scattered over `diskBlocks`, not overlapping, in a shuffled order. */
function scatteredRanges(random: SeededRandom, count: number): ByteRange[] {
  const ranges: ByteRange[] = [];
  let block = 0;
  for (let i = 0; i < count; i++) {
    block += random.below(4);
    const blocks = 1 + random.below(4);
    ranges.push({ offsetBytes: block * 4096, lengthBytes: blocks * 4096 });
    block += blocks;
  }
  for (let i = ranges.length - 1; i > 0; i--) {
    const j = random.below(i + 1);
    const [a, b] = [ranges[i], ranges[j]];
    if (a !== undefined && b !== undefined) [ranges[i], ranges[j]] = [b, a];
  }
  return ranges;
}

async function* oddChunks(data: Buffer, random: SeededRandom): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; ) {
    const length = 1 + random.below(random.chance(0.5) ? 700 : 20_000);
    yield data.subarray(at, at + length);
    at += length;
  }
}

describe('refuge item I/O through scattered ranges', () => {
  let dir = '';
  let disk: FileHandle | undefined;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'reimage-refuge-io-unit-'));
    const path = join(dir, 'disk.img');
    writeFileSync(path, Buffer.alloc(4 * 1024 * 1024, 0x5a));
    disk = await open(path, 'r+');
  });
  after(async () => {
    await disk?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a stream of odd chunk sizes and reads it back in any chunk size (30 seeds)', async () => {
    assert.ok(disk !== undefined);
    for (let seed = 1; seed <= 30; seed++) {
      const random = new SeededRandom(seed);
      const ranges = scatteredRanges(random, 1 + random.below(40));
      const coveredBytes = ranges.reduce((sum, r) => sum + r.lengthBytes, 0);
      const sizeBytes = coveredBytes - random.below(4096);
      const data = Buffer.from(Array.from({ length: sizeBytes }, () => random.below(256)));
      const item: RefugeItemRanges = { name: 'initramfs', sizeBytes, ranges };
      await writeItemRaw(disk, item, random.chance(0.5) ? oddChunks(data, random) : data);
      assert.equal(sha256(await readItemRaw(disk, item)), sha256(data), `seed ${seed}`);
      assert.equal(await sha256ItemRaw(disk, item), sha256(data), `seed ${seed}`);
      const chunkBytes = 4096 * (1 + random.below(5));
      const parts: Buffer[] = [];
      for await (const chunk of readLogicalChunks(disk, 'initramfs', ranges, 0, sizeBytes, chunkBytes)) {
        assert.ok(chunk.length <= chunkBytes);
        parts.push(chunk);
      }
      assert.equal(sha256(Buffer.concat(parts)), sha256(data), `seed ${seed}, chunks of ${chunkBytes}`);
    }
  });

  it('refuses a stream longer or shorter than the item', async () => {
    assert.ok(disk !== undefined);
    const item: RefugeItemRanges = { name: 'plan', sizeBytes: 5000, ranges: [{ offsetBytes: 0, lengthBytes: 8192 }] };
    async function* bytes(n: number): AsyncGenerator<Uint8Array> {
      yield Buffer.alloc(n, 1);
    }
    await assert.rejects(writeItemRaw(disk, item, bytes(5001)), /is more than 5000 bytes; it was placed for 5000/);
    await assert.rejects(writeItemRaw(disk, item, bytes(4999)), { code: 'REIMAGE_REFUGE_LAYOUT_INVALID' });
  });

  it('refuses ranges that do not cover the size rounded up, or are not whole blocks', async () => {
    assert.ok(disk !== undefined);
    const cases: RefugeItemRanges[] = [
      { name: 'plan', sizeBytes: 8193, ranges: [{ offsetBytes: 0, lengthBytes: 8192 }] },
      { name: 'plan', sizeBytes: 100, ranges: [{ offsetBytes: 0, lengthBytes: 8192 }] },
      { name: 'plan', sizeBytes: 100, ranges: [{ offsetBytes: 100, lengthBytes: 4096 }] },
      { name: 'plan', sizeBytes: 100, ranges: [{ offsetBytes: 0, lengthBytes: 4000 }] },
      { name: 'plan', sizeBytes: 100, ranges: [] },
    ];
    for (const item of cases) {
      await assert.rejects(readItemRaw(disk, item), { code: 'REIMAGE_REFUGE_LAYOUT_INVALID' }, JSON.stringify(item));
    }
  });
});
