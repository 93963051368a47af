import type { FileHandle } from 'node:fs/promises';
import {
  BOOT_KERNEL_SECTOR_OFFSET,
  bootSectorCoreLba,
  decodeLocator,
  decodeRefugeHeader,
  GRUB_SECTOR_BYTES,
  type JournalReadResult,
  LOCATOR_BYTES,
  LOCATOR_OFFSET_IN_CORE_ROOM,
  REFUGE_HEADER_BYTES,
  type RefugeHeader,
  type RefugeLocator,
  readGrubBootImage,
  readJournal,
} from '../boot/index.ts';
import { isReimageError } from '../core/reimage-error.ts';
import { readAt } from '../disk/index.ts';

/** What LBA 0 and the refuge say about an arm, read raw from the disk. */
export type FoundArm =
  | { readonly kind: 'not-armed'; readonly why: string; readonly lba0: Buffer }
  | {
      readonly kind: 'damaged';
      readonly why: string;
      readonly lba0: Buffer;
      readonly coreLba: number;
      readonly locator?: RefugeLocator;
    }
  | {
      readonly kind: 'armed';
      readonly lba0: Buffer;
      readonly coreLba: number;
      readonly locator: RefugeLocator;
      readonly header: RefugeHeader;
      readonly journal: Extract<JournalReadResult, { trusted: true }>;
    };

/**
 * Whether `sector` is GRUB's boot.img as arm writes it: bytes 0–439 equal boot.img's but for the
 * 8-byte field that names core.img's sector. Pure.
 */
export function isArmBootSector(sector: Buffer, bootImage: Buffer): boolean {
  for (let at = 0; at < 440; at++) {
    if (at >= BOOT_KERNEL_SECTOR_OFFSET && at < BOOT_KERNEL_SECTOR_OFFSET + 8) continue;
    if (sector[at] !== bootImage[at]) return false;
  }
  return true;
}

/**
 * Finds the arm from LBA 0 alone: its boot code names core.img's sector, the locator at the end of
 * core.img's room names the journal and header. No search, no mounted filesystem.
 */
export async function findArm(disk: FileHandle): Promise<FoundArm> {
  const lba0 = Buffer.alloc(GRUB_SECTOR_BYTES);
  await readAt(disk, lba0, 0);
  if (!isArmBootSector(lba0, await readGrubBootImage())) {
    return { kind: 'not-armed', why: 'LBA 0 does not hold the boot code arm writes', lba0 };
  }
  const coreLba = bootSectorCoreLba(lba0);
  const locatorBlock = Buffer.alloc(LOCATOR_BYTES);
  await readAt(disk, locatorBlock, coreLba * GRUB_SECTOR_BYTES + LOCATOR_OFFSET_IN_CORE_ROOM);
  const locator = decodeLocator(locatorBlock);
  if (locator === undefined) {
    // GRUB's own boot code with a core.img of a grub-install (not ours) lands here too.
    return { kind: 'not-armed', why: `LBA 0 boots GRUB from sector ${coreLba}, which is not a reimage refuge`, lba0 };
  }
  return readArmAt(disk, locator, lba0, coreLba);
}

/**
 * The header and journal a locator names, read raw. `coreLba` is where LBA 0's boot code leads
 * (undefined when the locator came from the refuge file because LBA 0 leads elsewhere).
 */
export async function readArmAt(
  disk: FileHandle,
  locator: RefugeLocator,
  lba0: Buffer,
  coreLba: number,
): Promise<FoundArm> {
  const headerBytes = Buffer.alloc(REFUGE_HEADER_BYTES);
  await readAt(disk, headerBytes, locator.headerOffsetBytes);
  let header: RefugeHeader;
  try {
    header = decodeRefugeHeader(headerBytes);
  } catch (error) {
    return {
      kind: 'damaged',
      why: `the refuge header is damaged: ${isReimageError(error) ? error.message : String(error)}`,
      lba0,
      coreLba,
      locator,
    };
  }
  const journal = await readJournal(disk, {
    offsetBytes: locator.journalOffsetBytes,
    journalId: Buffer.from(locator.journalId, 'hex'),
  });
  if (!journal.trusted) {
    return {
      kind: 'damaged',
      why: `no journal slot can be trusted (slot 0: ${journal.slots[0].rejection}, slot 1: ${journal.slots[1].rejection})`,
      lba0,
      coreLba,
      locator,
    };
  }
  return { kind: 'armed', lba0, coreLba, locator, header, journal };
}
