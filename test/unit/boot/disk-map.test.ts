import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mapDisk, type PartitionAllocation } from '../../../src/boot/disk-map.ts';
import { type ByteRange, mergeRanges } from '../../../src/disk/byte-range.ts';
import type { PartitionTable, TablePartition } from '../../../src/disk/partition-table.ts';

const MIB = 1024 * 1024;
const range = (offsetBytes: number, lengthBytes: number): ByteRange => ({ offsetBytes, lengthBytes });
const part = (number: number, startBytes: number, sizeBytes: number, extended = false): TablePartition => ({
  number,
  startBytes,
  sizeBytes,
  type: '83',
  extended,
});
const allocated = (blockSizeBytes: number, ...runs: [number, number][]): PartitionAllocation => ({
  kind: 'allocated',
  filesystem: 'ext',
  blocks: { blockSizeBytes, ranges: runs.map(([firstBlock, blockCount]) => ({ firstBlock, blockCount })) },
});

describe('mergeRanges', () => {
  const cases: { name: string; input: ByteRange[]; expected: ByteRange[] }[] = [
    { name: 'empty', input: [], expected: [] },
    { name: 'drops empty ranges', input: [range(5, 0)], expected: [] },
    { name: 'sorts', input: [range(20, 5), range(0, 5)], expected: [range(0, 5), range(20, 5)] },
    { name: 'merges touching', input: [range(0, 10), range(10, 5)], expected: [range(0, 15)] },
    { name: 'merges overlapping', input: [range(0, 10), range(4, 2), range(8, 10)], expected: [range(0, 18)] },
    { name: 'keeps a gap of one byte', input: [range(0, 10), range(11, 1)], expected: [range(0, 10), range(11, 1)] },
  ];
  for (const { name, input, expected } of cases) {
    it(name, () => assert.deepEqual(mergeRanges(input), expected));
  }
});

const MSDOS_IDENTITY = { scheme: 'msdos', signature: 0x1234abcd } as const;
const GPT_IDENTITY = { scheme: 'gpt', diskGuid: '01234567-89ab-cdef-0123-456789abcdef' } as const;

describe('mapDisk', () => {
  const cases: {
    name: string;
    table: PartitionTable;
    allocations: [number, PartitionAllocation][];
    imageSizeBytes: number;
    expected: ByteRange[];
    whole?: number[];
  }[] = [
    {
      name: 'msdos: the head up to the first partition, allocated blocks offset by the start, nothing past them',
      table: {
        kind: 'msdos',
        identity: MSDOS_IDENTITY,
        primaryRange: range(0, 512),
        partitions: [part(1, 1 * MIB, 8 * MIB)],
      },
      allocations: [[1, allocated(4096, [0, 2], [10, 1])]],
      imageSizeBytes: 16 * MIB,
      expected: [range(0, MIB + 2 * 4096), range(MIB + 10 * 4096, 4096)],
    },
    {
      name: 'gpt: the backup entries and header at the end are mapped',
      table: {
        kind: 'gpt',
        identity: GPT_IDENTITY,
        primaryRange: range(0, 34 * 512),
        partitions: [part(1, MIB, 4 * MIB)],
        backupRange: range(16 * MIB - 33 * 512, 33 * 512),
      },
      allocations: [[1, allocated(1024, [1, 3])]],
      imageSizeBytes: 16 * MIB,
      expected: [range(0, MIB), range(MIB + 1024, 3 * 1024), range(16 * MIB - 33 * 512, 33 * 512)],
    },
    {
      name: 'the first partition is the lowest start, whatever its number (the embedding gap is mapped)',
      table: {
        kind: 'msdos',
        identity: MSDOS_IDENTITY,
        primaryRange: range(0, 512),
        partitions: [part(1, 8 * MIB, MIB), part(2, 2 * MIB, MIB)],
      },
      allocations: [
        [1, allocated(512, [0, 1])],
        [2, allocated(512, [0, 1])],
      ],
      imageSizeBytes: 16 * MIB,
      expected: [range(0, 2 * MIB + 512), range(8 * MIB, 512)],
    },
    {
      name: 'an unread filesystem is mapped whole and said so',
      table: {
        kind: 'msdos',
        identity: MSDOS_IDENTITY,
        primaryRange: range(0, 512),
        partitions: [part(1, MIB, MIB), part(2, 4 * MIB, 2 * MIB)],
      },
      allocations: [
        [1, allocated(4096, [0, 1])],
        [2, { kind: 'whole', reason: 'xfs' }],
      ],
      imageSizeBytes: 8 * MIB,
      expected: [range(0, MIB + 4096), range(4 * MIB, 2 * MIB)],
      whole: [2],
    },
    {
      name: 'a partition with no allocation given is mapped whole',
      table: { kind: 'msdos', identity: MSDOS_IDENTITY, primaryRange: range(0, 512), partitions: [part(1, MIB, MIB)] },
      allocations: [],
      imageSizeBytes: 4 * MIB,
      expected: [range(0, 2 * MIB)],
      whole: [1],
    },
    {
      name: 'a filesystem claiming blocks past its partition is clipped to the partition',
      table: { kind: 'msdos', identity: MSDOS_IDENTITY, primaryRange: range(0, 512), partitions: [part(1, MIB, MIB)] },
      allocations: [[1, allocated(4096, [255, 10])]],
      imageSizeBytes: 4 * MIB,
      expected: [range(0, MIB), range(2 * MIB - 4096, 4096)],
    },
    {
      name: 'adjacent runs from two partitions merge',
      table: {
        kind: 'msdos',
        identity: MSDOS_IDENTITY,
        primaryRange: range(0, 512),
        partitions: [part(1, MIB, MIB), part(2, 2 * MIB, MIB)],
      },
      allocations: [
        [1, allocated(4096, [255, 1])],
        [2, allocated(4096, [0, 1])],
      ],
      imageSizeBytes: 4 * MIB,
      expected: [range(0, MIB), range(2 * MIB - 4096, 2 * 4096)],
    },
    {
      name: 'a partition claiming LBA 0 does not unmap it',
      table: { kind: 'msdos', identity: MSDOS_IDENTITY, primaryRange: range(0, 512), partitions: [part(1, 0, MIB)] },
      allocations: [[1, allocated(4096, [10, 1])]],
      imageSizeBytes: 4 * MIB,
      expected: [range(0, 512), range(10 * 4096, 4096)],
    },
    {
      name: 'a GPT partition over the primary entries does not unmap them',
      table: {
        kind: 'gpt',
        identity: GPT_IDENTITY,
        primaryRange: range(0, 34 * 512),
        partitions: [part(1, 1024, MIB)],
      },
      allocations: [[1, allocated(4096, [100, 1])]],
      imageSizeBytes: 4 * MIB,
      expected: [range(0, 34 * 512), range(1024 + 100 * 4096, 4096)],
    },
    {
      name: 'no partitions: the whole image is the head',
      table: { kind: 'msdos', identity: MSDOS_IDENTITY, primaryRange: range(0, 512), partitions: [] },
      allocations: [],
      imageSizeBytes: 4 * MIB,
      expected: [range(0, 4 * MIB)],
    },
  ];
  for (const { name, table, allocations, imageSizeBytes, expected, whole } of cases) {
    it(name, () => {
      const map = mapDisk(table, new Map(allocations), imageSizeBytes);
      assert.deepEqual(map.ranges, expected);
      assert.equal(
        map.mappedBytes,
        expected.reduce((sum, r) => sum + r.lengthBytes, 0),
      );
      assert.deepEqual(
        map.wholePartitions.map((w) => w.number),
        whole ?? [],
      );
    });
  }
});
