import { open, readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  decodeRefugeHeader,
  formatDiskIdentity,
  parseRecoveryCmdline,
  REFUGE_HEADER_BYTES,
  type RecoveryCmdline,
  type RefugeHeader,
} from '../boot/index.ts';
import type { Logger } from '../core/logger.ts';
import { isReimageError, ReimageError } from '../core/reimage-error.ts';
import { type DiskIdentity, parsePartitionTable, readAt, TABLE_HEAD_BYTES } from '../disk/index.ts';

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

/** The disk identity of a block device from its first sectors, or undefined (no table, unreadable). */
async function identityOf(device: string): Promise<DiskIdentity | undefined> {
  try {
    const handle = await open(device, 'r');
    try {
      const sizeBytes =
        Number((await readFile(`/sys/class/block/${device.slice('/dev/'.length)}/size`, 'utf8')).trim()) * SECTOR_BYTES;
      const head = Buffer.alloc(Math.min(TABLE_HEAD_BYTES, sizeBytes));
      await readAt(handle, head, 0);
      return parsePartitionTable(head, sizeBytes).identity;
    } finally {
      await handle.close();
    }
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
 * whose msdos signature or GPT disk GUID is `reimage.disk`, never a device name alone, and whose
 * sectors `reimage.refuge` hold a refuge header naming that same identity. No search of the disk:
 * only the named sectors of each candidate are read. Waits for disks to appear (up to timeoutMs).
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
  const seen = new Set<string>();
  for (;;) {
    for (const device of await candidateDisks(o.hint)) {
      const identity = await identityOf(device);
      if (identity === undefined || !sameIdentity(identity, cmdline.disk)) continue;
      seen.add(device);
      const handle = await open(device, 'r');
      try {
        const headerBytes = Buffer.alloc(REFUGE_HEADER_BYTES);
        await readAt(handle, headerBytes, journalOffsetBytes + 8192);
        const header = decodeRefugeHeader(headerBytes);
        if (!sameIdentity(header.disk, cmdline.disk)) continue;
        o.log.info(
          `armed disk: ${device} (${formatDiskIdentity(cmdline.disk)}), refuge at LBA ${cmdline.refuge.startLba}`,
        );
        return { device, cmdline, header, headerBytes, journalOffsetBytes };
      } catch (error) {
        o.log.warn(
          `${device} has the armed disk's identity but no refuge header at LBA ${cmdline.refuge.startLba + 16}: ${isReimageError(error) ? error.message : String(error)}`,
        );
      } finally {
        await handle.close();
      }
    }
    if (Date.now() >= deadline) break;
    await sleep(1000);
  }
  throw new ReimageError(
    'REIMAGE_ARMED_DISK_NOT_FOUND',
    `No disk with the identity ${formatDiskIdentity(cmdline.disk)} and a refuge at LBA ${cmdline.refuge.startLba} appeared${seen.size > 0 ? ` (seen with that identity but no readable refuge: ${[...seen].join(', ')})` : ''}. Nothing was changed; the machine boots this recovery path again until the disk is found or disarmed.`,
    { evidence: { disk: formatDiskIdentity(cmdline.disk), refugeLba: cmdline.refuge.startLba } },
  );
}
