import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  mergeAdjacentExtents,
  REFUGE_ALIGNMENT_BYTES,
  type RefugeExtent,
  usableExtents,
  usableRanges,
} from '../../../src/boot/refuge-extent.ts';
import type { ByteRange } from '../../../src/disk/byte-range.ts';
import { SeededRandom } from '../../fuzz/seeded-random.ts';

const K = 4096;
const extent = (fileOffsetBytes: number, diskOffsetBytes: number, lengthBytes: number): RefugeExtent => ({
  fileOffsetBytes,
  diskOffsetBytes,
  lengthBytes,
});

describe('usableExtents', () => {
  it('keeps an aligned extent with nothing excluded whole', () => {
    assert.deepEqual(usableExtents([extent(0, 1024 * K, 10 * K)], []), [extent(0, 1024 * K, 10 * K)]);
  });
  it('cuts an excluded range out of the middle, in file order', () => {
    const excluded = [{ offsetBytes: 1027 * K, lengthBytes: 2 * K }];
    assert.deepEqual(usableExtents([extent(0, 1024 * K, 10 * K)], excluded), [
      extent(0, 1024 * K, 3 * K),
      extent(5 * K, 1029 * K, 5 * K),
    ]);
  });
  it('trims inward to 4096 on the disk, moving the file offset with it (a 1 KiB-block filesystem)', () => {
    // The extent starts 1 KiB past a 4 KiB boundary and ends 1 KiB before one.
    assert.deepEqual(usableExtents([extent(8192, 100 * K + 1024, 3 * K + 2048)], []), [
      extent(8192 + 3072, 101 * K, 2 * K),
    ]);
  });
  it('trims around an unaligned excluded range and drops pieces shorter than 4096', () => {
    const excluded = [{ offsetBytes: 10 * K + 512, lengthBytes: 100 }];
    assert.deepEqual(usableExtents([extent(0, 8 * K, 4 * K)], excluded), [
      extent(0, 8 * K, 2 * K),
      extent(3 * K, 11 * K, K),
    ]);
    assert.deepEqual(usableExtents([extent(0, 8 * K + 1, K + 100)], []), []);
  });
  it('keeps the input order (the file order), not the disk order', () => {
    const extents = [extent(0, 500 * K, K), extent(K, 100 * K, K)];
    assert.deepEqual(usableExtents(extents, []), extents);
  });
  it('drops an extent covered by overlapping excluded ranges given unsorted', () => {
    const excluded = [
      { offsetBytes: 15 * K, lengthBytes: 10 * K },
      { offsetBytes: 10 * K, lengthBytes: 6 * K },
    ];
    assert.deepEqual(usableExtents([extent(0, 10 * K, 15 * K), extent(15 * K, 40 * K, K)], excluded), [
      extent(15 * K, 40 * K, K),
    ]);
  });

  // Property check over random extents and exclusions (seeded, so a failure replays from its seed).
  it('never overlaps excluded, is 4096-aligned, keeps file-minus-disk per source extent, stays inside the source', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const random = new SeededRandom(seed);
      const sources: RefugeExtent[] = [];
      let fileAt = 0;
      let diskAt = random.below(64) * 512;
      for (let i = random.below(8) + 1; i > 0; i--) {
        const lengthBytes = (random.below(200) + 1) * (random.chance(0.5) ? 1024 : 512);
        sources.push(extent(fileAt, diskAt, lengthBytes));
        fileAt += lengthBytes;
        diskAt += lengthBytes + random.below(100) * 512;
      }
      const excluded: ByteRange[] = [];
      for (let i = random.below(6); i > 0; i--) {
        // Edges one byte either side of a 4096 boundary are where an off-by-one would show.
        const aligned = random.below(Math.ceil(diskAt / K) + 1) * K;
        const offsetBytes = random.pick([random.below(diskAt + K), aligned, Math.max(0, aligned - 1), aligned + 1]);
        const lengthBytes = random.pick([random.below(40 * K) + 1, (random.below(10) + 1) * K, K + 1, 1]);
        excluded.push({ offsetBytes, lengthBytes });
      }
      const result = usableExtents(sources, excluded);
      let lastSource = -1;
      for (const piece of result) {
        const where = `seed ${seed}, piece ${JSON.stringify(piece)}`;
        assert.equal(piece.diskOffsetBytes % REFUGE_ALIGNMENT_BYTES, 0, where);
        assert.equal(piece.lengthBytes % REFUGE_ALIGNMENT_BYTES, 0, where);
        assert.ok(piece.lengthBytes >= REFUGE_ALIGNMENT_BYTES, where);
        for (const range of excluded) {
          const overlaps =
            piece.diskOffsetBytes < range.offsetBytes + range.lengthBytes &&
            range.offsetBytes < piece.diskOffsetBytes + piece.lengthBytes;
          assert.ok(!overlaps, `${where} overlaps ${JSON.stringify(range)}`);
        }
        const sourceIndex = sources.findIndex(
          (source) =>
            source.diskOffsetBytes <= piece.diskOffsetBytes &&
            piece.diskOffsetBytes + piece.lengthBytes <= source.diskOffsetBytes + source.lengthBytes,
        );
        const source = sources[sourceIndex];
        assert.ok(source !== undefined, `${where} lies inside no source extent`);
        assert.equal(
          piece.fileOffsetBytes - piece.diskOffsetBytes,
          source.fileOffsetBytes - source.diskOffsetBytes,
          where,
        );
        assert.ok(sourceIndex >= lastSource, `${where} breaks file order`);
        lastSource = sourceIndex;
      }
      // And nothing usable is lost: every aligned 4096 block inside a source and outside excluded is in a piece.
      for (const source of sources) {
        for (
          let block = Math.ceil(source.diskOffsetBytes / K) * K;
          block + K <= source.diskOffsetBytes + source.lengthBytes;
          block += K
        ) {
          const free = excluded.every((r) => block + K <= r.offsetBytes || r.offsetBytes + r.lengthBytes <= block);
          const kept = result.some((p) => p.diskOffsetBytes <= block && block + K <= p.diskOffsetBytes + p.lengthBytes);
          assert.equal(kept, free, `seed ${seed}: block at ${block}`);
        }
      }
    }
  });
});

describe('usableRanges', () => {
  it('subtracts and aligns plain disk ranges', () => {
    assert.deepEqual(
      usableRanges(
        [
          { offsetBytes: 1024, lengthBytes: 20 * K },
          { offsetBytes: 40 * K, lengthBytes: K },
        ],
        [{ offsetBytes: 8 * K, lengthBytes: K }],
      ),
      [
        { offsetBytes: K, lengthBytes: 7 * K },
        { offsetBytes: 9 * K, lengthBytes: 11 * K },
        { offsetBytes: 40 * K, lengthBytes: K },
      ],
    );
  });
});

describe('mergeAdjacentExtents', () => {
  it('joins extents contiguous in the file and on the disk, and only those', () => {
    assert.deepEqual(
      mergeAdjacentExtents([extent(0, 100, 50), extent(50, 150, 50), extent(100, 300, 10), extent(110, 310, 0)]),
      [extent(0, 100, 100), extent(100, 300, 10)],
    );
    // Contiguous on the disk but not in the file: two extents.
    assert.equal(mergeAdjacentExtents([extent(0, 100, 50), extent(60, 150, 50)]).length, 2);
  });
});
