import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  BOOT_KERNEL_SECTOR_OFFSET,
  bootSectorCoreLba,
  CORE_BLOCKLIST_SECTORS_OFFSET,
  CORE_BLOCKLIST_START_OFFSET,
  MBR_KEEP_FROM_OFFSET,
  patchBootSector,
  patchCoreBlocklist,
} from '../../../src/boot/grub-boot-sector.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';

function bootSector(fill: () => Buffer): Buffer {
  const sector = fill();
  sector.writeUInt16LE(0xaa55, 510);
  return sector;
}

function isCode(code: string): (error: unknown) => boolean {
  return (error: unknown) => error instanceof ReimageError && error.code === code;
}

describe('patchBootSector', () => {
  const oldLba0 = bootSector(() => randomBytes(512));
  const bootImage = bootSector(() => randomBytes(512));

  for (const coreLba of [1, 34, 2047, 123456789, 2 ** 40]) {
    it(`points boot.img at LBA ${coreLba} and keeps bytes 440–511 of the old sector`, () => {
      const before = Buffer.from(oldLba0);
      const sector = patchBootSector(oldLba0, bootImage, coreLba);
      assert.equal(sector.length, 512);
      assert.ok(sector.subarray(MBR_KEEP_FROM_OFFSET).equals(oldLba0.subarray(MBR_KEEP_FROM_OFFSET)));
      assert.equal(sector.readUInt16LE(510), 0xaa55);
      assert.equal(sector.readBigUInt64LE(BOOT_KERNEL_SECTOR_OFFSET), BigInt(coreLba));
      assert.equal(bootSectorCoreLba(sector), coreLba);
      assert.ok(sector.subarray(0, BOOT_KERNEL_SECTOR_OFFSET).equals(bootImage.subarray(0, BOOT_KERNEL_SECTOR_OFFSET)));
      assert.ok(
        sector
          .subarray(BOOT_KERNEL_SECTOR_OFFSET + 8, 440)
          .equals(bootImage.subarray(BOOT_KERNEL_SECTOR_OFFSET + 8, 440)),
      );
      assert.ok(oldLba0.equals(before), 'the old sector is not changed in place');
    });
  }

  it('refuses an old LBA 0 without 0x55AA (no table to keep)', () => {
    assert.throws(() => patchBootSector(Buffer.alloc(512), bootImage, 34), isCode('REIMAGE_BOOT_SECTOR_UNEXPECTED'));
  });
  it('refuses a boot.img that is not one sector', () => {
    assert.throws(() => patchBootSector(oldLba0, Buffer.alloc(1024), 34), isCode('REIMAGE_BOOT_SECTOR_UNEXPECTED'));
  });
  it('refuses LBA 0 as the place of core.img', () => {
    assert.throws(() => patchBootSector(oldLba0, bootImage, 0), isCode('REIMAGE_BOOT_RANGES_INVALID'));
  });
});

describe('patchCoreBlocklist', () => {
  // Shaped like grub-mkimage's output: 3 sectors and a bit, "4 sectors follow the first", start 2.
  const core = randomBytes(512 * 4 + 100);
  core.writeBigUInt64LE(2n, CORE_BLOCKLIST_START_OFFSET);
  core.writeUInt16LE(4, CORE_BLOCKLIST_SECTORS_OFFSET);

  it('pads to whole sectors and points the blocklist at the next sector', () => {
    const patched = patchCoreBlocklist(core, 40);
    assert.equal(patched.length, 512 * 5);
    assert.equal(patched.readBigUInt64LE(CORE_BLOCKLIST_START_OFFSET), 41n);
    assert.equal(patched.readUInt16LE(CORE_BLOCKLIST_SECTORS_OFFSET), 4);
    assert.ok(patched.subarray(0, CORE_BLOCKLIST_START_OFFSET).equals(core.subarray(0, CORE_BLOCKLIST_START_OFFSET)));
    assert.ok(patched.subarray(512, core.length).equals(core.subarray(512)));
    assert.ok(patched.subarray(core.length).equals(Buffer.alloc(patched.length - core.length)));
  });

  it('refuses a core.img whose blocklist count does not match its size', () => {
    const other = Buffer.from(core);
    other.writeUInt16LE(3, CORE_BLOCKLIST_SECTORS_OFFSET);
    assert.throws(() => patchCoreBlocklist(other, 40), isCode('REIMAGE_BOOT_CORE_UNEXPECTED'));
  });
});
