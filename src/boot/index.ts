// The recovery boot path and the commit (DESIGN.md's boot/ part). Issue 9's first step: the
// journal format, the map of the new image's filesystems, and the recovery GRUB core.img; arm,
// the refuge and the armed run build on these next.
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
export { createJournal, readJournal, writeJournal } from './journal-file.ts';
export { initialJournalState, type JournalEvent, type JournalState, nextState } from './journal-state.ts';
export { mapImageFile } from './map-image-file.ts';
export {
  formatRecoveryCmdline,
  parseRecoveryCmdline,
  type RecoveryCmdline,
  refugeSectorRange,
} from './recovery-cmdline.ts';
export { type RecoveryDiskIdentity, recoveryGrubConfig } from './recovery-config.ts';
export { buildRecoveryCore, readGrubBootImage } from './recovery-core.ts';
export { bundleRoomBytes, readBundleRaw, writeBundleRaw } from './refuge-bundle.ts';
export type { RefugeExtent } from './refuge-extent.ts';
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
