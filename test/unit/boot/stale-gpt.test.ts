import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { isGptHeader, staleGptHeaderOffsets } from '../../../src/boot/stale-gpt.ts';

/** A minimal GPT header sector: signature, revision, size 92, its CRC. */
function header(sizeBytes = 92): Buffer {
  const sector = Buffer.alloc(512);
  sector.write('EFI PART', 0, 'latin1');
  sector.writeUInt32LE(0x00010000, 8);
  sector.writeUInt32LE(sizeBytes, 12);
  sector.writeUInt32LE(crc32(sector.subarray(0, Math.min(sizeBytes, 512))), 16);
  return sector;
}

describe('isGptHeader', () => {
  it('takes a header whose CRC holds', () => assert.equal(isGptHeader(header()), true));
  it('refuses a damaged CRC', () => {
    const damaged = header();
    damaged[40] = 1;
    assert.equal(isGptHeader(damaged), false);
  });
  it('refuses a header size GPT does not allow', () => {
    assert.equal(isGptHeader(header(91)), false);
    assert.equal(isGptHeader(header(513)), false);
  });
  it('refuses zeros, other data and a short buffer', () => {
    assert.equal(isGptHeader(Buffer.alloc(512)), false);
    assert.equal(isGptHeader(Buffer.from('EFI PAR'.padEnd(512, 'x'))), false);
    assert.equal(isGptHeader(header().subarray(0, 100)), false);
  });
});

describe('staleGptHeaderOffsets', () => {
  const diskSizeBytes = 64 * 1024 * 1024;
  const last = diskSizeBytes - 512;
  const rows: [string, Parameters<typeof staleGptHeaderOffsets>[0], number[]][] = [
    ['nothing mapped: LBA 1 and the last sector', { diskSizeBytes, mapped: [], keep: [] }, [512, last]],
    [
      'the new image writes its first MiB (its own table)',
      { diskSizeBytes, mapped: [{ offsetBytes: 0, lengthBytes: 1024 * 1024 }], keep: [] },
      [last],
    ],
    [
      'the new image is as large as the disk and writes its own backup',
      { diskSizeBytes, mapped: [{ offsetBytes: last - 16384, lengthBytes: 16896 }], keep: [] },
      [512],
    ],
    [
      'one mapped byte of the sector is enough',
      { diskSizeBytes, mapped: [{ offsetBytes: last + 511, lengthBytes: 1 }], keep: [] },
      [512],
    ],
    [
      'the refuge is never touched',
      { diskSizeBytes, mapped: [], keep: [{ offsetBytes: last, lengthBytes: 512 }] },
      [512],
    ],
    ['a disk size off a sector boundary', { diskSizeBytes: diskSizeBytes + 100, mapped: [], keep: [] }, [512, last]],
  ];
  for (const [name, input, expected] of rows) {
    it(name, () => assert.deepEqual(staleGptHeaderOffsets(input), expected));
  }
});
