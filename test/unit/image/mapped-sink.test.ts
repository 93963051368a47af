// MappedSink against a model disk whose writes complete late and in any order, and whose
// fdatasync makes durable only the writes completed before it: a "power cut" keeps exactly the
// durable copy. Every figure onDurable is given must be covered by that copy; the loop-device
// tests cannot see this (their writes complete too fast to race a flush).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { OpenedTarget, TargetInfo } from '../../../src/disk/index.ts';
import { MAPPED_SINK_SLAB_BYTES, MappedSink } from '../../../src/image/mapped-sink.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const DISK_BYTES = 24 * MIB;

const RANGES = [
  { offsetBytes: 0, lengthBytes: 64 * KIB },
  { offsetBytes: 1 * MIB, lengthBytes: 300 * KIB },
  { offsetBytes: 3 * MIB, lengthBytes: 5 * MIB + 512 },
  { offsetBytes: 9 * MIB + 1536, lengthBytes: 7 * 512 },
  { offsetBytes: 10 * MIB, lengthBytes: 9 * MIB },
];
const TOTAL_BYTES = RANGES.reduce((sum, range) => sum + range.lengthBytes, 0);

/** A disk whose writes land after a random delay, and whose fdatasync keeps a durable copy. */
class ModelDisk {
  readonly live = Buffer.alloc(DISK_BYTES, 0xa5);
  durable = Buffer.from(this.live);
  /** The lowest disk offset any write touched. */
  lowestWriteBytes = Number.POSITIVE_INFINITY;

  handle(): FileHandle {
    const fake = {
      write: async (buffer: Buffer, offset: number, length: number, position: number) => {
        const data = Buffer.from(buffer.subarray(offset, offset + length));
        await new Promise((resolvePromise) => setTimeout(resolvePromise, Math.random() * 4));
        data.copy(this.live, position);
        this.lowestWriteBytes = Math.min(this.lowestWriteBytes, position);
        return { bytesWritten: length, buffer };
      },
      datasync: async () => {
        // Only what has completed by now survives a power cut after this sync.
        const snapshot = Buffer.from(this.live);
        await new Promise((resolvePromise) => setTimeout(resolvePromise, 1));
        this.durable = snapshot;
      },
    };
    return fake as unknown as FileHandle;
  }
}

function target(alignBytes: number): TargetInfo {
  return {
    path: 'model',
    realPath: 'model',
    kind: 'file',
    sizeBytes: DISK_BYTES,
    logicalBlockSizeBytes: 512,
    directIoAlignmentBytes: alignBytes,
    deviceNumber: undefined,
    identity: 'model',
  };
}

/** The disk offsets of mapped bytes [0, mappedBytes), as ranges. */
function prefix(mappedBytes: number): { offsetBytes: number; lengthBytes: number }[] {
  const out = [];
  let left = mappedBytes;
  for (const range of RANGES) {
    if (left <= 0) break;
    out.push({ offsetBytes: range.offsetBytes, lengthBytes: Math.min(left, range.lengthBytes) });
    left -= range.lengthBytes;
  }
  return out;
}

async function runSink(
  o: { durableBytes: number; alignBytes: number; chunkBytes: number },
  disk: ModelDisk,
  image: Buffer,
) {
  const figures: number[] = [];
  const problems: string[] = [];
  const handle = disk.handle();
  const opened: OpenedTarget = {
    handle,
    bufferedHandle: disk.handle(),
    direct: true,
    slab: Buffer.alloc(MAPPED_SINK_SLAB_BYTES),
  };
  const sink = new MappedSink({
    target: target(o.alignBytes),
    opened,
    imagePath: 'image',
    ranges: RANGES,
    totalBytes: TOTAL_BYTES,
    durableBytes: o.durableBytes,
    checkpointBytes: MIB,
    onDurable: async (figure) => {
      figures.push(figure);
      for (const range of prefix(figure)) {
        const from = Math.max(512, range.offsetBytes);
        const to = range.offsetBytes + range.lengthBytes;
        if (!disk.durable.subarray(from, to).equals(image.subarray(from, to)))
          problems.push(`figure ${figure}: bytes ${from}-${to} are not durable`);
      }
    },
    onTouch: () => {},
  });
  for (let at = 0; at < image.length; at += o.chunkBytes) await sink.push(image.subarray(at, at + o.chunkBytes));
  await sink.end();
  return { figures, problems, sink };
}

describe('MappedSink on a model disk', () => {
  for (const alignBytes of [512, 4096]) {
    it(`never reports a figure the durable copy does not hold (units of ${alignBytes})`, async () => {
      const image = randomBytes(DISK_BYTES - MIB);
      const disk = new ModelDisk();
      const { figures, problems, sink } = await runSink(
        { durableBytes: 0, alignBytes, chunkBytes: 333 * KIB },
        disk,
        image,
      );
      assert.deepEqual(problems, []);
      assert.ok(figures.length > 10);
      assert.equal(figures.at(-1), TOTAL_BYTES);
      assert.deepEqual(sink.firstSector, image.subarray(0, 512));
      // Exactly the map (but LBA 0) in the end, old bytes elsewhere.
      const want = Buffer.alloc(DISK_BYTES, 0xa5);
      for (const range of RANGES)
        image.copy(want, range.offsetBytes, range.offsetBytes, range.offsetBytes + range.lengthBytes);
      want.fill(0xa5, 0, 512);
      assert.ok(disk.durable.equals(want));
    });
  }

  it('resumed from a figure, it writes nothing before it and ends the same', async () => {
    const image = randomBytes(DISK_BYTES - MIB);
    const disk = new ModelDisk();
    const durableBytes = 64 * KIB + 300 * KIB + 2 * MIB + 4096;
    // As a cut run left it: the durable part written and flushed.
    for (const range of prefix(durableBytes)) {
      const from = Math.max(512, range.offsetBytes);
      image.copy(disk.live, from, from, range.offsetBytes + range.lengthBytes);
    }
    disk.durable = Buffer.from(disk.live);
    const { problems, sink } = await runSink({ durableBytes, alignBytes: 4096, chunkBytes: MIB }, disk, image);
    assert.deepEqual(problems, []);
    assert.equal(sink.counters.bytesWritten, TOTAL_BYTES - durableBytes);
    assert.equal(sink.counters.bytesResumed, durableBytes - 512);
    assert.equal(disk.lowestWriteBytes, 5 * MIB + 4096, 'the first write is at the resume point');
  });

  it('resumed with everything durable, it writes nothing, still returns LBA 0, and reports the total', async () => {
    const image = randomBytes(DISK_BYTES - MIB);
    const disk = new ModelDisk();
    const { figures, sink } = await runSink(
      { durableBytes: TOTAL_BYTES, alignBytes: 4096, chunkBytes: MIB },
      disk,
      image,
    );
    assert.equal(sink.counters.bytesWritten, 0);
    assert.equal(disk.lowestWriteBytes, Number.POSITIVE_INFINITY);
    assert.deepEqual(figures, [TOTAL_BYTES]);
    assert.deepEqual(sink.firstSector, image.subarray(0, 512));
  });
});
