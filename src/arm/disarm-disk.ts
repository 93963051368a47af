import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { type JournalStage, readItemRaw, releaseRefugeFile, wipeItemRaw } from '../boot/index.ts';
import type { Logger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { replaceSector } from '../disk/index.ts';
import { findArm, readArmAt } from './find-arm.ts';
import { findRefugeFile } from './find-refuge-file.ts';
import { mountOldPartition, oldPartition, openOldDisk } from './old-disk.ts';

/** Stages in which nothing destructive has been written: the old OS is whole, disarming is safe. */
const DISARMABLE: readonly JournalStage[] = ['armed', 'capturing', 'bundle-persisted', 'refused'];

export interface DisarmReport {
  readonly disk: string;
  readonly stage: JournalStage;
  readonly refugeRemoved: boolean;
}

/**
 * Undoes an arm that has not started writing: the saved LBA 0 back (one sector, the table bytes
 * checked unchanged), the bundle room wiped, the refuge file released. The old OS then boots as
 * before the arm.
 */
export async function disarmDisk(o: { diskPath: string; workDir: string; log: Logger }): Promise<DisarmReport> {
  const disk = await openOldDisk(o.diskPath);
  try {
    const handle = await open(disk.device, 'r+');
    let stage: JournalStage;
    let partitionNumber: number;
    let fileName: string;
    try {
      const viaLba0 = await findArm(handle);
      if (viaLba0.kind === 'not-armed') {
        // LBA 0 leads elsewhere, but the refuge file may remain (a refusal gave the old LBA 0
        // back; a boot loader was installed): release it, leave LBA 0 as it is.
        const file = await findRefugeFile(disk, { workDir: o.workDir, log: o.log });
        const behind = file === undefined ? undefined : await readArmAt(handle, file.locator, viaLba0.lba0, 0);
        if (file !== undefined && behind?.kind === 'armed' && DISARMABLE.includes(behind.journal.state.stage)) {
          const bundle = behind.header.items.find((item) => item.name === 'bundle');
          if (bundle !== undefined) await wipeItemRaw(handle, bundle);
          const mount = await mountOldPartition(file.partition, { writable: true, workDir: o.workDir, log: o.log });
          try {
            await releaseRefugeFile(join(mount.dir, behind.header.refugeFile.name));
          } finally {
            await mount.unmount();
          }
          o.log.info(`${o.diskPath}: LBA 0 did not lead to the refuge (${viaLba0.why}); the refuge file was removed`);
          return { disk: o.diskPath, stage: behind.journal.state.stage, refugeRemoved: true };
        }
      }
      const found = viaLba0;
      if (found.kind !== 'armed') {
        throw new ReimageError(
          'REIMAGE_NOT_ARMED',
          found.kind === 'not-armed'
            ? `${o.diskPath} is not armed: ${found.why}. Nothing was changed.`
            : `${o.diskPath} boots a reimage refuge that cannot be read (${found.why}); disarm cannot find the saved LBA 0. Restore the boot loader by hand (grub-install). Nothing was changed.`,
          { evidence: { disk: o.diskPath } },
        );
      }
      stage = found.journal.state.stage;
      if (!DISARMABLE.includes(stage)) {
        throw new ReimageError(
          'REIMAGE_DISARM_REFUSED',
          `The armed run on ${o.diskPath} is at stage ${stage}: the disk is being rewritten, and disarming now would leave neither the old nor the new OS. Let the recovery boot finish it (reimage status shows where it is).`,
          { evidence: { disk: o.diskPath, stage } },
        );
      }
      const saved = found.header.items.find((item) => item.name === 'old-lba0');
      const bundle = found.header.items.find((item) => item.name === 'bundle');
      if (saved === undefined) throw new Error('disarm: the refuge header has no old-lba0');
      const oldLba0 = (await readItemRaw(handle, saved)).subarray(0, 512);
      // Only the boot code goes back: if the table changed since the arm, writing the saved sector
      // whole would bring an old table back over the new one.
      if (!oldLba0.subarray(440).equals(found.lba0.subarray(440))) {
        throw new ReimageError(
          'REIMAGE_ARM_BOOT_SECTOR_CHANGED',
          `The partition table in LBA 0 of ${o.diskPath} changed since the arm; disarm will not write the saved sector over it. Nothing was changed.`,
          { evidence: { disk: o.diskPath } },
        );
      }
      await replaceSector({
        path: disk.device,
        kind: 'block-device',
        offsetBytes: 0,
        expected: found.lba0,
        next: oldLba0,
      });
      o.log.info(`${o.diskPath}: LBA 0 restored; the old OS boots as before`);
      if (bundle !== undefined) await wipeItemRaw(handle, bundle);
      partitionNumber = found.header.refugeFile.partitionNumber;
      fileName = found.header.refugeFile.name;
    } finally {
      await handle.close();
    }
    const partition = oldPartition(disk, partitionNumber, 'refuge');
    let refugeRemoved = false;
    try {
      const mount = await mountOldPartition(partition, { writable: true, workDir: o.workDir, log: o.log });
      try {
        await releaseRefugeFile(join(mount.dir, fileName));
        refugeRemoved = true;
      } finally {
        await mount.unmount();
      }
    } catch (error) {
      o.log.warn(
        `LBA 0 is restored, but the refuge file /${fileName} on partition ${partitionNumber} could not be removed (${String(error)}): remove it with chattr -i and rm.`,
      );
    }
    return { disk: o.diskPath, stage, refugeRemoved };
  } finally {
    await disk.close();
  }
}
