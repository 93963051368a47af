/**
 * sysfs counts sizes and partition starts in 512-byte units, whatever the device's logical block
 * size (include/linux/blk_types.h SECTOR_SHIFT). Not the device's sector size: that is
 * TargetInfo.logicalBlockSizeBytes.
 */
export const SYSFS_SECTOR_BYTES = 512;

/** The logical block size assumed for a regular-file target (a disk image file). */
export const FILE_LOGICAL_BLOCK_BYTES = 512;
