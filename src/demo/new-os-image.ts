import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../core/run-command.ts';
import { sha256File } from '../image/sha256-file.ts';
import type { DebianKernel } from './debian-kernel.ts';
import { kioskCmdlineParameter } from './demo-initrd.ts';
import {
  kioskDataLabel,
  kioskDataPartition,
  newAccounts,
  newImageLayout,
  newOsVersion,
  newRootLabel,
  newRootPartition,
} from './demo-layout.ts';
import { populateBusyboxRoot, putDir, putFile, randomMachineId } from './demo-root.ts';
import { createPartitionedImage, extentOf, formatExt4InImage } from './disk-image.ts';
import { installGrubBios } from './grub-bios.ts';

export interface NewOsImage {
  /** The compressed image (zstd). */
  readonly imagePath: string;
  readonly bmapPath: string;
  /** SHA-256 of the compressed file, as `sha256sum new-os.img.zst` prints it. */
  readonly sha256: string;
  /** SHA-256 and size of the raw disk image it decompresses to. */
  readonly rawSha256: string;
  readonly rawSizeBytes: number;
  readonly machineId: string;
}

/** The kernel command line both demo OSes boot with, for a root and data partition by label. */
export function demoCmdline(rootLabel: string): string {
  return `root=LABEL=${rootLabel} ${kioskCmdlineParameter}=LABEL=${kioskDataLabel} console=ttyS0,115200 panic=10`;
}

/**
 * Builds the new OS disk image: msdos table, root on p2 (busybox OS 2.0 with its own account
 * database, Debian kernel, demo initrd, grub.cfg), kiosk data on p6, GRUB for BIOS in the MBR
 * gap; then its block map (bmaptool) and a `zstd -19` copy. The raw image is removed.
 */
export async function buildNewOsImage(o: {
  workDir: string;
  outDir: string;
  kernel: DebianKernel;
  initrdPath: string;
  reportPaths: readonly string[];
  signal?: AbortSignal;
}): Promise<NewOsImage> {
  const rootDir = join(o.workDir, 'new-root');
  const dataDir = join(o.workDir, 'new-kiosk-data');
  const machineId = randomMachineId();
  const rawPath = join(o.workDir, 'new-os.img');
  try {
    await populateBusyboxRoot(rootDir, {
      osVersion: newOsVersion,
      prettyName: `Demo Kiosk OS ${newOsVersion}`,
      hostname: 'demo-kiosk',
      machineId,
      accounts: newAccounts,
      kernel: o.kernel,
      initrdPath: o.initrdPath,
      cmdline: demoCmdline(newRootLabel),
      reportPaths: o.reportPaths,
    });
    // The new OS ships the directories its packages own; the retained state arrives by restore.
    for (const dir of ['etc/ssh', 'etc/pki/tls/certs', 'var/lib']) await putDir(rootDir, dir, { mode: 0o755 });
    await putDir(dataDir, '.', { mode: 0o755 });
    await putFile(dataDir, 'README', 'Kiosk data partition of Demo Kiosk OS 2.0.\n', { mode: 0o644 });

    const extents = await createPartitionedImage(rawPath, newImageLayout, o.signal);
    await formatExt4InImage(rawPath, extentOf(extents, newRootPartition, rawPath), {
      label: newRootLabel,
      sourceDir: rootDir,
      signal: o.signal,
    });
    await formatExt4InImage(rawPath, extentOf(extents, kioskDataPartition, rawPath), {
      label: kioskDataLabel,
      sourceDir: dataDir,
      signal: o.signal,
    });
    await installGrubBios(rawPath, { bootPartition: newRootPartition, workDir: o.workDir, signal: o.signal });

    const bmapPath = join(o.outDir, 'new-os.img.bmap');
    const imagePath = join(o.outDir, 'new-os.img.zst');
    await runCommand('bmaptool', ['-q', 'create', '-o', bmapPath, rawPath], { signal: o.signal });
    await runCommand('zstd', ['-q', '-f', '-19', '-T0', rawPath, '-o', imagePath], { signal: o.signal });
    const rawSha256 = await sha256File(rawPath, { signal: o.signal });
    const rawSizeBytes = (await stat(rawPath)).size;
    return {
      imagePath,
      bmapPath,
      sha256: await sha256File(imagePath, { signal: o.signal }),
      rawSha256,
      rawSizeBytes,
      machineId,
    };
  } finally {
    await rm(rawPath, { force: true });
    await rm(rootDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}
