export {
  checkImageFits,
  dropBlockDeviceCache,
  inspectTarget,
  type MountEntry,
  parseMountInfo,
  refuseBusyTarget,
  rereadPartitionTable,
  type TargetInfo,
  zeroRange,
} from './block-device.ts';
export { type ByteRange, mergeRanges, totalBytes } from './byte-range.ts';
export { attachLoopDevice, type LoopDevice } from './loop-device.ts';
export { type Mounted, mountReadOnly, mountReadWrite } from './mount.ts';
export { attachLoopAt } from './offset-loop.ts';
export {
  type DiskIdentity,
  MSDOS_SIGNATURE_OFFSET_BYTES,
  type PartitionTable,
  parseExtendedRecord,
  parsePartitionTable,
  readPartitionTable,
  TABLE_HEAD_BYTES,
  TABLE_SECTOR_BYTES,
  type TablePartition,
} from './partition-table.ts';
export {
  describePartitions,
  listPartitionDevices,
  type PartitionInfo,
  probeFilesystem,
  refreshPartitions,
  resolvePartition,
} from './partitions.ts';
export { replaceSector } from './replace-sector.ts';
export {
  closeTarget,
  type OpenedTarget,
  openTarget,
  readAt,
  readFirstLogicalBlock,
  syncTarget,
  writeAt,
} from './target-handle.ts';
