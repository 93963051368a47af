import { ReimageError } from '../core/reimage-error.ts';
import type { DiskIdentity } from '../disk/index.ts';
import {
  checkSectorRanges,
  formatSectorRanges,
  grubBlocklist,
  mergeAdjacentRanges,
  type SectorRange,
} from './grub-blocklist.ts';

/** How the recovery initramfs recognises its disk: never by a device name alone (issue 9). */
export type RecoveryDiskIdentity = DiskIdentity;

export interface RecoveryConfigInput {
  /** One contiguous range (adjacent ranges are joined): see kernelBlocklist. */
  readonly kernel: readonly SectorRange[];
  /** Any number of fragments, in file order. */
  readonly initramfs: readonly SectorRange[];
  /** Where the refuge lies; passed to the initramfs so it never searches the disk. */
  readonly refuge: readonly SectorRange[];
  readonly disk: RecoveryDiskIdentity;
  /** Arguments before reimage's own (default: both consoles, the serial one last, so it is /dev/console). */
  readonly kernelArguments?: readonly string[];
  /** GRUB's name of the disk the ranges are on (default `(hd0)`, the BIOS boot disk). */
  readonly device?: string;
}

export const REFUGE_CMDLINE_PARAMETER = 'reimage.refuge';
export const DISK_CMDLINE_PARAMETER = 'reimage.disk';
export const DEFAULT_KERNEL_ARGUMENTS: readonly string[] = ['console=tty0', 'console=ttyS0,115200', 'panic=-1'];

/** Linux x86's COMMAND_LINE_SIZE is 2048 bytes with the closing NUL; a longer line is cut silently. */
export const MAX_KERNEL_CMDLINE_BYTES = 2047;

/**
 * Kernel arguments are quoted with single quotes, inside which GRUB expands nothing; a quote or a
 * control character could not be carried, and a space would split one argument into two on the
 * kernel's side, so arguments are limited to this set instead of escaped.
 */
const SAFE_ARGUMENT = /^[A-Za-z0-9_.,:=+/@%-]+$/;

/** `msdos:1a2b3c4d` (the 32-bit disk signature at LBA 0 offset 440, 8 hex digits) or `gpt:<disk GUID>`. */
export function formatDiskIdentity(disk: RecoveryDiskIdentity): string {
  if (disk.scheme === 'msdos') {
    if (!Number.isInteger(disk.signature) || disk.signature < 0 || disk.signature > 0xffffffff) {
      throw new ReimageError(
        'REIMAGE_BOOT_CMDLINE_INVALID',
        `${disk.signature} is not a 32-bit msdos disk signature.`,
        {
          evidence: { field: 'disk.signature', actual: disk.signature },
        },
      );
    }
    return `msdos:${disk.signature.toString(16).padStart(8, '0')}`;
  }
  const guid = disk.diskGuid.toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(guid)) {
    throw new ReimageError('REIMAGE_BOOT_CMDLINE_INVALID', `"${disk.diskGuid}" is not a GPT disk GUID.`, {
      evidence: { field: 'disk.diskGuid', expected: 'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx', actual: disk.diskGuid },
    });
  }
  return `gpt:${guid}`;
}

/** The kernel command line the recovery boot passes (without GRUB's own BOOT_IMAGE=). */
export function recoveryKernelArguments(input: RecoveryConfigInput): string[] {
  const args = [
    ...(input.kernelArguments ?? DEFAULT_KERNEL_ARGUMENTS),
    `${REFUGE_CMDLINE_PARAMETER}=${formatSectorRanges(input.refuge, 'refuge')}`,
    `${DISK_CMDLINE_PARAMETER}=${formatDiskIdentity(input.disk)}`,
  ];
  for (const arg of args) {
    if (!SAFE_ARGUMENT.test(arg)) {
      throw new ReimageError(
        'REIMAGE_BOOT_CMDLINE_INVALID',
        `The kernel argument "${arg}" has a character the recovery boot cannot carry (only letters, digits and _.,:=+/@%- are allowed).`,
        { evidence: { field: 'kernelArguments', actual: arg } },
      );
    }
  }
  // GRUB adds "BOOT_IMAGE=<blocklist> " in front; count it too.
  const cmdlineBytes = Buffer.byteLength(`BOOT_IMAGE=${kernelBlocklist(input)} ${args.join(' ')}`);
  if (cmdlineBytes > MAX_KERNEL_CMDLINE_BYTES) {
    throw new ReimageError(
      'REIMAGE_BOOT_CMDLINE_INVALID',
      `The recovery kernel command line would be ${cmdlineBytes} bytes; Linux keeps only ${MAX_KERNEL_CMDLINE_BYTES}. The refuge has too many fragments: reserve it again in fewer, larger extents.`,
      { evidence: { field: 'cmdline', expected: `≤ ${MAX_KERNEL_CMDLINE_BYTES}`, actual: cmdlineBytes } },
    );
  }
  return args;
}

/**
 * The kernel's blocklist, refused unless it is one contiguous range. GRUB 2.06's blocklist reader
 * (kern/fs.c, grub_fs_blocklist_read) miscounts its position after the end of a fragment, so a
 * read that crosses from one fragment into the next fails ("premature end of file"; seen under
 * QEMU with Debian's 2.06-13). The Linux loader reads the kernel in one piece, so the kernel must
 * not be split; the refuge places it inside one extent.
 */
export function kernelBlocklist(input: Pick<RecoveryConfigInput, 'kernel' | 'device'>): string {
  checkSectorRanges(input.kernel, 'kernel');
  const merged = mergeAdjacentRanges(input.kernel);
  if (merged.length !== 1) {
    throw new ReimageError(
      'REIMAGE_BOOT_RANGES_INVALID',
      `The kernel lies in ${merged.length} separate ranges; GRUB's blocklist reader cannot read one file across fragments, so the recovery kernel must lie in one contiguous range. Place it inside one extent of the refuge.`,
      { evidence: { field: 'kernel', expected: '1 range', actual: merged.length } },
    );
  }
  return grubBlocklist(merged, { ...deviceOption(input), what: 'kernel' });
}

/**
 * The initramfs as one blocklist *file* per fragment: `initrd` concatenates its files in order
 * into one buffer, and each fragment is whole sectors (a multiple of GRUB's 4-byte alignment
 * between files), so the kernel receives the initramfs bytes unchanged, followed by the zero
 * padding of its last sector. Each file is read within one fragment, away from GRUB's bug above.
 */
export function initramfsBlocklists(input: Pick<RecoveryConfigInput, 'initramfs' | 'device'>): string[] {
  checkSectorRanges(input.initramfs, 'initramfs');
  return mergeAdjacentRanges(input.initramfs).map((range, index) =>
    grubBlocklist([range], { ...deviceOption(input), what: `initramfs fragment ${index}` }),
  );
}

function deviceOption(input: Pick<RecoveryConfigInput, 'device'>): { device?: string } {
  return input.device === undefined ? {} : { device: input.device };
}

/** A line that says on the console that the recovery boot path did not get as far as the kernel. */
export const RECOVERY_BOOT_FAILED_LINE = 'reimage: the recovery boot path could not start its kernel';

/**
 * The grub.cfg embedded in the recovery core.img. Without the `normal` module GRUB runs it with
 * its rescue parser, line by line: no `if`, no menu, quotes and `$` as in a shell. Every line is
 * a plain command, every kernel argument single-quoted (validated above, so nothing needs
 * escaping), and the blocklists contain only digits, `+`, `,` and the device.
 */
export function recoveryGrubConfig(input: RecoveryConfigInput): string {
  const args = recoveryKernelArguments(input);
  return [
    'serial --unit=0 --speed=115200',
    'terminal_input serial console',
    'terminal_output serial console',
    "echo 'reimage: recovery boot path'",
    `linux ${kernelBlocklist(input)} ${args.map((arg) => `'${arg}'`).join(' ')}`,
    `initrd ${initramfsBlocklists(input).join(' ')}`,
    'boot',
    // Reached only when a line above failed (GRUB printed why just before).
    `echo '${RECOVERY_BOOT_FAILED_LINE}'`,
    '',
  ].join('\n');
}
