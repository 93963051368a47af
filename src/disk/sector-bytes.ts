/**
 * sysfs counts sizes and partition starts in 512-byte units, whatever the device's logical block
 * size (include/linux/blk_types.h SECTOR_SHIFT). Not the device's sector size: that is
 * TargetInfo.logicalBlockSizeBytes.
 */
export const SYSFS_SECTOR_BYTES = 512;

/** The logical block size assumed for a regular-file target (a disk image file). */
export const FILE_LOGICAL_BLOCK_BYTES = 512;

/**
 * The O_DIRECT unit for a regular-file target: the page size, which every device's direct I/O
 * accepts. A file's own logical block (512) is not enough: the filesystem under it may sit on a
 * 4096-byte-sector device, where a direct write at offset 512 fails with EINVAL.
 */
export const FILE_DIRECT_IO_ALIGNMENT_BYTES = 4096;
