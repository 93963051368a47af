/**
 * Every error code of reimage, declared once. `ReimageError` takes only these codes (an
 * unregistered one fails tsc), `exitCodeFor` reads the exit class from here, the runner's retry
 * policy reads `retryable`, and docs/exit-codes.md is generated from this table
 * (scripts/generate-exit-codes-doc.ts; a test fails when the doc is stale).
 *
 * `exitClass` is the class when the target is untouched; any error raised after the target
 * started to change exits 4 instead (see exitCodeFor), except verify mismatches and interrupts.
 *
 * `retryable` follows Mender's client: transient errors may go away if the same step runs again
 * with the same input (an I/O error, a partition the kernel has not shown yet); fatal ones will
 * not (a wrong digest, a missing tool, a bad plan), so the runner does not spend attempts on them.
 */
export type ExitClass = 'invalidInput' | 'refusedUntouched' | 'failedTouched' | 'verifyMismatch' | 'interrupted';

export interface ErrorCodeInfo {
  readonly exitClass: ExitClass;
  readonly retryable: boolean;
  /** One line: what happened. The message of each error says what to do. */
  readonly meaning: string;
}

export const ERROR_CODES = {
  // The command line.
  REIMAGE_CLI_USAGE: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'an unknown verb or option, a missing option value or argument, a malformed value',
  },
  REIMAGE_CLI_FILE_NOT_FOUND: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning:
      'a path named on the command line does not exist, or is a directory where a file is needed (or the reverse)',
  },

  // Plans.
  REIMAGE_PLAN_INVALID: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the plan file is not valid YAML or breaks the schema; each field is named',
  },
  REIMAGE_PLAN_UNREADABLE: { exitClass: 'invalidInput', retryable: false, meaning: 'the plan file cannot be read' },

  // The machine's own tools.
  REIMAGE_TOOL_MISSING: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a system tool or package reimage needs is not installed',
  },
  REIMAGE_TOOL_FAILED: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'a system tool exited with an error',
  },

  // Images and block maps.
  REIMAGE_IMAGE_UNREADABLE: { exitClass: 'invalidInput', retryable: false, meaning: 'the image file cannot be read' },
  REIMAGE_IMAGE_FORMAT_UNKNOWN: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the image is not raw, gzip, bzip2, xz or zstd',
  },
  REIMAGE_IMAGE_DIGEST_INVALID: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the expected digest given is not 64 hex digits',
  },
  REIMAGE_IMAGE_DIGEST_MISMATCH: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the image does not match its expected SHA-256',
  },
  REIMAGE_IMAGE_CORRUPT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the compressed image is damaged or truncated',
  },
  REIMAGE_IMAGE_SIZE_MISMATCH: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the image decoded to another size than its block map, header or caller says',
  },
  REIMAGE_IMAGE_RANGE_CHECKSUM_MISMATCH: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "a mapped range of the image does not match its block map's checksum",
  },
  REIMAGE_IMAGE_CHANGED: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'the image file changed while it was being written',
  },
  REIMAGE_BMAP_UNREADABLE: { exitClass: 'invalidInput', retryable: false, meaning: 'the block map cannot be read' },
  REIMAGE_BMAP_INVALID: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the block map is malformed or does not match its own checksum',
  },

  // The armed write's map of the new image (boot/).
  REIMAGE_BOOT_IMAGE_TABLE_INVALID: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the new image's msdos table or GPT cannot be read (no signature, bad CRC, a partition past the end)",
  },
  REIMAGE_BOOT_FILESYSTEM_UNREADABLE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning:
      "a filesystem of the new image cannot be read to map its allocated blocks (ext through dumpe2fs, vfat's FAT)",
  },
  REIMAGE_BOOT_BMAP_INCOMPLETE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the given block map leaves out bytes the new image's filesystems hold",
  },

  // The target disk.
  REIMAGE_TARGET_UNREADABLE: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the target cannot be opened or its size read',
  },
  REIMAGE_TARGET_UNSUPPORTED: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the target is neither a block device nor a regular file',
  },
  REIMAGE_TARGET_TOO_SMALL: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the image is larger than the target',
  },
  REIMAGE_TARGET_BUSY: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the target or one of its partitions is mounted or in use',
  },
  REIMAGE_TARGET_CHANGED: {
    exitClass: 'failedTouched',
    retryable: false,
    meaning: 'the target path names another disk or file than the one the image was written to',
  },
  REIMAGE_TARGET_WRITE_FAILED: {
    exitClass: 'failedTouched',
    retryable: true,
    meaning: 'writing or flushing the target failed (an I/O error)',
  },
  REIMAGE_WRITE_VERIFY_MISMATCH: {
    exitClass: 'verifyMismatch',
    retryable: true,
    meaning: 'reading back the written image gave other bytes than were written',
  },
  REIMAGE_WRITE_ABORTED: {
    exitClass: 'interrupted',
    retryable: false,
    meaning: 'the write was stopped by a signal (Ctrl-C, SIGTERM) or its caller',
  },
  REIMAGE_WRITE_RANGES_INVALID: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning:
      'the ranges given to the armed write are unsorted, overlapping, not whole sectors, miss the first logical block, or the resume figure is outside them',
  },
  REIMAGE_WRITE_RANGE_PAST_TARGET: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a range given to the armed write ends past the end of the target',
  },
  REIMAGE_WRITE_RANGE_PAST_IMAGE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "a range given to the armed write ends past the image's decoded end",
  },

  // Disks, partitions, mounts.
  REIMAGE_DISK_NOT_FOUND: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: "the plan's disk does not exist or is neither a block device nor a disk image file",
  },
  REIMAGE_DISK_PARTITION_NOT_FOUND: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'a partition the plan names (number, label, UUID) is not on the disk',
  },
  REIMAGE_DISK_MOUNT_FAILED: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'a partition cannot be mounted',
  },
  REIMAGE_DISK_LOOP_INVALID: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'a loop device window (offset, size) is not a whole, positive multiple of 512 bytes',
  },
  REIMAGE_DISK_LOOP_SIZE_MISMATCH: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a loop device over part of a disk came out shorter than asked: the window runs past the disk end',
  },

  // Retention bundles.
  REIMAGE_RETAIN_LIST_UNREADABLE: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the retention list cannot be read',
  },
  REIMAGE_RETAIN_LIST_INVALID: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'a line of the retention list is not valid',
  },
  REIMAGE_RETAIN_ROOT_MISSING: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the root directory to capture from or restore into is not a directory',
  },
  REIMAGE_RETAIN_REQUIRED_MISSING: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a required retained path is missing in the old root',
  },
  REIMAGE_RETAIN_PATH_THROUGH_SYMLINK: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a retained path goes through a symlink in the old root',
  },
  REIMAGE_RETAIN_NAME_NOT_UTF8: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a retained name is not valid UTF-8',
  },
  REIMAGE_RETAIN_FILE_CHANGED: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'a retained file changed size while it was being captured',
  },
  REIMAGE_RETAIN_BUNDLE_UNREADABLE: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the retention bundle cannot be read',
  },
  REIMAGE_RETAIN_BUNDLE_CORRUPT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the retention bundle is not a valid tar archive',
  },
  REIMAGE_RETAIN_MANIFEST_INVALID: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the retention bundle's manifest is missing, damaged or of another version",
  },
  REIMAGE_RETAIN_BUNDLE_MISMATCH: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a bundle member does not match its manifest entry',
  },
  REIMAGE_RETAIN_DIGEST_MISMATCH: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "a bundle member's content does not match its SHA-256",
  },
  REIMAGE_RETAIN_UNSAFE_PATH: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the bundle would write through one of its own non-directory entries',
  },
  REIMAGE_RETAIN_UNSAFE_ROOT_PATH: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'restoring would follow a symlink or non-directory in the new root',
  },
  REIMAGE_RETAIN_ROOT_CONFLICT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'an entry is a directory in the bundle but not in the new root, or the reverse',
  },
  REIMAGE_RETAIN_RESTORE_FAILED: {
    exitClass: 'failedTouched',
    retryable: true,
    meaning: 'restoring an entry failed part-way',
  },
  REIMAGE_RETAIN_VERIFY_MISMATCH: {
    exitClass: 'verifyMismatch',
    retryable: false,
    meaning: 'retained entries in the root differ from the bundle',
  },

  // Initramfs builds.
  REIMAGE_INITRAMFS_SOURCE_UNREADABLE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a file the initramfs should carry cannot be found or read',
  },
  REIMAGE_INITRAMFS_PROJECT_INVALID: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "reimage's own checkout is incomplete (run npm ci)",
  },
  REIMAGE_INITRAMFS_BUSYBOX_MISSING: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a static busybox is not installed',
  },
  REIMAGE_INITRAMFS_NOT_ELF: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a binary to carry is not a 64-bit little-endian ELF file',
  },
  REIMAGE_INITRAMFS_LIBRARY_MISSING: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a shared library a carried binary needs is not installed',
  },
  REIMAGE_INITRAMFS_MODULES_INDEX: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the kernel modules directory has no usable modules.dep (or other index)',
  },
  REIMAGE_INITRAMFS_ENTRY_INVALID: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'an archive entry has an invalid path or a value too large for newc',
  },
  REIMAGE_INITRAMFS_ENTRY_DUPLICATE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'two parts of the initramfs want the same path',
  },
  REIMAGE_INITRAMFS_ARCHIVE_CORRUPT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a file read as an initramfs is not a valid newc archive',
  },
  REIMAGE_RUNTIME_OUT_NOT_EMPTY: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the directory a portable runtime is built into is not empty',
  },
  REIMAGE_RUNTIME_DAMAGED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "a portable runtime's manifest or one of its files does not match what was built",
  },

  // The runner.
  REIMAGE_RUN_NEEDS_ROOT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'reimage run was not started as root',
  },
  REIMAGE_RUN_CAPTURE_FAILED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the capture stage failed in an unforeseen way (nothing was written)',
  },
  REIMAGE_RUN_WRITE_FAILED: {
    exitClass: 'failedTouched',
    retryable: true,
    meaning: 'the write stage failed in an unforeseen way',
  },
  REIMAGE_RUN_RESTORE_FAILED: {
    exitClass: 'failedTouched',
    retryable: true,
    meaning: 'the restore stage failed in an unforeseen way',
  },
  REIMAGE_RUN_AFTER_HOOK_FAILED: {
    exitClass: 'failedTouched',
    retryable: false,
    meaning: "one of the plan's after-hooks failed",
  },
  REIMAGE_RUN_FINISH_FAILED: {
    exitClass: 'failedTouched',
    retryable: false,
    meaning: 'writing the logs or unmounting after a restore failed',
  },
  REIMAGE_RUN_INTERRUPTED: {
    exitClass: 'interrupted',
    retryable: false,
    meaning: 'the run was stopped by a signal (Ctrl-C, SIGTERM)',
  },

  // Arming a disk, disarming it, its status (src/arm/).
  REIMAGE_ARM_OFFLINE_NEEDS_KERNEL: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'a disk image file was armed without --kernel and --modules (there is no running kernel of that disk)',
  },
  REIMAGE_ARM_KERNEL_UNUSABLE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning:
      'the recovery kernel is not a bzImage, cannot run Node 24 (Linux < 4.18), or its modules directory is missing',
  },
  REIMAGE_ARM_DISK_UNSUPPORTED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the disk has no msdos or GPT table, or sectors other than 512 bytes (the BIOS recovery path needs both)',
  },
  REIMAGE_ARM_LAYOUT_INVALID: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the new image does not fit the disk, or the plan's restore mounts name partitions the new image lacks",
  },
  REIMAGE_ARM_NO_REFUGE_ROOM: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'no old filesystem has enough room that the new image leaves alone until the commit',
  },
  REIMAGE_ARM_REFUGE_MOVED: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: "the refuge file's extents changed while arm wrote it; it was removed",
  },
  REIMAGE_ARM_READBACK_MISMATCH: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'what arm wrote reads back different from the raw disk',
  },
  REIMAGE_ARM_BOOT_SECTOR_CHANGED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'LBA 0 is not what arm saved or wrote (a boot loader was installed since); it was not written',
  },
  REIMAGE_ARM_NEEDS_ROOT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'arm, disarm and status read and write raw disks and mount filesystems: they need root',
  },
  REIMAGE_ALREADY_ARMED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the disk is armed already (or holds a damaged arm): disarm it before arming again',
  },
  REIMAGE_ARMED_DISK_NOT_FOUND: {
    exitClass: 'failedTouched',
    retryable: true,
    meaning: "the recovery boot found no disk with the armed disk's identity and refuge",
  },
  REIMAGE_ARMED_RUN_REFUSED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the armed run refused before the disk was touched; it disarmed, so the old OS boots next',
  },
  REIMAGE_ARMED_RUN_FAILED: {
    exitClass: 'failedTouched',
    retryable: true,
    meaning: 'the armed run failed after the disk was touched; the journal says where the next boot resumes',
  },
  REIMAGE_ARMED_RUN_CANNOT_START: {
    exitClass: 'failedTouched',
    retryable: false,
    meaning:
      'on an armed disk, where the run is cannot be known or a refusal cannot give LBA 0 back: the machine stays (a reboot would only enter the recovery path again)',
  },
  REIMAGE_NOT_ARMED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'disarm found no arm on the disk (LBA 0 does not boot a reimage refuge)',
  },
  REIMAGE_DISARM_REFUSED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the armed run has started writing the disk: disarming now would leave neither OS; let it finish',
  },

  // The armed run's journal (src/boot/).
  REIMAGE_JOURNAL_UNREADABLE: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: "the journal's bytes could not be read (an I/O error)",
  },
  REIMAGE_JOURNAL_WRITE_FAILED: {
    exitClass: 'failedTouched',
    retryable: true,
    meaning: 'writing or flushing a journal slot failed; the previous journal state still holds',
  },
  REIMAGE_JOURNAL_UNTRUSTED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "neither journal slot is intact and this arm's (torn, damaged, never written or another arm's)",
  },
  REIMAGE_JOURNAL_WRITE_REFUSED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a journal write was refused before it began: bad state, misaligned offset or exhausted sequence',
  },

  // The recovery boot path (src/boot/).
  REIMAGE_BOOT_RANGES_INVALID: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'a sector range or LBA for the recovery boot path is empty, negative, not whole or too large',
  },
  REIMAGE_BOOT_CMDLINE_INVALID: {
    exitClass: 'invalidInput',
    retryable: false,
    meaning: 'the recovery kernel command line has an argument it cannot carry, a bad disk identity, or is too long',
  },
  REIMAGE_BOOT_SECTOR_UNEXPECTED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the disk's LBA 0 or GRUB's boot.img is not a 512-byte sector ending in 0x55AA",
  },
  REIMAGE_BOOT_CORE_UNEXPECTED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "GRUB's core.img does not carry the first-sector blocklist the placement patches",
  },
  REIMAGE_REFUGE_TOO_SMALL: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the usable refuge room is smaller than its items, or no piece of it holds a contiguous item',
  },
  REIMAGE_REFUGE_LAYOUT_INVALID: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning:
      'a refuge layout cannot be used: misaligned or overlapping ranges, ranges not covering an item, data of another size, or too many fragments for the header',
  },
  REIMAGE_REFUGE_DAMAGED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the refuge header's frame, digest or contents are not intact",
  },
  REIMAGE_REFUGE_UNREADABLE: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: "the refuge's bytes could not be read raw from the disk (an I/O error, or a range past the disk's end)",
  },
  REIMAGE_REFUGE_WRITE_FAILED: {
    exitClass: 'failedTouched',
    retryable: true,
    meaning: 'writing, wiping or flushing a refuge item failed',
  },
  REIMAGE_REFUGE_BUNDLE_TOO_BIG: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the retention bundle is larger than the refuge's room for it",
  },

  // The refuge file in an old filesystem (src/boot/refuge-*.ts).
  REIMAGE_REFUGE_EXISTS: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a reimage-refuge file is already at the root of the old filesystem (an earlier arm left it)',
  },
  REIMAGE_REFUGE_NO_ROOM: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the old filesystem has no room for a refuge of the size asked (the partial file was removed)',
  },
  REIMAGE_REFUGE_RESERVE_FAILED: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'the refuge file could not be created, allocated or flushed (other than for lack of room)',
  },
  REIMAGE_REFUGE_EXTENTS_UNSUITABLE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning:
      "the refuge file's blocks cannot be located on the disk (FIEMAP failed, a hole, or a shared, inline, delalloc, encoded or unknown extent)",
  },
  REIMAGE_REFUGE_ATTRIBUTE_FAILED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the refuge file's immutable flag could not be set or cleared (chattr), or lsattr does not show it",
  },
  REIMAGE_REFUGE_RELEASE_FAILED: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'the refuge file could not be removed',
  },
  REIMAGE_REFUGE_FILESYSTEM_UNSUPPORTED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a refuge cannot lie in this partition (LVM, dm-crypt, md, btrfs, vfat, or no filesystem reimage reads)',
  },
  REIMAGE_REFUGE_ROOM_UNREADABLE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the old filesystem's free space cannot be read (dumpe2fs, xfs_db or statfs failed)",
  },
  REIMAGE_REFUGE_PROTECT_OUTSIDE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a refuge range to protect inside a new filesystem lies past that filesystem end',
  },
  REIMAGE_REFUGE_BLOCKS_IN_USE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'a refuge range inside a new filesystem covers blocks that filesystem uses (data or metadata)',
  },
  REIMAGE_REFUGE_PROTECT_UNSUPPORTED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'refuge blocks cannot be protected there: no ext2/3/4 filesystem, or a block past 32-bit numbers',
  },
  REIMAGE_REFUGE_PROTECT_FAILED: {
    exitClass: 'failedTouched',
    retryable: false,
    meaning: "writing a new filesystem's bad-block list failed, or it does not hold what was written",
  },
  REIMAGE_REFUGE_RELEASE_UNSAFE: {
    exitClass: 'failedTouched',
    retryable: false,
    meaning:
      "a new filesystem is not clean, so the refuge's blocks stay on its bad-block list (a repair could write into the refuge)",
  },

  // The demo and its fixtures.
  REIMAGE_DEMO_NEEDS_ROOT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the demo was not started as root',
  },
  REIMAGE_DEMO_LAYOUT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the cached demo disk does not have the expected partitions',
  },
  REIMAGE_DEMO_MODULES_MISSING: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: 'the demo kernel lacks a module its initrd needs',
  },
  REIMAGE_DEMO_GRUB_NO_ROOM: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "GRUB's core.img does not fit before the first partition (msdos) or in the BIOS boot partition (GPT)",
  },
  REIMAGE_DEMO_VM_FAILED: {
    exitClass: 'failedTouched',
    retryable: false,
    meaning: 'the reimage in the demo VM, or the boot of the reimaged disk, did not succeed',
  },
  REIMAGE_DEMO_IDENTITY_MISMATCH: {
    exitClass: 'verifyMismatch',
    retryable: false,
    meaning: 'the reimaged demo OS booted with another identity than the old one',
  },
  REIMAGE_DEMO_RETAINED_BYTES_UNREADABLE: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "the retained-bytes check cannot read a key, its file's blocks or the armed map from the disk image",
  },
  REIMAGE_FIXTURE_KERNEL: {
    exitClass: 'refusedUntouched',
    retryable: true,
    meaning: 'the Debian kernel package for the test fixtures could not be found or fetched',
  },
  REIMAGE_VM_FAILED: { exitClass: 'refusedUntouched', retryable: false, meaning: 'QEMU did not start the VM' },
  REIMAGE_DEMO_WRITE_LOG_DAMAGED: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "a QEMU blklogwrites log (a power-cut trial's record of a run's writes) is damaged or not this disk's",
  },
  REIMAGE_DEMO_REPLAY_CUT: {
    exitClass: 'refusedUntouched',
    retryable: false,
    meaning: "a replay's cut point is outside its write log",
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function errorCodeInfo(code: ErrorCode): ErrorCodeInfo {
  return ERROR_CODES[code];
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}
