import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { pageAlignedBuffer, readAt, writeAt } from './target-handle.ts';

/**
 * Replaces one sector of a disk that is in use — LBA 0 of the running OS's own disk, whose
 * partitions are mounted — in one synchronous write: opened without O_EXCL (the kernel would
 * refuse it while anything is mounted), with O_DIRECT and O_SYNC on a block device so the write
 * bypasses the buffer cache and is on the disk when it returns. The sector is read first and must
 * still be `expected` (nothing rewrote it since the caller saved it); after the write it is read
 * back. A disk image file takes a plain write and fdatasync.
 */
export async function replaceSector(o: {
  path: string;
  kind: 'block-device' | 'file';
  offsetBytes: number;
  expected: Buffer;
  next: Buffer;
}): Promise<void> {
  if (o.expected.length !== o.next.length) throw new Error('replaceSector: expected and next differ in length');
  const direct = o.kind === 'block-device';
  const flags = constants.O_RDWR | (direct ? constants.O_DIRECT | constants.O_SYNC : 0);
  const buffer = (direct ? pageAlignedBuffer(4096) : undefined) ?? Buffer.alloc(4096);
  const sector = buffer.subarray(0, o.next.length);
  let handle: FileHandle;
  try {
    handle = await open(o.path, flags);
  } catch (error) {
    throw new ReimageError(
      'REIMAGE_TARGET_UNREADABLE',
      `Cannot open ${o.path} to write its boot sector. Run as root.`,
      {
        evidence: { path: o.path },
        cause: error,
      },
    );
  }
  try {
    await readAt(handle, sector, o.offsetBytes);
    if (!sector.equals(o.expected)) {
      throw new ReimageError(
        'REIMAGE_ARM_BOOT_SECTOR_CHANGED',
        `The sector at byte ${o.offsetBytes} of ${o.path} changed since it was saved (a boot loader install?); it was not written.`,
        { evidence: { path: o.path, offsetBytes: o.offsetBytes } },
      );
    }
    o.next.copy(sector);
    await writeAt(handle, sector, o.offsetBytes);
    await handle.datasync();
    sector.fill(0);
    await readAt(handle, sector, o.offsetBytes);
    if (!sector.equals(o.next)) {
      throw new ReimageError(
        'REIMAGE_ARM_READBACK_MISMATCH',
        `The sector written at byte ${o.offsetBytes} of ${o.path} reads back different. Check the disk (dmesg, SMART).`,
        { evidence: { path: o.path, offsetBytes: o.offsetBytes }, targetState: 'unknown' },
      );
    }
  } finally {
    await handle.close();
  }
}
