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
