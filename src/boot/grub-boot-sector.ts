import { ReimageError } from '../core/reimage-error.ts';

/**
 * GRUB i386-pc's on-disk layout, as grub-bios-setup patches it (include/grub/i386/pc/boot.h,
 * diskboot.S), for placing boot.img and core.img by hand at any LBA.
 */
export const GRUB_SECTOR_BYTES = 512;
/**
 * Debian's grub-pc-bin puts the i386-pc images and modules here. REIMAGE_GRUB_DIR names another
 * place: the portable runtime's launcher sets it to the runtime's own copy, since the old OS may
 * have no GRUB files or another GRUB's (src/initramfs/portable-runtime.ts).
 */
export const GRUB_I386_PC_DIR = process.env.REIMAGE_GRUB_DIR || '/usr/lib/grub/i386-pc';
/** boot.img's 8-byte LBA of core.img's first sector (GRUB_BOOT_MACHINE_KERNEL_SECTOR). */
export const BOOT_KERNEL_SECTOR_OFFSET = 0x5c;
/** Bytes from here to 511 (disk signature, partition table, 0x55AA) stay the disk's own. */
export const MBR_KEEP_FROM_OFFSET = 440;
/** diskboot.img's first blocklist entry sits at the end of core.img's first sector: start LBA (8 bytes)… */
export const CORE_BLOCKLIST_START_OFFSET = GRUB_SECTOR_BYTES - 12;
/** …then the number of sectors that follow (2 bytes), then the load segment (2 bytes, 0x820). */
export const CORE_BLOCKLIST_SECTORS_OFFSET = GRUB_SECTOR_BYTES - 4;

function isBootSignature(sector: Buffer): boolean {
  return sector.readUInt16LE(510) === 0xaa55;
}

/**
 * The new LBA 0: boot.img's code (bytes 0–439) with its kernel-sector field set to `coreLba`,
 * and bytes 440–511 of the old LBA 0 as they were (disk signature, msdos table or GPT's
 * protective entry, 0x55AA). Pure; the caller writes it as one sector.
 */
export function patchBootSector(oldLba0: Buffer, bootImage: Buffer, coreLba: number): Buffer {
  if (oldLba0.length !== GRUB_SECTOR_BYTES || !isBootSignature(oldLba0)) {
    throw new ReimageError(
      'REIMAGE_BOOT_SECTOR_UNEXPECTED',
      "The disk's LBA 0 is not a 512-byte sector ending in 0x55AA (no msdos table or protective MBR): there is no partition table to keep. Partition the disk first.",
      { evidence: { field: 'LBA 0', expected: '512 bytes ending 55 AA', actual: `${oldLba0.length} bytes` } },
    );
  }
  if (bootImage.length !== GRUB_SECTOR_BYTES || !isBootSignature(bootImage)) {
    throw new ReimageError(
      'REIMAGE_BOOT_SECTOR_UNEXPECTED',
      "GRUB's boot.img is not a 512-byte boot sector. Reinstall grub-pc-bin.",
      { evidence: { field: 'boot.img', expected: '512 bytes ending 55 AA', actual: `${bootImage.length} bytes` } },
    );
  }
  checkLba(coreLba, 'coreLba');
  const sector = Buffer.from(oldLba0);
  bootImage.copy(sector, 0, 0, MBR_KEEP_FROM_OFFSET);
  sector.writeBigUInt64LE(BigInt(coreLba), BOOT_KERNEL_SECTOR_OFFSET);
  return sector;
}

/** The LBA boot.img in this sector loads core.img from (the field patchBootSector sets). */
export function bootSectorCoreLba(sector: Buffer): number {
  return Number(sector.readBigUInt64LE(BOOT_KERNEL_SECTOR_OFFSET));
}

/**
 * core.img padded to whole sectors, its first sector's blocklist pointing at `coreLba + 1`, for a
 * contiguous placement at `coreLba`. grub-mkimage already writes the count of the sectors that
 * follow (it assumes LBA 1 and start 2), so only the start moves; a count that does not match the
 * image's size means another layout than this code knows, and is refused.
 */
export function patchCoreBlocklist(coreImage: Buffer, coreLba: number): Buffer {
  checkLba(coreLba, 'coreLba');
  const sectors = Math.ceil(coreImage.length / GRUB_SECTOR_BYTES);
  const followingSectors = sectors >= 1 ? coreImage.readUInt16LE(CORE_BLOCKLIST_SECTORS_OFFSET) : -1;
  if (sectors < 2 || followingSectors !== sectors - 1) {
    throw new ReimageError(
      'REIMAGE_BOOT_CORE_UNEXPECTED',
      `GRUB's core.img (${coreImage.length} bytes) does not carry the blocklist this code patches (its first sector says ${followingSectors} sectors follow, expected ${sectors - 1}). Check the grub-pc-bin version.`,
      { evidence: { field: 'core.img blocklist', expected: sectors - 1, actual: followingSectors } },
    );
  }
  const padded = Buffer.alloc(sectors * GRUB_SECTOR_BYTES);
  coreImage.copy(padded);
  padded.writeBigUInt64LE(BigInt(coreLba + 1), CORE_BLOCKLIST_START_OFFSET);
  return padded;
}

function checkLba(lba: number, field: string): void {
  // LBA 0 is the boot sector itself; core.img can never start there.
  if (!Number.isSafeInteger(lba) || lba < 1) {
    throw new ReimageError('REIMAGE_BOOT_RANGES_INVALID', `${lba} is not an LBA core.img can start at (≥ 1).`, {
      evidence: { field, actual: lba },
    });
  }
}
