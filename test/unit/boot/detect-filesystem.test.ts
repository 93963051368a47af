import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { detectFilesystem, type FilesystemKind } from '../../../src/boot/map-image-file.ts';

function start(write: (bytes: Buffer) => void): Buffer {
  const bytes = Buffer.alloc(2048);
  write(bytes);
  return bytes;
}

describe('detectFilesystem', () => {
  const cases: { name: string; bytes: Buffer; expected: FilesystemKind }[] = [
    { name: 'ext: 53 ef at 1080', bytes: start((b) => b.writeUInt16LE(0xef53, 1080)), expected: 'ext' },
    { name: 'xfs: XFSB at 0', bytes: start((b) => b.write('XFSB', 0, 'latin1')), expected: 'xfs' },
    {
      name: 'FAT12/16: "FAT" at 54 and 55 aa',
      bytes: start((b) => {
        b.write('FAT16   ', 54, 'latin1');
        b.writeUInt16BE(0x55aa, 510);
      }),
      expected: 'vfat',
    },
    {
      name: 'FAT32: "FAT32" at 82 and 55 aa',
      bytes: start((b) => {
        b.write('FAT32   ', 82, 'latin1');
        b.writeUInt16BE(0x55aa, 510);
      }),
      expected: 'vfat',
    },
    { name: 'a FAT name without 55 aa', bytes: start((b) => b.write('FAT16   ', 54, 'latin1')), expected: 'unknown' },
    { name: 'zeros (a BIOS boot partition, swap, anything else)', bytes: Buffer.alloc(2048), expected: 'unknown' },
    { name: 'a short read', bytes: Buffer.alloc(100), expected: 'unknown' },
  ];
  for (const { name, bytes, expected } of cases) {
    it(name, () => assert.equal(detectFilesystem(bytes), expected));
  }
});
