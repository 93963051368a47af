export {
  BUSYBOX_PATH,
  type BuildInitramfsOptions,
  buildInitramfs,
  findFirmware,
  type InitramfsPart,
  type InitramfsPartSummary,
  type InitramfsSummary,
  productionPackageDirs,
  STORAGE_MODULES,
} from './build-initramfs.ts';
export { DEFAULT_LIBRARY_DIRS, type ElfDynamicInfo, readElfDynamicInfo, sharedLibraryClosure } from './elf-closure.ts';
export { formatInitramfsSummary } from './format-summary.ts';
export { type HostPathLink, hostPathChain } from './host-path-chain.ts';
export { INIT_CONSOLE_LOG, INIT_PLAN_PATH, type InitScriptOptions, initScript } from './init-script.ts';
export { loadModuleIndex, type ModuleIndex, moduleClosure, resolveModuleClosure } from './module-closure.ts';
export {
  type ArchiveCompression,
  type ArchiveEntry,
  listNewcArchive,
  type NewcMember,
  newcStream,
  writeInitramfsArchive,
} from './newc-archive.ts';
