// The recovery boot path and the commit (DESIGN.md's boot/ part): the journal, the map of the new
// image's filesystems, the refuge (its file in an old filesystem, its layout, header, locator and
// raw I/O), the recovery GRUB core.img, and keeping the refuge safe inside new ext partitions.
// arm/ fills the refuge; runner/'s armed run reads it.
export { checkBlockMap, findUncovered } from './check-block-map.ts';
export { type DiskMap, mapDisk } from './disk-map.ts';
export { grubBlocklist, mergeAdjacentRanges, type SectorRange } from './grub-blocklist.ts';
export {
  BOOT_KERNEL_SECTOR_OFFSET,
  bootSectorCoreLba,
  GRUB_I386_PC_DIR,
  GRUB_SECTOR_BYTES,
  patchBootSector,
  patchCoreBlocklist,
} from './grub-boot-sector.ts';
export {
  createJournal,
  JOURNAL_SIZE_BYTES,
  type JournalLocation,
  type JournalReadResult,
  readJournal,
  writeJournal,
} from './journal-file.ts';
export {
  FINAL_STAGES,
  initialJournalState,
  type JournalEvent,
  type JournalStage,
  type JournalState,
  nextState,
} from './journal-state.ts';
export { mapImageFile } from './map-image-file.ts';
export { EXT_FILESYSTEMS, mountNewPartitionReadWrite, NEW_EXT_MOUNT_OPTIONS } from './mount-new-partition.ts';
export { maxProtectedBytes, protectExtBlocks, releaseExtBlocks } from './protect-ext-blocks.ts';
export {
  formatRecoveryCmdline,
  parseRecoveryCmdline,
  type RecoveryCmdline,
  refugeSectorRange,
} from './recovery-cmdline.ts';
export { formatDiskIdentity, type RecoveryDiskIdentity, recoveryGrubConfig } from './recovery-config.ts';
export { buildRecoveryCore, readGrubBootImage } from './recovery-core.ts';
export { bundleRoomBytes, readBundleRaw, writeBundleRaw } from './refuge-bundle.ts';
export { type RefugeExtent, usableExtents } from './refuge-extent.ts';
export {
  REFUGE_FILE_NAME,
  readRefugeExtents,
  releaseRefugeFile,
  reserveRefugeFile,
  setRefugeImmutable,
} from './refuge-file.ts';
export { refugeFilesystemVerdict } from './refuge-filesystem-verdict.ts';
export { decodeRefugeHeader, encodeRefugeHeader, type RefugeHeader, type RefugeHeaderItem } from './refuge-header.ts';
export {
  type RefugeItemData,
  type RefugeItemRanges,
  readItemChunksRaw,
  readItemRaw,
  sha256ItemRaw,
  wipeItemRaw,
  writeItemRaw,
  writeItemThroughFile,
} from './refuge-io.ts';
export {
  type PlacedItem,
  placedRanges,
  placeRefuge,
  REFUGE_HEAD_BYTES,
  REFUGE_HEADER_BYTES,
  type RefugeItemName,
  type RefugeItemRequest,
  type RefugeLayout,
} from './refuge-layout.ts';
export {
  CORE_ROOM_BYTES,
  coreWithLocator,
  decodeLocator,
  encodeLocator,
  LOCATOR_BYTES,
  LOCATOR_OFFSET_IN_CORE_ROOM,
  type RefugeLocator,
} from './refuge-locator.ts';
export { decodeMapItem, encodeMapItem, type MapItem } from './refuge-map-item.ts';
export { punchRefugeFile } from './refuge-punch.ts';
export { measureRefugeRoom } from './refuge-room.ts';
