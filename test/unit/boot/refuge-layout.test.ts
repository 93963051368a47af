import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JOURNAL_SIZE_BYTES } from '../../../src/boot/journal-file.ts';
import type { RefugeExtent } from '../../../src/boot/refuge-extent.ts';
import {
  placeRefuge,
  REFUGE_HEAD_BYTES,
  REFUGE_HEADER_BYTES,
  REFUGE_ITEM_NAMES,
  type RefugeItemRequest,
  type RefugeLayout,
  roundUpToBlock,
} from '../../../src/boot/refuge-layout.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { SeededRandom } from '../../fuzz/seeded-random.ts';

const KIB = 1024;
const MIB = 1024 * KIB;

const extent = (fileOffsetBytes: number, diskOffsetBytes: number, lengthBytes: number): RefugeExtent => ({
  fileOffsetBytes,
  diskOffsetBytes,
  lengthBytes,
});

function refusal(run: () => unknown): { code: string; message: string; evidence: Record<string, unknown> } {
  try {
    run();
  } catch (e) {
    assert.ok(isReimageError(e), String(e));
    return { code: e.code, message: e.message, evidence: { ...e.evidence } };
  }
  assert.fail('no refusal');
}

/** Every extent the layout hands out, the journal and header included, tagged with its owner. */
function allExtents(layout: RefugeLayout): { owner: string; extent: RefugeExtent }[] {
  return [
    { owner: 'journal', extent: layout.journal },
    { owner: 'header', extent: layout.header },
    ...layout.items.flatMap((item) => item.extents.map((e) => ({ owner: item.name, extent: e }))),
  ];
}

/** The invariants of any layout: aligned, inside the usable extents (same file↔disk mapping), no overlap, sizes covered. */
function checkLayout(usable: readonly RefugeExtent[], items: readonly RefugeItemRequest[], layout: RefugeLayout): void {
  const placed = allExtents(layout);
  for (const { owner, extent: e } of placed) {
    assert.equal(e.diskOffsetBytes % 4096, 0, `${owner} starts on a 4096 boundary`);
    assert.equal(e.lengthBytes % 4096, 0, `${owner} is whole blocks`);
    assert.ok(e.lengthBytes > 0, `${owner} extent is not empty`);
    const home = usable.find(
      (u) =>
        e.diskOffsetBytes >= u.diskOffsetBytes &&
        e.diskOffsetBytes + e.lengthBytes <= u.diskOffsetBytes + u.lengthBytes &&
        e.fileOffsetBytes - u.fileOffsetBytes === e.diskOffsetBytes - u.diskOffsetBytes,
    );
    // A piece made of two usable extents adjacent in file and disk is allowed to span them.
    const spans = usable.filter(
      (u) =>
        u.diskOffsetBytes < e.diskOffsetBytes + e.lengthBytes && e.diskOffsetBytes < u.diskOffsetBytes + u.lengthBytes,
    );
    const covered = spans.reduce(
      (sum, u) =>
        sum +
        Math.min(u.diskOffsetBytes + u.lengthBytes, e.diskOffsetBytes + e.lengthBytes) -
        Math.max(u.diskOffsetBytes, e.diskOffsetBytes),
      0,
    );
    assert.ok(home !== undefined || covered === e.lengthBytes, `${owner} lies inside the usable extents`);
    for (const u of spans) {
      assert.equal(e.fileOffsetBytes - u.fileOffsetBytes, e.diskOffsetBytes - u.diskOffsetBytes, 'file↔disk kept');
    }
  }
  const byDisk = placed.map((p) => p.extent).sort((a, b) => a.diskOffsetBytes - b.diskOffsetBytes);
  for (let i = 1; i < byDisk.length; i++) {
    const [a, b] = [byDisk[i - 1], byDisk[i]];
    assert.ok(
      a !== undefined && b !== undefined && a.diskOffsetBytes + a.lengthBytes <= b.diskOffsetBytes,
      'no overlap',
    );
  }
  assert.equal(layout.journal.lengthBytes, JOURNAL_SIZE_BYTES);
  assert.equal(layout.header.lengthBytes, REFUGE_HEADER_BYTES);
  assert.equal(layout.header.diskOffsetBytes, layout.journal.diskOffsetBytes + JOURNAL_SIZE_BYTES);
  assert.equal(layout.header.fileOffsetBytes, layout.journal.fileOffsetBytes + JOURNAL_SIZE_BYTES);
  assert.deepEqual(
    layout.items.map((item) => item.name),
    items.map((item) => item.name),
  );
  for (const [index, item] of layout.items.entries()) {
    const request = items[index];
    assert.ok(request !== undefined);
    const bytes = item.extents.reduce((sum, e) => sum + e.lengthBytes, 0);
    assert.equal(bytes, roundUpToBlock(request.sizeBytes), `${item.name} covers its size rounded up`);
    if (request.contiguous) assert.equal(item.extents.length, 1, `${item.name} lies in one extent`);
    for (let i = 1; i < item.extents.length; i++) {
      const [a, b] = [item.extents[i - 1], item.extents[i]];
      assert.ok(a !== undefined && b !== undefined && a.fileOffsetBytes < b.fileOffsetBytes, 'file order');
    }
  }
  const usableBytes = usable.reduce((sum, u) => sum + u.lengthBytes, 0);
  assert.equal(layout.usedBytes + layout.spareBytes, usableBytes);
  assert.equal(
    layout.usedBytes,
    placed.reduce((sum, p) => sum + p.extent.lengthBytes, 0),
  );
}

describe('placeRefuge', () => {
  it('puts the contiguous items in single pieces by best fit and splits the rest in file order', () => {
    const usable = [
      extent(0, 100 * MIB, 2 * MIB),
      extent(2 * MIB, 300 * MIB, 128 * KIB), // the journal and header's size class
      extent(4 * MIB, 200 * MIB, 9 * MIB), // only the kernel fits here
      extent(20 * MIB, 400 * MIB, 8 * MIB),
    ];
    const items: RefugeItemRequest[] = [
      { name: 'core', sizeBytes: 60 * KIB + 5, contiguous: true },
      { name: 'kernel', sizeBytes: 8 * MIB + 1, contiguous: true },
      { name: 'image', sizeBytes: 9 * MIB, contiguous: false },
      { name: 'plan', sizeBytes: 900, contiguous: false },
    ];
    const layout = placeRefuge(usable, items);
    checkLayout(usable, items, layout);
    const byName = new Map(layout.items.map((item) => [item.name, item.extents]));
    // Largest first: the kernel takes the 9 MiB piece, the head then fits best in the 128 KiB one,
    // and the core in what the kernel left of its piece (smaller than the 2 MiB one).
    assert.deepEqual(byName.get('kernel'), [extent(4 * MIB, 200 * MIB, 8 * MIB + 4096)]);
    assert.deepEqual(layout.journal, extent(2 * MIB, 300 * MIB, JOURNAL_SIZE_BYTES));
    assert.deepEqual(byName.get('core'), [extent(12 * MIB + 4096, 208 * MIB + 4096, 64 * KIB)]);
    // 9 MiB fits in no piece left: it is split in file order, every piece used up before the next.
    const rest = 9 * MIB - 2 * MIB - (128 * KIB - REFUGE_HEAD_BYTES) - (MIB - 4096 - 64 * KIB);
    assert.deepEqual(byName.get('image'), [
      extent(0, 100 * MIB, 2 * MIB),
      extent(2 * MIB + REFUGE_HEAD_BYTES, 300 * MIB + REFUGE_HEAD_BYTES, 128 * KIB - REFUGE_HEAD_BYTES),
      extent(12 * MIB + 4096 + 64 * KIB, 208 * MIB + 4096 + 64 * KIB, MIB - 4096 - 64 * KIB),
      extent(20 * MIB, 400 * MIB, rest),
    ]);
    // The small plan takes one piece whole (best fit) rather than a fragment.
    assert.deepEqual(byName.get('plan'), [extent(20 * MIB + rest, 400 * MIB + rest, 4096)]);
    assert.equal(layout.spareBytes, 8 * MIB - rest - 4096);
  });

  it('places a split item whole when one piece holds it (fewer fragments: one GRUB file each)', () => {
    const usable = [extent(0, 0, MIB), extent(MIB, 64 * MIB, 4 * MIB)];
    const items: RefugeItemRequest[] = [{ name: 'initramfs', sizeBytes: 2 * MIB, contiguous: false }];
    const layout = placeRefuge(usable, items);
    checkLayout(usable, items, layout);
    assert.deepEqual(layout.items[0]?.extents, [extent(MIB, 64 * MIB, 2 * MIB)]);
  });

  it('joins extents adjacent in file and disk, so a kernel may span an extent boundary', () => {
    const usable = [extent(0, MIB, 4 * MIB), extent(4 * MIB, 5 * MIB, 4 * MIB)];
    const items: RefugeItemRequest[] = [{ name: 'kernel', sizeBytes: 6 * MIB, contiguous: true }];
    const layout = placeRefuge(usable, items);
    checkLayout(usable, items, layout);
    assert.deepEqual(layout.items[0]?.extents, [extent(0, MIB, 6 * MIB)]);
  });

  it('does not join extents adjacent on the disk but not in the file', () => {
    const usable = [extent(0, MIB, 4 * MIB), extent(100 * MIB, 5 * MIB, 4 * MIB)];
    const e = refusal(() => placeRefuge(usable, [{ name: 'kernel', sizeBytes: 6 * MIB, contiguous: true }]));
    assert.equal(e.code, 'REIMAGE_REFUGE_TOO_SMALL');
  });

  it('refuses too little room, giving needed, available and the largest piece vs the largest contiguous item', () => {
    const usable = [extent(0, MIB, 4 * MIB), extent(8 * MIB, 16 * MIB, 2 * MIB)];
    const e = refusal(() =>
      placeRefuge(usable, [
        { name: 'kernel', sizeBytes: 3 * MIB, contiguous: true },
        { name: 'image', sizeBytes: 3 * MIB, contiguous: false },
      ]),
    );
    assert.equal(e.code, 'REIMAGE_REFUGE_TOO_SMALL');
    assert.deepEqual(e.evidence, {
      neededBytes: 6 * MIB + REFUGE_HEAD_BYTES,
      availableBytes: 6 * MIB,
      largestPieceBytes: 4 * MIB,
      largestContiguousItem: 'kernel',
      largestContiguousBytes: 3 * MIB,
    });
    assert.match(e.message, /bytes are missing/);
  });

  it('refuses when the total fits but no piece holds a contiguous item, naming it', () => {
    const usable = [extent(0, MIB, 4 * MIB), extent(8 * MIB, 16 * MIB, 4 * MIB)];
    const e = refusal(() => placeRefuge(usable, [{ name: 'kernel', sizeBytes: 5 * MIB, contiguous: true }]));
    assert.equal(e.code, 'REIMAGE_REFUGE_TOO_SMALL');
    assert.match(e.message, /no free piece holds the kernel \(5242880 bytes\)/);
    assert.equal(e.evidence.largestPieceBytes, 4 * MIB);
  });

  const bad: { name: string; usable: RefugeExtent[]; items?: RefugeItemRequest[]; says: RegExp }[] = [
    { name: 'a misaligned disk offset', usable: [extent(0, 512, 4 * MIB)], says: /not whole 4096-byte blocks/ },
    { name: 'a misaligned length', usable: [extent(0, 0, 4 * MIB + 512)], says: /not whole 4096-byte blocks/ },
    { name: 'a negative offset', usable: [extent(-4096, 0, 4 * MIB)], says: /not whole 4096-byte blocks/ },
    {
      name: 'extents overlapping on the disk',
      usable: [extent(0, 0, 4 * MIB), extent(8 * MIB, 2 * MIB, 4 * MIB)],
      says: /overlap on the disk/,
    },
    {
      name: 'extents overlapping in the file',
      usable: [extent(0, 0, 4 * MIB), extent(2 * MIB, 8 * MIB, 4 * MIB)],
      says: /overlap on the file/,
    },
    {
      name: 'an item asked for twice',
      usable: [extent(0, 0, 4 * MIB)],
      items: [
        { name: 'plan', sizeBytes: 1, contiguous: false },
        { name: 'plan', sizeBytes: 1, contiguous: false },
      ],
      says: /asked for twice/,
    },
    {
      name: 'an empty item',
      usable: [extent(0, 0, 4 * MIB)],
      items: [{ name: 'plan', sizeBytes: 0, contiguous: false }],
      says: /no usable size/,
    },
  ];
  for (const c of bad) {
    it(`refuses ${c.name} as a caller's bug`, () => {
      const e = refusal(() => placeRefuge(c.usable, c.items ?? []));
      assert.equal(e.code, 'REIMAGE_REFUGE_LAYOUT_INVALID');
      assert.match(e.message, c.says);
    });
  }

  it('holds its invariants on 500 seeded random refuges (seed printed on failure)', () => {
    let placedCount = 0;
    for (let seed = 1; seed <= 500; seed++) {
      const random = new SeededRandom(seed);
      const usable: RefugeExtent[] = [];
      let fileOffsetBytes = 0;
      let diskOffsetBytes = random.below(64) * 4096;
      for (let count = 1 + random.below(12); count > 0; count--) {
        const lengthBytes = (1 + random.below(random.chance(0.3) ? 4 : 800)) * 4096;
        // Sometimes adjacent in both (a FIEMAP split), sometimes a hole in the file or a gap on the disk.
        if (random.chance(0.6)) fileOffsetBytes += random.below(16) * 4096;
        if (random.chance(0.6)) diskOffsetBytes += random.below(256) * 4096;
        usable.push(extent(fileOffsetBytes, diskOffsetBytes, lengthBytes));
        fileOffsetBytes += lengthBytes;
        diskOffsetBytes += lengthBytes;
      }
      if (random.chance(0.5)) usable.reverse(); // the order given must not matter
      const names = REFUGE_ITEM_NAMES.filter(() => random.chance(0.7));
      const items: RefugeItemRequest[] = names.map((name) => ({
        name,
        sizeBytes: 1 + random.below(random.chance(0.5) ? 8192 : 1_500_000),
        contiguous: name === 'core' || name === 'kernel',
      }));
      try {
        checkLayout(usable, items, placeRefuge(usable, items));
        placedCount++;
      } catch (e) {
        if (isReimageError(e) && e.code === 'REIMAGE_REFUGE_TOO_SMALL') {
          const { neededBytes, availableBytes, largestPieceBytes, largestContiguousBytes } = e.evidence;
          assert.ok(typeof neededBytes === 'number' && typeof availableBytes === 'number', `seed ${seed}`);
          // A refusal is real: too few bytes, or a contiguous piece that did not find a home.
          assert.ok(
            neededBytes > availableBytes || /no free piece holds/.test(e.message),
            `seed ${seed}: ${e.message}`,
          );
          if (
            typeof largestPieceBytes === 'number' &&
            typeof largestContiguousBytes === 'number' &&
            largestPieceBytes >= neededBytes
          ) {
            assert.fail(`seed ${seed}: refused although one piece holds everything`);
          }
          continue;
        }
        throw new Error(`seed ${seed}: ${String(e)}`, { cause: e });
      }
    }
    assert.ok(placedCount > 200, `enough seeds placed to mean something (${placedCount})`);
  });
});
