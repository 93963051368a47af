import { open } from 'node:fs/promises';
import { join } from 'node:path';
import {
  decodeLocator,
  LOCATOR_BYTES,
  REFUGE_FILE_NAME,
  type RefugeLocator,
  refugeFilesystemVerdict,
} from '../boot/index.ts';
import type { Logger } from '../core/logger.ts';
import { findInOldFilesystems, type OldDisk, type OldPartition } from './old-disk.ts';

/**
 * The refuge file of an arm that LBA 0 no longer leads to (a refusal in the recovery run gave the
 * old LBA 0 back; a boot loader was installed since): looked for at the root of each old
 * filesystem the refuge can lie in, its first block holding a copy of the locator. Mounts
 * read-only (or uses the running OS's mount); changes nothing.
 */
export async function findRefugeFile(
  disk: OldDisk,
  o: { workDir: string; log: Logger },
): Promise<{ partition: OldPartition; locator: RefugeLocator } | undefined> {
  return findInOldFilesystems(
    disk,
    (partition) => refugeFilesystemVerdict(partition.filesystem).ok,
    o,
    async (partition, dir) => {
      const file = await open(join(dir, REFUGE_FILE_NAME), 'r').catch(() => undefined);
      if (file === undefined) return undefined;
      try {
        const block = Buffer.alloc(LOCATOR_BYTES);
        await file.read(block, 0, LOCATOR_BYTES, 0);
        const locator = decodeLocator(block);
        return locator === undefined ? undefined : { partition, locator };
      } finally {
        await file.close();
      }
    },
  );
}
