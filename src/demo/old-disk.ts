import { copyFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DebianKernel } from './debian-kernel.ts';
import {
  kioskDataLabel,
  kioskDataPartition,
  newImageBmapFilePath,
  newImageFilePath,
  oldAccounts,
  oldDiskLayout,
  oldGptDiskLayout,
  oldOsVersion,
  oldRootLabel,
  oldRootPartition,
} from './demo-layout.ts';
import { inTree, populateBusyboxRoot, putDir, putFile, randomMachineId } from './demo-root.ts';
import {
  copyPartitionBytes,
  createPartitionedImage,
  extentOf,
  formatExt4InImage,
  readPartitionExtents,
} from './disk-image.ts';
import { installGrubBios } from './grub-bios.ts';
import { demoCmdline } from './new-os-image.ts';
import { type OldIdentityFacts, populateOldIdentity } from './old-os-identity.ts';

export interface OldDisk extends OldIdentityFacts {
  readonly diskPath: string;
  readonly machineId: string;
}

/**
 * Builds the old disk: the busybox OS 1.0 with its identity on p5 (plus the new image and its
 * block map at the plan's paths), kiosk data on p6, GRUB for BIOS booting p5. The staging trees,
 * which hold private keys, are removed afterwards.
 */
export async function buildOldDisk(o: {
  workDir: string;
  diskPath: string;
  kernel: DebianKernel;
  initrdPath: string;
  newImagePath: string;
  newImageBmapPath: string;
  reportPaths: readonly string[];
  signal?: AbortSignal;
}): Promise<OldDisk> {
  const rootDir = join(o.workDir, 'old-root');
  const dataDir = join(o.workDir, 'old-kiosk-data');
  const machineId = randomMachineId();
  try {
    await populateBusyboxRoot(rootDir, {
      osVersion: oldOsVersion,
      prettyName: `Demo Kiosk OS ${oldOsVersion}`,
      hostname: 'kiosk-0042',
      machineId,
      accounts: oldAccounts,
      kernel: o.kernel,
      initrdPath: o.initrdPath,
      cmdline: demoCmdline(oldRootLabel),
      reportPaths: o.reportPaths,
    });
    const facts = await populateOldIdentity(rootDir, o.signal);
    await copyFile(o.newImagePath, inTree(rootDir, newImageFilePath));
    await copyFile(o.newImageBmapPath, inTree(rootDir, newImageBmapFilePath));

    const kiosk = oldAccounts.accounts.find((a) => a.name === 'kiosk');
    const owner = { uid: kiosk?.uid ?? 0, gid: kiosk?.gid ?? 0 };
    await putDir(dataDir, '.', { mode: 0o755 });
    await putDir(dataDir, 'media', { mode: 0o755, ...owner });
    await putFile(dataDir, 'media/playlist.m3u', '#EXTM3U\nwelcome.png\nmenu.png\n', { mode: 0o644, ...owner });
    await putDir(dataDir, 'log', { mode: 0o755 });
    await putFile(dataDir, 'log/kiosk.log', '2026-11-20T08:00:00Z kiosk started (Demo Kiosk OS 1.0)\n', {
      mode: 0o644,
    });

    const extents = await createPartitionedImage(o.diskPath, oldDiskLayout, o.signal);
    await formatExt4InImage(o.diskPath, extentOf(extents, oldRootPartition, o.diskPath), {
      label: oldRootLabel,
      sourceDir: rootDir,
      signal: o.signal,
    });
    await formatExt4InImage(o.diskPath, extentOf(extents, kioskDataPartition, o.diskPath), {
      label: kioskDataLabel,
      sourceDir: dataDir,
      signal: o.signal,
    });
    await installGrubBios(o.diskPath, { bootPartition: oldRootPartition, workDir: o.workDir, signal: o.signal });
    return { ...facts, diskPath: o.diskPath, machineId };
  } finally {
    await rm(rootDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * Builds the GPT variant of the old disk from the msdos one: the same machine (its old root and
 * kiosk data filesystems copied byte for byte, so the identity, the keys and the new image inside
 * are the same) on a GPT table (`oldGptDiskLayout`), booting by its own GRUB from the BIOS boot
 * partition. Copying instead of building again keeps the fixtures' identity facts valid for both.
 */
export async function buildGptOldDisk(o: {
  msdosDiskPath: string;
  diskPath: string;
  workDir: string;
  signal?: AbortSignal;
}): Promise<void> {
  const from = await readPartitionExtents(o.msdosDiskPath, o.signal);
  const to = await createPartitionedImage(o.diskPath, oldGptDiskLayout, o.signal);
  for (const number of [oldRootPartition, kioskDataPartition]) {
    await copyPartitionBytes(
      { imagePath: o.msdosDiskPath, extent: extentOf(from, number, o.msdosDiskPath) },
      { imagePath: o.diskPath, extent: extentOf(to, number, o.diskPath) },
      o.signal,
    );
  }
  await installGrubBios(o.diskPath, { bootPartition: oldRootPartition, workDir: o.workDir, signal: o.signal });
}
