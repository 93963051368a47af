import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { parsePartitionTable, TABLE_HEAD_BYTES } from '../../../src/disk/partition-table.ts';

const MIB = 1024 * 1024;
const IMAGE_BYTES = 64 * MIB;
const LINUX_GUID = '0fc63daf-8483-4772-8e79-3d69a47de4f6';
const LINUX_GUID_BYTES = Buffer.from('af3dc60f838472478e793d69a47de4f6', 'hex');

function msdos(slots: { type: number; startLba: number; sectors: number }[]): Buffer {
  const head = Buffer.alloc(TABLE_HEAD_BYTES);
  slots.forEach((slot, index) => {
    const at = 446 + index * 16;
    head[at + 4] = slot.type;
    head.writeUInt32LE(slot.startLba, at + 8);
    head.writeUInt32LE(slot.sectors, at + 12);
  });
  head[510] = 0x55;
  head[511] = 0xaa;
  return head;
}

/** A GPT as sfdisk writes it: protective MBR, header at LBA 1, 128 entries of 128 bytes at LBA 2. */
function gpt(
  entries: { index: number; firstLba: number; lastLba: number }[],
  alternateLba = IMAGE_BYTES / 512 - 1,
  editHeader: (header: Buffer) => void = () => {},
): Buffer {
  const head = msdos([{ type: 0xee, startLba: 1, sectors: IMAGE_BYTES / 512 - 1 }]);
  const table = head.subarray(1024, 1024 + 128 * 128);
  for (const entry of entries) {
    const at = entry.index * 128;
    LINUX_GUID_BYTES.copy(table, at);
    table[at + 16] = entry.index + 1; // a unique partition GUID, any non-zero bytes
    table.writeBigUInt64LE(BigInt(entry.firstLba), at + 32);
    table.writeBigUInt64LE(BigInt(entry.lastLba), at + 40);
  }
  const header = head.subarray(512, 512 + 92);
  header.write('EFI PART', 0, 'latin1');
  header.writeUInt32LE(0x00010000, 8);
  header.writeUInt32LE(92, 12);
  header.writeBigUInt64LE(1n, 24);
  header.writeBigUInt64LE(BigInt(alternateLba), 32);
  header.writeBigUInt64LE(2n, 72);
  header.writeUInt32LE(128, 80);
  header.writeUInt32LE(128, 84);
  header.writeUInt32LE(crc32(table), 88);
  editHeader(header);
  header.writeUInt32LE(crc32(header), 16);
  return head;
}

function refusal(head: Buffer, imageSizeBytes = IMAGE_BYTES): string {
  try {
    parsePartitionTable(head, imageSizeBytes);
  } catch (e) {
    assert.ok(isReimageError(e), String(e));
    assert.equal(e.code, 'REIMAGE_BOOT_IMAGE_TABLE_INVALID');
    return e.message;
  }
  assert.fail('no refusal');
}

describe('parsePartitionTable', () => {
  it('reads msdos primaries, marking an extended one as a container and skipping empty slots', () => {
    const table = parsePartitionTable(
      msdos([
        { type: 0x83, startLba: 2048, sectors: 4096 },
        { type: 0, startLba: 0, sectors: 0 },
        { type: 0x0c, startLba: 8192, sectors: 2048 },
        { type: 0x05, startLba: 10240, sectors: 8192 },
      ]),
      IMAGE_BYTES,
    );
    assert.equal(table.kind, 'msdos');
    assert.equal(table.backupRange, undefined);
    assert.deepEqual(table.primaryRange, { offsetBytes: 0, lengthBytes: 512 });
    assert.deepEqual(table.partitions, [
      { number: 1, startBytes: MIB, sizeBytes: 2 * MIB, type: '83', extended: false },
      { number: 3, startBytes: 4 * MIB, sizeBytes: MIB, type: '0c', extended: false },
      { number: 4, startBytes: 5 * MIB, sizeBytes: 4 * MIB, type: '05', extended: true },
    ]);
  });

  it('reads a GPT, its entries numbered by slot, and places the backup entries and header at the end', () => {
    const table = parsePartitionTable(
      gpt([
        { index: 0, firstLba: 2048, lastLba: 4095 },
        { index: 2, firstLba: 4096, lastLba: 8191 },
      ]),
      IMAGE_BYTES,
    );
    assert.equal(table.kind, 'gpt');
    assert.deepEqual(table.partitions, [
      { number: 1, startBytes: MIB, sizeBytes: MIB, type: LINUX_GUID, extended: false },
      { number: 3, startBytes: 2 * MIB, sizeBytes: 2 * MIB, type: LINUX_GUID, extended: false },
    ]);
    assert.deepEqual(table.backupRange, { offsetBytes: IMAGE_BYTES - 33 * 512, lengthBytes: 33 * 512 });
    assert.deepEqual(table.primaryRange, { offsetBytes: 0, lengthBytes: 34 * 512 });
  });

  it('reads the msdos disk signature, little-endian, from LBA 0 offset 440', () => {
    const head = msdos([{ type: 0x83, startLba: 2048, sectors: 4096 }]);
    head.set([0x78, 0x56, 0x34, 0x12], 440);
    assert.deepEqual(parsePartitionTable(head, IMAGE_BYTES).identity, { scheme: 'msdos', signature: 0x12345678 });
  });

  it('reads the GPT disk GUID from header offset 56 (mixed-endian), not the protective MBR signature', () => {
    const head = gpt([{ index: 0, firstLba: 2048, lastLba: 4095 }], IMAGE_BYTES / 512 - 1, (header) =>
      header.set(Buffer.from('33221100554477668899aabbccddeeff', 'hex'), 56),
    );
    head.set([1, 2, 3, 4], 440);
    assert.deepEqual(parsePartitionTable(head, IMAGE_BYTES).identity, {
      scheme: 'gpt',
      diskGuid: '00112233-4455-6677-8899-aabbccddeeff',
    });
  });

  const refusals: { name: string; head: () => Buffer; imageSizeBytes?: number; says: RegExp }[] = [
    { name: 'no boot signature', head: () => Buffer.alloc(TABLE_HEAD_BYTES), says: /55 aa/ },
    {
      name: 'an msdos partition past the end',
      head: () => msdos([{ type: 0x83, startLba: 2048, sectors: IMAGE_BYTES / 512 }]),
      says: /past the image's end/,
    },
    {
      name: 'a protective MBR without a GPT header',
      head: () => msdos([{ type: 0xee, startLba: 1, sectors: 100 }]),
      says: /EFI PART/,
    },
    {
      name: 'a damaged GPT header',
      head: () => {
        const head = gpt([{ index: 0, firstLba: 2048, lastLba: 4095 }]);
        head.writeUInt8(head.readUInt8(512 + 40) ^ 1, 512 + 40);
        return head;
      },
      says: /header CRC/,
    },
    {
      name: 'damaged GPT entries',
      head: () => {
        const head = gpt([{ index: 0, firstLba: 2048, lastLba: 4095 }]);
        head.writeUInt8(head.readUInt8(1024 + 32) ^ 1, 1024 + 32);
        return head;
      },
      says: /entries CRC/,
    },
    {
      name: 'a GPT whose backup lies past a cut-off image',
      head: () => gpt([{ index: 0, firstLba: 2048, lastLba: 4095 }]),
      imageSizeBytes: IMAGE_BYTES - MIB,
      says: /backup header/,
    },
  ];
  for (const { name, head, imageSizeBytes, says } of refusals) {
    it(`refuses ${name}`, () => assert.match(refusal(head(), imageSizeBytes), says));
  }
});
