import { type FileHandle, open } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { readAt } from '../disk/index.ts';

/**
 * Node 24 needs Linux 4.18 or later (its libuv uses statx and io_uring-era calls; nodejs.org's
 * platform list). The recovery initramfs carries Node, so the kernel it boots must be at least that.
 */
export const MIN_KERNEL_RELEASE = { major: 4, minor: 18 } as const;

/** Where x86's boot protocol keeps the header magic "HdrS" and the pointer to the version string. */
const HEADER_MAGIC_OFFSET = 0x202;
const VERSION_POINTER_OFFSET = 0x20e;
/** The version pointer is relative to the real-mode header start at 0x200. */
const VERSION_POINTER_BASE = 0x200;
const HEAD_BYTES = 64 * 1024;

/**
 * The kernel version string of an x86 bzImage ("6.1.0-57-amd64 (debian-kernel@…) #1 SMP …"), from
 * its boot-protocol header: `kernel_version` at 0x20E points (minus 0x200) at a NUL-terminated
 * string. Undefined when the bytes are not a bzImage with a version. Pure.
 */
export function bzImageVersion(head: Uint8Array): string | undefined {
  if (head.byteLength < VERSION_POINTER_OFFSET + 2) return undefined;
  if (Buffer.from(head.subarray(HEADER_MAGIC_OFFSET, HEADER_MAGIC_OFFSET + 4)).toString('latin1') !== 'HdrS') {
    return undefined;
  }
  const pointer = (head[VERSION_POINTER_OFFSET] ?? 0) | ((head[VERSION_POINTER_OFFSET + 1] ?? 0) << 8);
  if (pointer === 0) return undefined;
  const start = pointer + VERSION_POINTER_BASE;
  const end = head.indexOf(0, start);
  if (start >= head.byteLength || end < 0) return undefined;
  const text = Buffer.from(head.subarray(start, end)).toString('latin1');
  return /^\d+\.\d+/.test(text) ? text : undefined;
}

/** The release's first two numbers ("4.19.0-27-amd64" → 4, 19), or undefined. Pure. */
export function parseKernelRelease(release: string): { major: number; minor: number } | undefined {
  const match = /^(\d+)\.(\d+)/.exec(release);
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  return { major: Number(match[1]), minor: Number(match[2]) };
}

/** Whether a release can run Node 24 (≥ 4.18). Pure. */
export function releaseRunsNode(release: string): boolean {
  const parsed = parseKernelRelease(release);
  if (parsed === undefined) return false;
  return (
    parsed.major > MIN_KERNEL_RELEASE.major ||
    (parsed.major === MIN_KERNEL_RELEASE.major && parsed.minor >= MIN_KERNEL_RELEASE.minor)
  );
}

/**
 * Reads the recovery kernel's release and refuses one that cannot run what the recovery
 * initramfs carries. Arm boots this kernel only after the reboot: a refusal now costs nothing.
 */
export async function checkRecoveryKernel(kernelPath: string): Promise<{ release: string; sizeBytes: number }> {
  let file: FileHandle;
  try {
    file = await open(kernelPath, 'r');
  } catch (error) {
    throw new ReimageError(
      'REIMAGE_ARM_KERNEL_UNUSABLE',
      `The kernel ${kernelPath} cannot be read. Give the kernel with --kernel FILE.`,
      {
        evidence: { path: kernelPath, field: '--kernel' },
        cause: error,
      },
    );
  }
  try {
    const sizeBytes = (await file.stat()).size;
    const head = Buffer.alloc(Math.min(HEAD_BYTES, sizeBytes));
    await readAt(file, head, 0);
    const version = bzImageVersion(head);
    if (version === undefined) {
      throw new ReimageError(
        'REIMAGE_ARM_KERNEL_UNUSABLE',
        `${kernelPath} is not an x86 Linux kernel (bzImage) with a version string; the recovery boot loads one. Give the kernel with --kernel FILE (e.g. /boot/vmlinuz-$(uname -r)).`,
        { evidence: { path: kernelPath, field: '--kernel' } },
      );
    }
    const release = version.split(' ')[0] ?? version;
    if (!releaseRunsNode(release)) {
      throw new ReimageError(
        'REIMAGE_ARM_KERNEL_UNUSABLE',
        `The kernel ${kernelPath} is Linux ${release}; the recovery initramfs runs Node 24, which needs Linux ${MIN_KERNEL_RELEASE.major}.${MIN_KERNEL_RELEASE.minor} or later. Give a newer kernel with --kernel (the new image's own kernel will do) and its modules with --modules.`,
        {
          evidence: {
            path: kernelPath,
            actual: release,
            expected: `≥ ${MIN_KERNEL_RELEASE.major}.${MIN_KERNEL_RELEASE.minor}`,
          },
        },
      );
    }
    return { release, sizeBytes };
  } finally {
    await file.close();
  }
}
