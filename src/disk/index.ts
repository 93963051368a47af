export {
  checkImageFits,
  dropBlockDeviceCache,
  findTargetUsers,
  inspectTarget,
  refuseBusyTarget,
  rereadPartitionTable,
  type TargetInfo,
  targetBusy,
  zeroRange,
} from './block-device.ts';
export { attachLoopDevice, type LoopDevice } from './loop-device.ts';
export { type Mounted, mountReadOnly, mountReadWrite } from './mount.ts';
export {
  describePartitions,
  listPartitionDevices,
  type PartitionInfo,
  probeFilesystem,
  refreshPartitions,
  resolvePartition,
} from './partitions.ts';
export { FILE_LOGICAL_BLOCK_BYTES, SYSFS_SECTOR_BYTES } from './sector-bytes.ts';
export {
  closeTarget,
  type OpenedTarget,
  openTarget,
  readAt,
  readFirstLogicalBlock,
  syncTarget,
  writeAt,
} from './target-handle.ts';
