import { cp, mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BOOT_KERNEL_SECTOR_OFFSET,
  GRUB_I386_PC_DIR,
  GRUB_SECTOR_BYTES,
  patchBootSector,
  patchCoreBlocklist,
  readGrubBootImage,
} from '../boot/index.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';

// The sector layout of boot.img and core.img is the recovery boot path's (src/boot/); the demo
// only places GRUB at LBA 1 with its own modules and prefix.
const grubI386PcDir = GRUB_I386_PC_DIR;
const sectorBytes = GRUB_SECTOR_BYTES;

/** Modules built into core.img, so the disk boots with nothing loaded from the filesystem. */
const coreModules = [
  'biosdisk',
  'part_msdos',
  'ext2',
  'normal',
  'configfile',
  'linux',
  'echo',
  'serial',
  'terminal',
  'test',
  'search',
  'search_label',
  'sleep',
];

export interface InstallGrubOptions {
  /** The msdos partition number holding /boot/grub (GRUB's prefix is `(hd0,msdosN)/boot/grub`). */
  readonly bootPartition: number;
  /** A scratch directory for core.img. */
  readonly workDir: string;
  readonly signal?: AbortSignal;
}

/** A grub.cfg that shows everything on the serial console and boots one entry at once. */
export function serialGrubConfig(o: {
  title: string;
  kernelPath: string;
  initrdPath: string;
  cmdline: string;
}): string {
  return [
    'serial --unit=0 --speed=115200',
    'terminal_input serial console',
    'terminal_output serial console',
    'set timeout=0',
    `menuentry '${o.title}' {`,
    `  echo 'Loading ${o.title} ...'`,
    `  linux ${o.kernelPath} ${o.cmdline}`,
    `  initrd ${o.initrdPath}`,
    '}',
    '',
  ].join('\n');
}

/** Copies GRUB's i386-pc modules into a root tree's /boot/grub, so `insmod` works at the GRUB prompt. */
export async function copyGrubModules(rootDir: string): Promise<void> {
  const target = join(rootDir, 'boot', 'grub', 'i386-pc');
  await mkdir(target, { recursive: true });
  await cp(grubI386PcDir, target, {
    recursive: true,
    filter: (source) => !/\.(img|image|exec|module)$/.test(source) || source === grubI386PcDir,
  });
}

/**
 * Installs GRUB for BIOS into a disk image file, without a loop device: boot.img goes into
 * sector 0 (bytes 0–439; the disk signature and partition table stay), core.img into the gap
 * after it (from sector 1), with boot.img pointing at core.img and core.img's blocklist at its
 * own second sector. This is what `grub-bios-setup` does; it cannot run here because this host's
 * kernel does not parse partition tables (docs/adr/0401-grub-placed-by-hand.md).
 */
export async function installGrubBios(
  imagePath: string,
  options: InstallGrubOptions,
): Promise<{ coreSectors: number }> {
  const bootImage = await readGrubBootImage();
  const corePath = join(options.workDir, 'core.img');
  await runCommand(
    'grub-mkimage',
    [
      '-O',
      'i386-pc',
      '-o',
      corePath,
      '-p',
      `(hd0,msdos${options.bootPartition})/boot/grub`,
      '-d',
      grubI386PcDir,
      ...coreModules,
    ],
    { signal: options.signal },
  );
  const core = await readFile(corePath);
  const coreLba = 1;
  const coreSectors = Math.ceil(core.length / sectorBytes);
  const image = await open(imagePath, 'r+');
  try {
    const mbr = Buffer.alloc(sectorBytes);
    await image.read(mbr, 0, sectorBytes, 0);
    const firstPartitionLba = firstPartitionStartLba(mbr);
    if (coreLba + coreSectors > firstPartitionLba) {
      throw new ReimageError(
        'REIMAGE_DEMO_GRUB_NO_ROOM',
        `GRUB's core.img (${coreSectors} sectors) does not fit before the first partition (sector ${firstPartitionLba}) of ${imagePath}. Start the first partition later or embed fewer modules.`,
        { evidence: { path: imagePath, expected: `< ${firstPartitionLba} sectors`, actual: coreSectors + coreLba } },
      );
    }
    const padded = patchCoreBlocklist(core, coreLba);
    await image.write(padded, 0, padded.length, coreLba * sectorBytes);
    await image.write(patchBootSector(mbr, bootImage, coreLba), 0, sectorBytes, 0);
    await image.sync();
  } finally {
    await image.close();
  }
  return { coreSectors };
}

/** The lowest start LBA among the four primary entries of an MBR (the gap GRUB may use ends there). */
function firstPartitionStartLba(mbr: Buffer): number {
  let lowest = Number.POSITIVE_INFINITY;
  for (let index = 0; index < 4; index += 1) {
    const entryOffset = 446 + index * 16;
    const type = mbr.readUInt8(entryOffset + 4);
    const startLba = mbr.readUInt32LE(entryOffset + 8);
    if (type !== 0 && startLba > 0) lowest = Math.min(lowest, startLba);
  }
  return lowest;
}

/** True when sector 0 of a disk image holds GRUB's boot.img (used by tests and checks). */
export async function hasGrubBootSector(imagePath: string): Promise<boolean> {
  const bootImage = await readGrubBootImage();
  const { size } = await stat(imagePath);
  if (size < sectorBytes) return false;
  const image = await open(imagePath, 'r');
  try {
    const mbr = Buffer.alloc(sectorBytes);
    await image.read(mbr, 0, sectorBytes, 0);
    // Compare the code before the patched kernel-sector field; the rest is the disk's.
    return mbr.subarray(0, BOOT_KERNEL_SECTOR_OFFSET).equals(bootImage.subarray(0, BOOT_KERNEL_SECTOR_OFFSET));
  } finally {
    await image.close();
  }
}
