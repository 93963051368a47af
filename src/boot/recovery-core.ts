import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { GRUB_I386_PC_DIR } from './grub-boot-sector.ts';

/**
 * The modules built into the recovery core.img: the BIOS disk driver, the Linux loader and boot,
 * and the serial console. No filesystem, no partition map, no `normal`: the embedded config names
 * sector ranges on the whole disk, so nothing on the disk has to be readable as a filesystem.
 * `echo` tells the console where the boot is; `halt` is for marker boots.
 */
export const RECOVERY_CORE_MODULES: readonly string[] = [
  'biosdisk',
  'linux',
  'boot',
  'echo',
  'serial',
  'terminal',
  'halt',
];

export interface BuildRecoveryCoreOptions {
  /** The grub.cfg embedded in core.img (see recoveryGrubConfig). */
  readonly config: string;
  /** A scratch directory (a temporary one under it is made and removed). */
  readonly workDir: string;
  /** GRUB's i386-pc directory (default Debian's grub-pc-bin). */
  readonly grubDir?: string;
  readonly modules?: readonly string[];
  readonly signal?: AbortSignal;
}

/** GRUB's boot.img, the 512-byte boot sector that loads core.img's first sector. */
export async function readGrubBootImage(grubDir: string = GRUB_I386_PC_DIR): Promise<Buffer> {
  const path = join(grubDir, 'boot.img');
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw new ReimageError(
      'REIMAGE_TOOL_MISSING',
      `GRUB's BIOS boot image ${path} is missing: the recovery boot path is built from GRUB's i386-pc files. Install the Debian package grub-pc-bin (or run reimage from its portable runtime, which carries them; REIMAGE_GRUB_DIR names another directory), then try again.`,
      { evidence: { path }, cause: error },
    );
  }
}

/**
 * Builds the recovery core.img with `grub-mkimage`. Its prefix is `(hd0)`, the BIOS boot disk, so
 * GRUB never looks for a /boot/grub; the returned image is not yet patched for its LBA
 * (patchCoreBlocklist does that).
 */
export async function buildRecoveryCore(options: BuildRecoveryCoreOptions): Promise<Buffer> {
  const grubDir = options.grubDir ?? GRUB_I386_PC_DIR;
  const scratch = await mkdtemp(join(options.workDir, 'recovery-core-'));
  try {
    const configPath = join(scratch, 'embed.cfg');
    const corePath = join(scratch, 'core.img');
    await writeFile(configPath, options.config);
    await runCommand(
      'grub-mkimage',
      [
        '-O',
        'i386-pc',
        '-d',
        grubDir,
        '-c',
        configPath,
        '-p',
        '(hd0)',
        '-o',
        corePath,
        ...(options.modules ?? RECOVERY_CORE_MODULES),
      ],
      options.signal === undefined ? {} : { signal: options.signal },
    );
    return await readFile(corePath);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
