// The refuge's raw I/O on a real disk image: a plain file, and a loop device with 4096-byte logical
// blocks (a 4Kn disk) whose writes are checked through its backing file (what reached the "disk").
// Items placed by placeRefuge into hand-made extents are written raw, read back and digested; a
// wipe leaves zeros in exactly its ranges; the bytes outside the ranges never change (their
// digest is compared over the whole file); the bundle frame round-trips and a torn one is refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bundleRoomBytes, readBundleRaw, writeBundleRaw } from '../../../src/boot/refuge-bundle.ts';
import type { RefugeExtent } from '../../../src/boot/refuge-extent.ts';
import { decodeRefugeHeader, encodeRefugeHeader, type RefugeHeader } from '../../../src/boot/refuge-header.ts';
import {
  REFUGE_IO_CHUNK_BYTES,
  type RefugeItemRanges,
  readItemChunksRaw,
  readItemRaw,
  sha256ItemRaw,
  wipeItemRaw,
  writeItemRaw,
  writeItemThroughFile,
  writeLogical,
} from '../../../src/boot/refuge-io.ts';
import {
  placedRanges,
  placeRefuge,
  REFUGE_HEAD_BYTES,
  type RefugeItemName,
  type RefugeItemRequest,
  type RefugeLayout,
} from '../../../src/boot/refuge-layout.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { type ByteRange, mergeRanges, readAt, writeAt } from '../../../src/disk/index.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const DISK_BYTES = 128 * MIB;
const IMAGE_BYTES = 60_000_007;

const sh = (command: string, args: readonly string[]): string =>
  execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

/** A disk whose every 4096-byte block differs (its index stamped on 0xA5), so a stray write shows. */
function writePatternDisk(path: string): void {
  const chunk = Buffer.alloc(MIB, 0xa5);
  writeFileSync(path, '');
  for (let at = 0; at < DISK_BYTES; at += MIB) {
    for (let block = 0; block < MIB; block += 4096) chunk.writeUInt32LE((at + block) / 4096, block + 100);
    writeFileSync(path, chunk, { flag: 'a' });
  }
}

/** SHA-256 of every byte of the file outside `ranges`: equal before and after = nothing else changed. */
async function digestOutside(path: string, ranges: readonly ByteRange[]): Promise<string> {
  const masked = mergeRanges(ranges);
  const hash = createHash('sha256');
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(MIB);
    for (let at = 0; at < DISK_BYTES; at += MIB) {
      await readAt(handle, buffer, at);
      let from = at;
      for (const range of masked) {
        const start = Math.max(range.offsetBytes, at);
        const end = Math.min(range.offsetBytes + range.lengthBytes, at + MIB);
        if (start >= end) continue;
        if (start > from) hash.update(buffer.subarray(from - at, start - at));
        from = end;
      }
      if (from < at + MIB) hash.update(buffer.subarray(from - at));
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

/** The persisted bundle's digest, or 'none' (short strings, so a failing assertion prints fast). */
async function foundBundle(disk: FileHandle, room: RefugeItemRanges): Promise<string> {
  const found = await readBundleRaw(disk, room);
  return found === undefined ? 'none' : sha256(found);
}

async function readRanges(path: string, ranges: readonly ByteRange[]): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const parts: Buffer[] = [];
    for (const range of ranges) {
      const part = Buffer.alloc(range.lengthBytes);
      await readAt(handle, part, range.offsetBytes);
      parts.push(part);
    }
    return Buffer.concat(parts);
  } finally {
    await handle.close();
  }
}

/** Hand-made extents: out of disk order, file offsets not equal to disk offsets, one adjacent pair. */
const USABLE: RefugeExtent[] = [
  { fileOffsetBytes: 0, diskOffsetBytes: 20 * MIB, lengthBytes: 8 * MIB },
  { fileOffsetBytes: 8 * MIB, diskOffsetBytes: 4 * MIB, lengthBytes: 12 * MIB + 12 * KIB },
  { fileOffsetBytes: 20 * MIB + 12 * KIB, diskOffsetBytes: 40 * MIB, lengthBytes: 30 * MIB },
  { fileOffsetBytes: 50 * MIB + 12 * KIB, diskOffsetBytes: 70 * MIB, lengthBytes: 20 * MIB },
  { fileOffsetBytes: 70 * MIB + 12 * KIB, diskOffsetBytes: 100 * MIB, lengthBytes: 27 * MIB },
];

const REQUESTS: RefugeItemRequest[] = [
  { name: 'core', sizeBytes: 60 * KIB + 3, contiguous: true },
  { name: 'kernel', sizeBytes: 9 * MIB + 123, contiguous: true },
  { name: 'initramfs', sizeBytes: 7 * MIB + 5, contiguous: false },
  { name: 'image', sizeBytes: IMAGE_BYTES, contiguous: false },
  { name: 'plan', sizeBytes: 1234, contiguous: false },
  { name: 'old-lba0', sizeBytes: 512, contiguous: false },
  { name: 'bundle', sizeBytes: 2 * MIB, contiguous: false },
];

function rawItem(layout: RefugeLayout, name: RefugeItemName): RefugeItemRanges {
  const placed = layout.items.find((item) => item.name === name);
  assert.ok(placed !== undefined, name);
  return { name, sizeBytes: placed.sizeBytes, ranges: placedRanges(placed.extents) };
}

const targets = [
  { name: 'a plain image file', loop: false },
  { name: 'a loop device with 4096-byte logical blocks (through its backing file)', loop: true },
];

for (const target of targets) {
  describe(`refuge raw I/O on ${target.name}`, () => {
    let dir = '';
    let backing = '';
    let device = '';
    let disk: FileHandle | undefined;
    const layout = placeRefuge(USABLE, REQUESTS);
    const data = new Map<RefugeItemName, Buffer>();
    let imagePath = '';
    let imageSha256 = '';
    const allRanges: ByteRange[] = [
      { offsetBytes: layout.journal.diskOffsetBytes, lengthBytes: REFUGE_HEAD_BYTES },
      ...layout.items.flatMap((item) => placedRanges(item.extents)),
    ];

    before(async () => {
      if (target.loop && process.getuid?.() !== 0) throw new Error('this test needs root (loop devices)');
      dir = mkdtempSync(join(tmpdir(), 'reimage-refuge-io-'));
      backing = join(dir, 'disk.img');
      writePatternDisk(backing);
      device = target.loop ? sh('losetup', ['-f', '--show', '-b', '4096', backing]).trim() : backing;
      disk = await open(device, 'r+');
      for (const request of REQUESTS) {
        if (request.name !== 'image' && request.name !== 'bundle')
          data.set(request.name, randomBytes(request.sizeBytes));
      }
      imagePath = join(dir, 'image.raw.zst');
      const image = randomBytes(IMAGE_BYTES);
      imageSha256 = sha256(image);
      writeFileSync(imagePath, image);
    });
    after(async () => {
      await disk?.close();
      if (target.loop && device !== '') sh('losetup', ['-d', device]);
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    it('writes every item and the header raw, reads them back, and changes nothing outside their ranges', async (t) => {
      assert.ok(disk !== undefined);
      const outsideBefore = await digestOutside(backing, allRanges);
      const startMs = performance.now();
      for (const [name, bytes] of data) await writeItemRaw(disk, rawItem(layout, name), bytes);
      // The image streams from its file (64 KiB chunks): never whole in memory on the write side.
      await writeItemRaw(disk, rawItem(layout, 'image'), createReadStream(imagePath));
      const writeMs = performance.now() - startMs;
      const header: RefugeHeader = {
        format: 1,
        journalId: 'ab'.repeat(16),
        disk: { scheme: 'msdos', signature: 0x1234abcd },
        diskSizeBytes: DISK_BYTES,
        refugeFile: { partitionNumber: 1, name: 'reimage-refuge' },
        items: [
          ...[...data].map(([name, bytes]) => ({ ...rawItem(layout, name), sha256: sha256(bytes) })),
          { ...rawItem(layout, 'image'), sha256: imageSha256 },
          rawItem(layout, 'bundle'),
        ],
        image: { format: 'zst', sha256: imageSha256, sizeBytes: IMAGE_BYTES },
        createdAt: '2026-12-02T00:00:00.000Z',
      };
      await writeAt(disk, encodeRefugeHeader(header), layout.header.diskOffsetBytes);
      await disk.datasync();

      assert.equal(await digestOutside(backing, allRanges), outsideBefore, 'no byte outside the refuge changed');
      const headerBytes = Buffer.alloc(layout.header.lengthBytes);
      await readAt(disk, headerBytes, layout.header.diskOffsetBytes);
      const decoded = decodeRefugeHeader(headerBytes);
      assert.deepEqual(decoded, header);
      for (const item of decoded.items) {
        if (item.sha256 === undefined) continue;
        if (item.name !== 'image')
          assert.equal(
            sha256(await readItemRaw(disk, item)),
            sha256(data.get(item.name) ?? Buffer.alloc(0)),
            item.name,
          );
        // Below the loop device too: the backing file holds the item, then its zero padding.
        const onBacking = await readRanges(backing, item.ranges);
        assert.equal(sha256(onBacking.subarray(0, item.sizeBytes)), item.sha256, `${item.name} on the backing file`);
        assert.ok(
          onBacking.subarray(item.sizeBytes).every((byte) => byte === 0),
          `${item.name} padded with zeros`,
        );
      }
      const hashStartMs = performance.now();
      const imageItem = decoded.items.find((item) => item.name === 'image');
      assert.ok(imageItem !== undefined);
      assert.equal(await sha256ItemRaw(disk, imageItem), imageSha256);
      const hashMs = performance.now() - hashStartMs;
      // Bounded memory: the image streams in chunks of at most REFUGE_IO_CHUNK_BYTES.
      let largestChunkBytes = 0;
      let chunks = 0;
      for await (const chunk of readItemChunksRaw(disk, imageItem)) {
        largestChunkBytes = Math.max(largestChunkBytes, chunk.length);
        chunks++;
      }
      assert.equal(largestChunkBytes, REFUGE_IO_CHUNK_BYTES);
      t.diagnostic(
        `image ${IMAGE_BYTES} B in ${imageItem.ranges.length} ranges, read in ${chunks} chunks; all items written ` +
          `in ${writeMs.toFixed(0)} ms; sha256ItemRaw ${hashMs.toFixed(0)} ms`,
      );
    });

    it('wipes an item: zeros over exactly its ranges, every other byte unchanged', async () => {
      assert.ok(disk !== undefined);
      const image = rawItem(layout, 'image');
      const outsideBefore = await digestOutside(backing, image.ranges);
      await wipeItemRaw(disk, image);
      assert.ok(
        (await readRanges(backing, image.ranges)).every((byte) => byte === 0),
        'the image is gone',
      );
      assert.equal(await digestOutside(backing, image.ranges), outsideBefore, 'nothing else changed');
      assert.equal(
        sha256(await readItemRaw(disk, rawItem(layout, 'kernel'))),
        sha256(data.get('kernel') ?? Buffer.alloc(0)),
      );
    });

    it('persists the bundle framed, refuses a torn or stale frame, and a bundle too big for its room', async () => {
      assert.ok(disk !== undefined);
      const room = rawItem(layout, 'bundle');
      const outsideBefore = await digestOutside(backing, room.ranges);
      assert.equal(await foundBundle(disk, room), 'none', 'nothing persisted yet');

      const first = randomBytes(1_500_000);
      assert.equal(await writeBundleRaw(disk, room, first), sha256(first));
      assert.equal(await foundBundle(disk, room), sha256(first));
      const frame = await readRanges(backing, [room.ranges[0] ?? { offsetBytes: 0, lengthBytes: 0 }]);
      assert.equal(frame.subarray(0, 16).toString('latin1'), 'REIMAGE-BUNDLE\0\0');

      // A second capture cut after its data but before its frame: the old frame no longer matches.
      const second = randomBytes(1_000_000);
      await writeLogical(disk, 'bundle', room.ranges, 4096, second, second.length);
      await disk.datasync();
      assert.equal(await foundBundle(disk, room), 'none', 'a stale frame over new data');

      // Its frame torn: the first 40 bytes of the new frame (magic, format, length) over the old one.
      await writeBundleRaw(disk, room, second);
      assert.equal(await foundBundle(disk, room), sha256(second));
      const torn = Buffer.from(frame.subarray(0, 40));
      const frameAt = room.ranges[0]?.offsetBytes ?? 0;
      await writeAt(disk, torn, frameAt);
      await disk.datasync();
      assert.equal(await foundBundle(disk, room), 'none', 'a torn frame');

      // A frame that claims more than the room.
      await writeBundleRaw(disk, room, second);
      const lying = Buffer.alloc(8);
      lying.writeBigUInt64LE(BigInt(bundleRoomBytes(room) + 1));
      await writeAt(disk, lying, frameAt + 24);
      assert.equal(await foundBundle(disk, room), 'none', 'a length beyond the room');

      const everything = await digestOutside(backing, []);
      const tooBig = Buffer.alloc(bundleRoomBytes(room) + 1);
      await assert.rejects(writeBundleRaw(disk, room, tooBig), (e: unknown) => {
        assert.ok(isReimageError(e) && e.code === 'REIMAGE_REFUGE_BUNDLE_TOO_BIG');
        assert.equal(e.evidence.roomBytes, 2 * MIB - 4096);
        return true;
      });
      assert.equal(await digestOutside(backing, []), everything, 'a refused bundle writes nothing');
      // Exactly the room fits.
      const full = randomBytes(bundleRoomBytes(room));
      await writeBundleRaw(disk, room, full);
      assert.equal(await foundBundle(disk, room), sha256(full));

      await wipeItemRaw(disk, room);
      assert.equal(await foundBundle(disk, room), 'none', 'wiped');
      assert.ok((await readRanges(backing, room.ranges)).every((byte) => byte === 0));
      assert.equal(await digestOutside(backing, room.ranges), outsideBefore, 'the bundle stayed in its room');
    });

    it('refuses ranges past the end of the disk, and data of another size before writing', async () => {
      assert.ok(disk !== undefined);
      const past = {
        name: 'plan' as const,
        sizeBytes: 8192,
        ranges: [{ offsetBytes: DISK_BYTES - 4096, lengthBytes: 8192 }],
      };
      await assert.rejects(readItemRaw(disk, past), { code: 'REIMAGE_REFUGE_UNREADABLE' });
      const everything = await digestOutside(backing, []);
      await assert.rejects(writeItemRaw(disk, rawItem(layout, 'plan'), Buffer.alloc(1235)), {
        code: 'REIMAGE_REFUGE_LAYOUT_INVALID',
      });
      await assert.rejects(
        writeItemRaw(
          disk,
          { name: 'plan', sizeBytes: 4096, ranges: [{ offsetBytes: 512, lengthBytes: 4096 }] },
          Buffer.alloc(4096),
        ),
        { code: 'REIMAGE_REFUGE_LAYOUT_INVALID' },
      );
      assert.equal(await digestOutside(backing, []), everything);
    });
  });
}

describe('writeItemThroughFile', () => {
  it('puts each piece at its file offset, the last block padded with zeros, nothing elsewhere', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'reimage-refuge-file-'));
    try {
      const layout = placeRefuge(USABLE, REQUESTS);
      const path = join(dir, 'reimage-refuge');
      writeFileSync(path, '');
      const file = await open(path, 'r+');
      const written = new Map<RefugeItemName, Buffer>();
      try {
        for (const item of layout.items) {
          if (item.name === 'image' || item.name === 'bundle') continue;
          const bytes = randomBytes(item.sizeBytes);
          written.set(item.name, bytes);
          await writeItemThroughFile(file, item, bytes);
        }
      } finally {
        await file.close();
      }
      const handle = await open(path, 'r');
      try {
        for (const item of layout.items) {
          const bytes = written.get(item.name);
          if (bytes === undefined) continue;
          const parts: Buffer[] = [];
          for (const e of item.extents) {
            const part = Buffer.alloc(e.lengthBytes);
            await readAt(handle, part, e.fileOffsetBytes);
            parts.push(part);
          }
          const all = Buffer.concat(parts);
          assert.equal(sha256(all.subarray(0, item.sizeBytes)), sha256(bytes), item.name);
          assert.ok(
            all.subarray(item.sizeBytes).every((byte) => byte === 0),
            `${item.name} padding`,
          );
        }
      } finally {
        await handle.close();
      }
      // Nothing outside the extents: with them blanked, the file is zeros (holes) throughout.
      const whole = readFileSync(path);
      for (const item of layout.items)
        for (const e of item.extents)
          whole.fill(
            0,
            Math.min(e.fileOffsetBytes, whole.length),
            Math.min(e.fileOffsetBytes + e.lengthBytes, whole.length),
          );
      assert.ok(
        whole.every((byte) => byte === 0),
        'nothing written outside the extents',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
