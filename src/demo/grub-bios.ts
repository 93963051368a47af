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
import { gptBiosBootType } from './demo-layout.ts';
import { type PartitionExtent, readPartitionLayout } from './disk-image.ts';

// The sector layout of boot.img and core.img is the recovery boot path's (src/boot/); the demo
// only places GRUB (at LBA 1 on msdos, in the BIOS boot partition on GPT) with its own modules
// and prefix.
const grubI386PcDir = GRUB_I386_PC_DIR;
const sectorBytes = GRUB_SECTOR_BYTES;

/**
 * Modules built into core.img after biosdisk and the partition map (part_msdos or part_gpt, for
 * the disk's table), so the disk boots with nothing loaded from the filesystem.
 */
const coreModules = [
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
  /** The partition number holding /boot/grub (GRUB's prefix is `(hd0,msdosN)` or `(hd0,gptN)` + `/boot/grub`). */
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
 * after it (msdos: from sector 1) or into the BIOS boot partition (GPT: sectors 1–33 hold the
 * table), with boot.img pointing at core.img and core.img's blocklist at its own second sector.
 * This is what `grub-bios-setup` does; it cannot run here because this host's kernel does not
 * parse partition tables (docs/adr/0401-grub-placed-by-hand.md).
 */
export async function installGrubBios(
  imagePath: string,
  options: InstallGrubOptions,
): Promise<{ coreLba: number; coreSectors: number }> {
  const bootImage = await readGrubBootImage();
  const layout = await readPartitionLayout(imagePath, options.signal);
  const corePath = join(options.workDir, 'core.img');
  await runCommand(
    'grub-mkimage',
    [
      '-O',
      'i386-pc',
      '-o',
      corePath,
      '-p',
      `(hd0,${layout.table}${options.bootPartition})/boot/grub`,
      '-d',
      grubI386PcDir,
      'biosdisk',
      `part_${layout.table}`,
      ...coreModules,
    ],
    { signal: options.signal },
  );
  const core = await readFile(corePath);
  const coreSectors = Math.ceil(core.length / sectorBytes);
  const image = await open(imagePath, 'r+');
  try {
    const mbr = Buffer.alloc(sectorBytes);
    await image.read(mbr, 0, sectorBytes, 0);
    const room = layout.table === 'gpt' ? biosBootPartitionRoom(layout.partitions, imagePath) : msdosGapRoom(mbr);
    if (coreSectors > room.sectors) {
      throw new ReimageError(
        'REIMAGE_DEMO_GRUB_NO_ROOM',
        `GRUB's core.img (${coreSectors} sectors) does not fit ${room.where} (${room.sectors} sectors) of ${imagePath}. Make that room larger or embed fewer modules.`,
        { evidence: { path: imagePath, expected: `<= ${room.sectors} sectors`, actual: coreSectors } },
      );
    }
    const padded = patchCoreBlocklist(core, room.startLba);
    await image.write(padded, 0, padded.length, room.startLba * sectorBytes);
    await image.write(patchBootSector(mbr, bootImage, room.startLba), 0, sectorBytes, 0);
    await image.sync();
    return { coreLba: room.startLba, coreSectors };
  } finally {
    await image.close();
  }
}

interface CoreRoom {
  readonly startLba: number;
  readonly sectors: number;
  readonly where: string;
}

/** msdos: from LBA 1 up to the first partition (the post-MBR gap). */
function msdosGapRoom(mbr: Buffer): CoreRoom {
  const firstPartitionLba = firstPartitionStartLba(mbr);
  return {
    startLba: 1,
    sectors: firstPartitionLba - 1,
    where: `before the first partition (sector ${firstPartitionLba})`,
  };
}

/** GPT: the whole BIOS boot partition, which exists for nothing else (grub-install's choice too). */
function biosBootPartitionRoom(partitions: readonly PartitionExtent[], imagePath: string): CoreRoom {
  const biosBoot = partitions.find((p) => p.type.toUpperCase() === gptBiosBootType);
  if (biosBoot === undefined) {
    throw new ReimageError(
      'REIMAGE_DEMO_GRUB_NO_ROOM',
      `The GPT disk image ${imagePath} has no BIOS boot partition (type ${gptBiosBootType}) for GRUB's core.img. Add one to its layout.`,
      { evidence: { path: imagePath, expected: gptBiosBootType, actual: partitions.map((p) => p.type).join(',') } },
    );
  }
  return {
    startLba: biosBoot.offsetBytes / sectorBytes,
    sectors: biosBoot.sizeBytes / sectorBytes,
    where: `the BIOS boot partition ${biosBoot.number}`,
  };
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
