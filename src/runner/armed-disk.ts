import { open, readdir, readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  decodeRefugeHeader,
  formatDiskIdentity,
  JOURNAL_SIZE_BYTES,
  parseRecoveryCmdline,
  REFUGE_HEAD_BYTES,
  REFUGE_HEADER_BYTES,
  type RecoveryCmdline,
  type RefugeHeader,
} from '../boot/index.ts';
import type { Logger } from '../core/logger.ts';
import { isReimageError, ReimageError } from '../core/reimage-error.ts';
import { type DiskIdentity, readAt } from '../disk/index.ts';

const SECTOR_BYTES = 512;
/** Block devices that are never the machine's disk: RAM, loop, optical, floppy, device-mapper. */
const NOT_DISKS = /^(ram|loop|zram|sr|fd|dm-|md)/;

export interface ArmedDisk {
  readonly device: string;
  readonly cmdline: RecoveryCmdline;
  readonly header: RefugeHeader;
  readonly headerBytes: Buffer;
  /** Where the journal is: the start of the range the command line names. */
  readonly journalOffsetBytes: number;
}

function sameIdentity(a: DiskIdentity, b: DiskIdentity): boolean {
  return formatDiskIdentity(a) === formatDiskIdentity(b);
}

/** A block device's size from sysfs, or undefined. */
async function sizeOf(device: string): Promise<number | undefined> {
  try {
    return Number((await readFile(`/sys/class/block/${basename(device)}/size`, 'utf8')).trim()) * SECTOR_BYTES;
  } catch {
    return undefined;
  }
}

/** Whole disks the kernel shows, the plan's disk first (only a hint: it is checked like the rest). */
async function candidateDisks(hint: string | undefined): Promise<string[]> {
  const names = (await readdir('/sys/block').catch(() => [] as string[])).filter((name) => !NOT_DISKS.test(name));
  const devices = names.map((name) => `/dev/${name}`);
  return hint !== undefined && devices.includes(hint) ? [hint, ...devices.filter((d) => d !== hint)] : devices;
}

/**
 * Finds the armed disk from what the recovery boot passed on the kernel command line: the disk
 * whose sectors `reimage.refuge` names hold a refuge header for the identity `reimage.disk` (the
 * msdos signature or GPT disk GUID arm read) and the disk's size — never a device name alone. No
 * search of the disk: only the named sectors of each candidate are read. Waits for disks to
 * appear (up to timeoutMs); the journal is checked next, against the header's journal id.
 */
export async function findArmedDisk(o: {
  cmdline: string;
  hint: string | undefined;
  log: Logger;
  timeoutMs?: number;
}): Promise<ArmedDisk> {
  const cmdline = parseRecoveryCmdline(o.cmdline);
  if (cmdline === undefined) {
    throw new ReimageError(
      'REIMAGE_BOOT_CMDLINE_INVALID',
      'The kernel command line has no reimage.refuge= and reimage.disk=: this boot did not come from an armed disk. Run reimage run --plan PLAN instead.',
      { evidence: { cmdline: o.cmdline.slice(0, 200) } },
    );
  }
  const journalOffsetBytes = cmdline.refuge.startLba * SECTOR_BYTES;
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  for (;;) {
    for (const device of await candidateDisks(o.hint)) {
      // The identity is taken from the refuge header at the sectors the command line names, not
      // from the disk's own table: once the armed write has begun, a GPT disk's LBA 1–33 hold the
      // new image's header, whose GUID is not the armed disk's.
      const sizeBytes = await sizeOf(device);
      if (sizeBytes === undefined || sizeBytes < journalOffsetBytes + REFUGE_HEAD_BYTES) continue;
      const handle = await open(device, 'r').catch(() => undefined);
      if (handle === undefined) continue;
      try {
        const headerBytes = Buffer.alloc(REFUGE_HEADER_BYTES);
        await readAt(handle, headerBytes, journalOffsetBytes + JOURNAL_SIZE_BYTES);
        const header = decodeRefugeHeader(headerBytes);
        if (!sameIdentity(header.disk, cmdline.disk) || header.diskSizeBytes !== sizeBytes) continue;
        o.log.info(
          `armed disk: ${device} (${formatDiskIdentity(cmdline.disk)}), refuge at LBA ${cmdline.refuge.startLba}`,
        );
        return { device, cmdline, header, headerBytes, journalOffsetBytes };
      } catch (error) {
        if (device === o.hint) {
          o.log.warn(
            `${device} has no refuge header at LBA ${cmdline.refuge.startLba + JOURNAL_SIZE_BYTES / SECTOR_BYTES}: ${isReimageError(error) ? error.message : String(error)}`,
          );
        }
      } finally {
        await handle.close();
      }
    }
    if (Date.now() >= deadline) break;
    await sleep(1000);
  }
  throw new ReimageError(
    'REIMAGE_ARMED_DISK_NOT_FOUND',
    `No disk holds a refuge for ${formatDiskIdentity(cmdline.disk)} at LBA ${cmdline.refuge.startLba} (disks seen: ${(await candidateDisks(o.hint)).join(', ') || 'none'}). Nothing was done; the machine stays here rather than boot this recovery path again: check the disk's cabling or driver, then power-cycle.`,
    { evidence: { disk: formatDiskIdentity(cmdline.disk), refugeLba: cmdline.refuge.startLba } },
  );
}
