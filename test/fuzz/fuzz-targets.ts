import type { FuzzTarget } from './fuzz-target.ts';
import { blockMapTarget } from './targets/block-map-target.ts';
import { initramfsFileTarget } from './targets/initramfs-file-target.ts';
import { newcArchiveTarget } from './targets/newc-archive-target.ts';
import { paxRecordsTarget } from './targets/pax-records-target.ts';
import { planTarget } from './targets/plan-target.ts';
import { createReadBundleTarget } from './targets/read-bundle-target.ts';
import { recoveryCmdlineTarget } from './targets/recovery-cmdline-target.ts';
import { refugeHeaderTarget } from './targets/refuge-header-target.ts';
import { tarHeaderTarget } from './targets/tar-header-target.ts';
import { createTarReaderTarget } from './targets/tar-reader-target.ts';

/** Every parser of untrusted input, by name. Targets that need a scratch file are made on demand. */
export const FUZZ_TARGETS: Readonly<Record<string, () => FuzzTarget>> = {
  'pax-records': () => paxRecordsTarget,
  'tar-header': () => tarHeaderTarget,
  'tar-reader': createTarReaderTarget,
  'read-bundle': createReadBundleTarget,
  'block-map': () => blockMapTarget,
  'newc-archive': () => newcArchiveTarget,
  'initramfs-file': () => initramfsFileTarget,
  plan: () => planTarget,
  'refuge-header': () => refugeHeaderTarget,
  'recovery-cmdline': () => recoveryCmdlineTarget,
};
