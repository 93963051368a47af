import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import type { LoopDevice } from './loop-device.ts';

/** losetup's offset and size limit are byte counts, but the kernel's loop works in 512-byte sectors. */
const LOOP_SECTOR_BYTES = 512;

function invalidLoop(what: string, evidence: Record<string, string | number>): ReimageError {
  return new ReimageError(
    'REIMAGE_DISK_LOOP_INVALID',
    `Cannot attach a loop device at ${evidence.device}: ${what}. This is a bug in the caller (the offsets come from the new image's partition table); nothing was attached.`,
    { evidence },
  );
}

/**
 * Attaches a loop device over `offsetBytes … offsetBytes + sizeBytes` of `device` (a whole disk or
 * an image file): during the armed run LBA 0 still holds the OLD partition table, so the kernel
 * shows the old partitions and a new one is reached only this way, at the offsets of the new
 * image's table held in memory.
 *
 * No `--partscan`: the window is one partition, and a table-looking sector inside it must not
 * make the kernel invent partitions of a partition. The loop's size is read back afterwards:
 * losetup silently shortens a window that runs past the end of `device`, and a filesystem on a
 * shortened device would be checked and mounted against the wrong end.
 *
 * The loop does buffered I/O on `device`, through the same page cache as any buffered reader
 * or writer of `device` itself; detach() flushes the loop (which fsyncs `device`) first.
 */
export async function attachLoopAt(
  device: string,
  o: { readonly offsetBytes: number; readonly sizeBytes: number; readonly readOnly?: boolean },
): Promise<LoopDevice> {
  for (const [name, value] of [
    ['offsetBytes', o.offsetBytes],
    ['sizeBytes', o.sizeBytes],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0 || value % LOOP_SECTOR_BYTES !== 0) {
      throw invalidLoop(`${name} ${value} is not a whole, non-negative multiple of ${LOOP_SECTOR_BYTES} bytes`, {
        device,
        [name]: value,
      });
    }
  }
  if (o.sizeBytes === 0) throw invalidLoop('sizeBytes is 0', { device, sizeBytes: 0 });
  const args = [
    '--find',
    '--show',
    '--offset',
    String(o.offsetBytes),
    '--sizelimit',
    String(o.sizeBytes),
    ...(o.readOnly === true ? ['--read-only'] : []),
    device,
  ];
  const { stdout } = await runCommand('losetup', args);
  const loopPath = stdout.trim();
  const loop: LoopDevice = {
    device: loopPath,
    async detach() {
      // A flush reaches the loop driver as a fsync of `device`: what was written through the
      // loop is durable before it goes. Detach even if the flush failed, then say so.
      const flushed = await runCommand('blockdev', ['--flushbufs', loopPath], { allowFailure: true });
      await runCommand('losetup', ['-d', loopPath], { allowFailure: true });
      if (flushed.exitCode !== 0) {
        throw new ReimageError(
          'REIMAGE_TARGET_WRITE_FAILED',
          `Flushing loop device ${loopPath} (over ${device}) failed: ${flushed.stderr.trim()}. What was written through it may not be on the disk; run the step again.`,
          { evidence: { device, loop: loopPath, exitCode: flushed.exitCode } },
        );
      }
    },
  };
  try {
    const size = await runCommand('blockdev', ['--getsize64', loopPath]);
    const actualBytes = Number(size.stdout.trim());
    if (actualBytes !== o.sizeBytes) {
      throw new ReimageError(
        'REIMAGE_DISK_LOOP_SIZE_MISMATCH',
        `The loop device over ${device} at offset ${o.offsetBytes} is ${actualBytes} bytes, not the ${o.sizeBytes} asked for: the partition runs past the end of ${device}. Check that the new image fits this disk; nothing was written.`,
        { evidence: { device, offsetBytes: o.offsetBytes, expectedBytes: o.sizeBytes, actualBytes } },
      );
    }
  } catch (error) {
    await runCommand('losetup', ['-d', loopPath], { allowFailure: true });
    throw error;
  }
  return loop;
}
