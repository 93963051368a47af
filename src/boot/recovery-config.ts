import { ReimageError } from '../core/reimage-error.ts';
import { formatSectorRanges, grubBlocklist, type SectorRange } from './grub-blocklist.ts';

/** How the recovery initramfs recognises its disk: never by a device name alone (issue 9). */
export type RecoveryDiskIdentity =
  | { readonly scheme: 'msdos'; readonly signature: number }
  | { readonly scheme: 'gpt'; readonly diskGuid: string };

export interface RecoveryConfigInput {
  readonly kernel: readonly SectorRange[];
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
  const cmdlineBytes = Buffer.byteLength(
    `BOOT_IMAGE=${grubBlocklist(input.kernel, { ...deviceOption(input), what: 'kernel' })} ${args.join(' ')}`,
  );
  if (cmdlineBytes > MAX_KERNEL_CMDLINE_BYTES) {
    throw new ReimageError(
      'REIMAGE_BOOT_CMDLINE_INVALID',
      `The recovery kernel command line would be ${cmdlineBytes} bytes; Linux keeps only ${MAX_KERNEL_CMDLINE_BYTES}. The refuge or the kernel has too many fragments: defragment or reserve it again.`,
      { evidence: { field: 'cmdline', expected: `≤ ${MAX_KERNEL_CMDLINE_BYTES}`, actual: cmdlineBytes } },
    );
  }
  return args;
}

function deviceOption(input: RecoveryConfigInput): { device?: string } {
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
  const device = deviceOption(input);
  return [
    'serial --unit=0 --speed=115200',
    'terminal_input serial console',
    'terminal_output serial console',
    "echo 'reimage: recovery boot path'",
    `linux ${grubBlocklist(input.kernel, { ...device, what: 'kernel' })} ${args.map((arg) => `'${arg}'`).join(' ')}`,
    `initrd ${grubBlocklist(input.initramfs, { ...device, what: 'initramfs' })}`,
    'boot',
    // Reached only when a line above failed (GRUB printed why just before).
    `echo '${RECOVERY_BOOT_FAILED_LINE}'`,
    '',
  ].join('\n');
}
