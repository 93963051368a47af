export { type BuildInitramfsOptions, buildInitramfs } from './build-initramfs.ts';
export { DEFAULT_LIBRARY_DIRS, type ElfDynamicInfo, readElfDynamicInfo, sharedLibraryClosure } from './elf-closure.ts';
export { findFirmware } from './find-firmware.ts';
export { STORAGE_MODULES } from './find-kernel-files.ts';
export { formatInitramfsSummary } from './format-summary.ts';
export { type HostPathLink, hostPathChain } from './host-path-chain.ts';
export { INIT_CONSOLE_LOG, INIT_PLAN_PATH, type InitScriptOptions, initScript } from './init-script.ts';
export { loadModuleIndex, type ModuleIndex, moduleClosure, resolveModuleClosure } from './module-closure.ts';
export {
  type ArchiveCompression,
  type ArchiveEntry,
  listInitramfsFile,
  listNewcArchive,
  type NewcMember,
  newcStream,
  writeInitramfsArchive,
} from './newc-archive.ts';
export { type InitramfsInputs, type InitramfsPart, type PlannedEntry, planInitramfs } from './plan-initramfs.ts';
export {
  buildPortableRuntime,
  buildPortableRuntimeArchive,
  findPortableRuntime,
  type PortableRuntimeSummary,
  parseRuntimeManifest,
  RUNTIME_BIN_DIR,
  RUNTIME_MANIFEST,
  type RuntimeManifest,
  reimageLauncherScript,
  runtimeLinkTarget,
  toolWrapperScript,
} from './portable-runtime.ts';
export { productionPackageDirs } from './production-package-dirs.ts';
export type { InitramfsPartSummary, InitramfsSummary } from './summarize-initramfs.ts';
