import { quoteInput } from '../core/quote-input.ts';
import { ReimageError } from '../core/reimage-error.ts';
import type { DiskIdentity } from '../disk/index.ts';
import { formatSectorRanges, type SectorRange } from './grub-blocklist.ts';
import { DISK_CMDLINE_PARAMETER, formatDiskIdentity, REFUGE_CMDLINE_PARAMETER } from './recovery-config.ts';
import type { RefugeExtent } from './refuge-extent.ts';
import { REFUGE_BLOCK_BYTES, REFUGE_HEAD_BYTES } from './refuge-layout.ts';

/** What the recovery boot passes the initramfs: where the journal and header lie, and which disk. */
export interface RecoveryCmdline {
  /** The journal and the header, one run of REFUGE_HEAD_BYTES on a 4096-byte boundary. */
  readonly refuge: SectorRange;
  readonly disk: DiskIdentity;
}

const SECTOR_BYTES = 512;
const HEAD_SECTORS = REFUGE_HEAD_BYTES / SECTOR_BYTES;
const BLOCK_SECTORS = REFUGE_BLOCK_BYTES / SECTOR_BYTES;

/** A value from the command line in a message: quoted, control characters escaped, cut short. */
function shown(name: string, value: string): string {
  return quoteInput(`${name}=${value.length > 80 ? `${value.slice(0, 80)}…` : value}`);
}

function invalid(what: string, evidence: Record<string, string | number>): ReimageError {
  return new ReimageError(
    'REIMAGE_BOOT_CMDLINE_INVALID',
    `The kernel command line's recovery arguments are not usable: ${what}. The recovery boot path was changed or damaged; run reimage disarm from a rescue system to boot the old OS, and arm again.`,
    { evidence },
  );
}

/** The sector range `reimage.refuge=` names: the layout's journal and the header after it. */
export function refugeSectorRange(journal: RefugeExtent): SectorRange {
  if (!Number.isSafeInteger(journal.diskOffsetBytes) || journal.diskOffsetBytes % REFUGE_BLOCK_BYTES !== 0) {
    throw invalid(`the journal starts at byte ${journal.diskOffsetBytes}, not on a 4096-byte boundary`, {
      field: 'journal.diskOffsetBytes',
      actual: journal.diskOffsetBytes,
    });
  }
  return { startLba: journal.diskOffsetBytes / SECTOR_BYTES, sectorCount: HEAD_SECTORS };
}

/**
 * The two kernel arguments, as recovery-config's recoveryKernelArguments writes them (the same
 * formatters), for a caller that builds a command line itself and for the round-trip test.
 */
export function formatRecoveryCmdline(cmdline: RecoveryCmdline): string[] {
  checkRefugeRange(cmdline.refuge, `${cmdline.refuge.startLba}+${cmdline.refuge.sectorCount}`);
  return [
    `${REFUGE_CMDLINE_PARAMETER}=${formatSectorRanges([cmdline.refuge], 'refuge')}`,
    `${DISK_CMDLINE_PARAMETER}=${formatDiskIdentity(cmdline.disk)}`,
  ];
}

/**
 * The kernel's own splitting (lib/cmdline.c next_arg): arguments are separated by whitespace,
 * and double quotes group spaces into one argument and are removed. A pair of single quotes
 * around a whole argument is removed too: GRUB's config quotes each argument so, and a boot
 * loader that passed them through would leave them on /proc/cmdline.
 */
function splitArguments(cmdline: string): string[] {
  const args: string[] = [];
  let current = '';
  let started = false;
  let quoted = false;
  for (const char of cmdline) {
    if (char === '"') {
      quoted = !quoted;
      started = true;
    } else if (!quoted && /\s/.test(char)) {
      if (started) args.push(current);
      current = '';
      started = false;
    } else {
      current += char;
      started = true;
    }
  }
  if (started) args.push(current);
  return args.map((arg) => (arg.length >= 2 && arg.startsWith("'") && arg.endsWith("'") ? arg.slice(1, -1) : arg));
}

function checkRefugeRange(range: SectorRange, text: string): void {
  if (range.sectorCount !== HEAD_SECTORS) {
    throw invalid(
      `${REFUGE_CMDLINE_PARAMETER}=${text} names ${range.sectorCount} sectors, not the ${HEAD_SECTORS} of the journal and header`,
      {
        field: REFUGE_CMDLINE_PARAMETER,
        expected: HEAD_SECTORS,
        actual: range.sectorCount,
      },
    );
  }
  if (!Number.isSafeInteger(range.startLba) || range.startLba < 0 || range.startLba % BLOCK_SECTORS !== 0) {
    throw invalid(`${shown(REFUGE_CMDLINE_PARAMETER, text)} does not start on a 4096-byte boundary`, {
      field: REFUGE_CMDLINE_PARAMETER,
      actual: text,
    });
  }
  if (!Number.isSafeInteger((range.startLba + range.sectorCount) * SECTOR_BYTES)) {
    throw invalid(`${shown(REFUGE_CMDLINE_PARAMETER, text)} lies beyond exact byte offsets`, {
      field: REFUGE_CMDLINE_PARAMETER,
      actual: text,
    });
  }
}

function parseRefuge(value: string): SectorRange {
  const match = /^(0|[1-9][0-9]{0,17})\+([1-9][0-9]{0,17})$/.exec(value);
  if (match?.[1] === undefined || match[2] === undefined) {
    throw invalid(`${shown(REFUGE_CMDLINE_PARAMETER, value)} is not START+COUNT in decimal sectors`, {
      field: REFUGE_CMDLINE_PARAMETER,
      expected: 'START+COUNT',
      actual: value,
    });
  }
  const range = { startLba: Number(match[1]), sectorCount: Number(match[2]) };
  checkRefugeRange(range, value);
  return range;
}

function parseDisk(value: string): DiskIdentity {
  const msdos = /^msdos:([0-9a-fA-F]{8})$/.exec(value);
  if (msdos?.[1] !== undefined) return { scheme: 'msdos', signature: Number.parseInt(msdos[1], 16) };
  const gpt = /^gpt:([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/.exec(value);
  if (gpt?.[1] !== undefined) return { scheme: 'gpt', diskGuid: gpt[1].toLowerCase() };
  throw invalid(`${shown(DISK_CMDLINE_PARAMETER, value)} is neither msdos:<8 hex digits> nor gpt:<GUID>`, {
    field: DISK_CMDLINE_PARAMETER,
    expected: 'msdos:1a2b3c4d or gpt:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx',
    actual: value,
  });
}

/** The one value of `name`, undefined if absent; two different values are refused. */
function argumentValue(args: readonly string[], name: string): string | undefined {
  const values = new Set(args.filter((arg) => arg.startsWith(`${name}=`)).map((arg) => arg.slice(name.length + 1)));
  if (values.size > 1) {
    throw invalid(`${name} is given ${values.size} different values`, {
      field: name,
      actual: [...values].map((value) => shown(name, value)).join(' '),
    });
  }
  return values.values().next().value;
}

/**
 * The recovery arguments from a kernel command line (/proc/cmdline text). Other arguments
 * (BOOT_IMAGE=, console=, quoted ones) are ignored. Returns undefined when neither argument is
 * there: not a recovery boot (the plain run's initramfs). Throws REIMAGE_BOOT_CMDLINE_INVALID when
 * one is there but not usable (only one of the two, a malformed value, a range that is not the
 * journal and header's, two different values): a recovery boot that must not guess.
 */
export function parseRecoveryCmdline(cmdline: string): RecoveryCmdline | undefined {
  const args = splitArguments(cmdline);
  const refuge = argumentValue(args, REFUGE_CMDLINE_PARAMETER);
  const disk = argumentValue(args, DISK_CMDLINE_PARAMETER);
  if (refuge === undefined && disk === undefined) return undefined;
  if (refuge === undefined || disk === undefined) {
    const [has, lacks] =
      refuge === undefined
        ? [DISK_CMDLINE_PARAMETER, REFUGE_CMDLINE_PARAMETER]
        : [REFUGE_CMDLINE_PARAMETER, DISK_CMDLINE_PARAMETER];
    throw invalid(`it has ${has}= but no ${lacks}=`, { field: lacks, expected: 'present', actual: 'absent' });
  }
  return { refuge: parseRefuge(refuge), disk: parseDisk(disk) };
}
