import { WRITER_TOOLS } from '../image/index.ts';

/**
 * The system tools the runner (and the libraries it calls) spawn. The initramfs builder
 * copies each, with its shared-library closure, next to busybox; the writer's decoders come
 * from image/'s WRITER_TOOLS (decoders, fallocate). util-linux's blkid, partx and blockdev are carried because
 * busybox's lack `-o export`, BLKPG partition updates and some ioctls.
 */
export const RUNNER_TOOLS: readonly string[] = [
  'blkid',
  'blockdev',
  'partx',
  'mount',
  'umount',
  'losetup',
  'chroot',
  'sync',
  'sfdisk',
  // retain/ sets nanosecond times through one perl process (utimensat; Node's utimes rounds),
  // and makes FIFOs and device nodes with mkfifo and mknod (ADR 0102).
  'perl',
  'touch',
  'mkfifo',
  'mknod',
  // The armed run keeps the refuge's blocks in use inside new ext filesystems (boot/protect-ext-blocks).
  'e2fsck',
  'dumpe2fs',
  'debugfs',
];

/** What the reimage initramfs carries: the runner's tools and the writer's (decoders, fallocate). */
export const RECOVERY_INITRAMFS_TOOLS: readonly string[] = [...new Set([...RUNNER_TOOLS, ...WRITER_TOOLS])];
