import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReimageError } from '../../../src/core/reimage-error.ts';
import { WRITE_LOG_FLAGS } from '../../../src/demo/write-log.ts';
import { buildWriteLog, readWriteLogBuffer, sectors } from '../../helpers/write-logs.ts';

const { flush, fua, discard, mark } = WRITE_LOG_FLAGS;

describe('readWriteLog', () => {
  it('reads each entry: its sector, count, flags and where its data is', () => {
    const bytes = buildWriteLog(
      [
        { sector: 0, data: sectors(2, 0xab) },
        { sector: 0, flags: flush },
        { sector: 8, data: sectors(1, 0xcd), flags: fua },
        { sector: 100, sectorCount: 16, flags: discard },
        { sector: 7, data: sectors(1, 0x11) },
      ],
      5,
    );
    const log = readWriteLogBuffer(bytes);
    assert.equal(log.sectorSizeBytes, 512);
    assert.equal(log.superblockEntryCount, 5);
    const summary = log.entries.map((e) => [
      e.index,
      e.sector,
      e.sectorCount,
      e.flush,
      e.fua,
      e.discard,
      e.dataOffsetBytes,
    ]);
    assert.deepEqual(summary, [
      [0, 0, 2, false, false, false, 1024],
      [1, 0, 0, true, false, false, 2560],
      [2, 8, 1, false, true, false, 3072],
      // A discard logs no data: the next header follows its own at once.
      [3, 100, 16, false, false, true, undefined],
      [4, 7, 1, false, false, false, 4608],
    ]);
    const data = log.entries[4]?.dataOffsetBytes ?? 0;
    assert.equal(bytes[data], 0x11);
  });

  it('reads a log never flushed (zero superblock) and entries past the superblock count', () => {
    const neverFlushed = readWriteLogBuffer(buildWriteLog([{ sector: 3, data: sectors(1, 1) }]));
    assert.equal(neverFlushed.superblockEntryCount, 0);
    assert.equal(neverFlushed.entries.length, 1);
    const tail = readWriteLogBuffer(
      buildWriteLog(
        [
          { sector: 3, data: sectors(1, 1) },
          { sector: 0, flags: flush },
          { sector: 4, data: sectors(1, 2) },
        ],
        2,
      ),
    );
    assert.equal(tail.superblockEntryCount, 2);
    assert.equal(tail.entries.length, 3);
  });

  it('reads an empty log file as no entries', () => {
    assert.deepEqual(readWriteLogBuffer(Buffer.alloc(0)).entries, []);
  });

  it('reads a mark as an entry that writes nothing', () => {
    const log = readWriteLogBuffer(buildWriteLog([{ sector: 0, flags: mark }], 1));
    assert.equal(log.entries[0]?.mark, true);
  });

  const good = buildWriteLog(
    [
      { sector: 1, data: sectors(2, 7) },
      { sector: 0, flags: flush },
    ],
    2,
  );
  const damaged: [string, () => Buffer, RegExp][] = [
    ['a wrong magic', () => patch(good, 0, 0xff), /magic/],
    ['version 2', () => patch(good, 8, 2), /version 2/],
    ['a sector size not a power of two', () => patch(good, 24, 0x03), /sector size/],
    ['unknown flags', () => patch(good, 512 + 16, 0x10), /unknown flags 0x10/],
    ['a header cut short', () => good.subarray(0, good.length - 100), /cut short/],
    ['data cut short', () => good.subarray(0, 512 + 512 + 700), /runs past the end/],
    ['fewer entries than the superblock counts', () => patch(good, 16, 9), /counts 9 entries but the log holds 2/],
    ['less than a superblock', () => good.subarray(0, 20), /less than a superblock/],
    ['a sector count beyond any disk', () => patchBig(good, 512 + 8, 2n ** 60n), /beyond any disk/],
  ];
  for (const [what, bytes, message] of damaged) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => readWriteLogBuffer(bytes()),
        (error: unknown) =>
          error instanceof ReimageError &&
          error.code === 'REIMAGE_DEMO_WRITE_LOG_DAMAGED' &&
          message.test(error.message),
      );
    });
  }
});

function patch(bytes: Buffer, offset: number, value: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset] = value;
  return copy;
}

function patchBig(bytes: Buffer, offset: number, value: bigint): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeBigUInt64LE(value, offset);
  return copy;
}
