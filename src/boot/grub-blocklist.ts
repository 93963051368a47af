import { ReimageError } from '../core/reimage-error.ts';

/** A run of 512-byte sectors on the whole disk (LBA, not relative to a partition). */
export interface SectorRange {
  readonly startLba: number;
  readonly sectorCount: number;
}

/**
 * GRUB's i386-pc build keeps a blocklist entry's length in a 32-bit `unsigned long` of sectors and
 * reads at most 4 GiB in one file; one fragment is kept well below that, and a kernel or an
 * initramfs never comes near it.
 */
export const MAX_FRAGMENT_SECTORS = 0x7fffff;

/**
 * Adjacent ranges joined (file order kept: GRUB reads the entries one after the other, so a later
 * range that lies *before* an earlier one on the disk is still read later).
 */
export function mergeAdjacentRanges(ranges: readonly SectorRange[]): SectorRange[] {
  const merged: SectorRange[] = [];
  for (const range of ranges) {
    const last = merged.at(-1);
    if (last !== undefined && last.startLba + last.sectorCount === range.startLba) {
      merged[merged.length - 1] = { startLba: last.startLba, sectorCount: last.sectorCount + range.sectorCount };
    } else {
      merged.push({ startLba: range.startLba, sectorCount: range.sectorCount });
    }
  }
  return merged;
}

/** Refuses ranges GRUB would misread: empty, negative, fractional, or beyond exact integers. */
export function checkSectorRanges(ranges: readonly SectorRange[], what: string): void {
  if (ranges.length === 0) {
    throw new ReimageError('REIMAGE_BOOT_RANGES_INVALID', `The ${what} has no sector range; it cannot be loaded.`, {
      evidence: { field: what, expected: 'at least one range', actual: 0 },
    });
  }
  for (const [index, range] of ranges.entries()) {
    const problem = rangeProblem(range);
    if (problem !== undefined) {
      throw new ReimageError(
        'REIMAGE_BOOT_RANGES_INVALID',
        `Range ${index} of the ${what} (${range.startLba}+${range.sectorCount}) is not usable: ${problem}. This is a bug in the caller that measured the extents.`,
        { evidence: { field: `${what}[${index}]`, startLba: range.startLba, sectorCount: range.sectorCount } },
      );
    }
  }
}

function rangeProblem(range: SectorRange): string | undefined {
  if (!Number.isSafeInteger(range.startLba) || range.startLba < 0) return 'the start is not a whole LBA ≥ 0';
  if (!Number.isSafeInteger(range.sectorCount) || range.sectorCount < 1) return 'the count is not a whole number ≥ 1';
  if (range.sectorCount > MAX_FRAGMENT_SECTORS) return `one fragment holds at most ${MAX_FRAGMENT_SECTORS} sectors`;
  if (!Number.isSafeInteger(range.startLba + range.sectorCount)) return 'the range ends beyond exact integers';
  return undefined;
}

/** `START+COUNT,START+COUNT…` (decimal), adjacent ranges joined; the refuge location uses this too. */
export function formatSectorRanges(ranges: readonly SectorRange[], what: string): string {
  checkSectorRanges(ranges, what);
  return mergeAdjacentRanges(ranges)
    .map((range) => `${range.startLba}+${range.sectorCount}`)
    .join(',');
}

/**
 * GRUB's blocklist file name for sector ranges: `(hd0)START+COUNT,START+COUNT…`. GRUB's
 * kern/fs.c (grub_fs_blocklist_open) takes the device once, before the list, then entries
 * `[OFFSET]+LENGTH` in 512-byte sectors separated by commas, read in that order; the file's size is
 * the sum of the lengths, so a file ends padded to whole sectors (harmless for a bzImage and for
 * an initramfs, whose unpacker skips zero padding).
 */
export function grubBlocklist(
  ranges: readonly SectorRange[],
  options: { device?: string; what?: string } = {},
): string {
  const device = options.device ?? '(hd0)';
  if (!/^\([a-z0-9,]+\)$/.test(device)) {
    throw new ReimageError('REIMAGE_BOOT_RANGES_INVALID', `"${device}" is not a GRUB device name like (hd0).`, {
      evidence: { field: 'device', expected: '(hd0)', actual: device },
    });
  }
  return `${device}${formatSectorRanges(ranges, options.what ?? 'file')}`;
}
