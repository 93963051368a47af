import { lstat, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { loadModuleIndex, moduleClosure } from './module-closure.ts';

/** Storage and filesystem drivers carried when this kernel has them (docs/adr/0302). */
export const STORAGE_MODULES: readonly string[] = [
  'ahci',
  'sd_mod',
  'nvme',
  'virtio_blk',
  'virtio_pci',
  'virtio_scsi',
  'usb_storage',
  'uas',
  'xhci_pci',
  'ehci_pci',
  'mmc_block',
  'sdhci_pci',
  'ext4',
  'xfs',
  'vfat',
  'nls_cp437',
  'nls_iso8859_1',
  'crc32c_generic',
  // The armed run reaches the new image's partitions through loop devices at their offsets
  // (the disk's LBA 0 keeps the old table until the commit).
  'loop',
];

/** A file of lib/modules/<version>, relative to it. */
export interface KernelFile {
  readonly relativePath: string;
  readonly hostPath: string;
  readonly sizeBytes: number;
}

export interface KernelFiles {
  readonly version: string;
  /** The module files to carry, dependencies first. */
  readonly modules: readonly KernelFile[];
  /** Requested names this kernel has neither as modules nor built in. */
  readonly missing: readonly string[];
  /** The modules.* index files modprobe reads. */
  readonly indexFiles: readonly KernelFile[];
}

/** The requested modules with their closure from modules.dep, and the index files, of one kernel. */
export async function findKernelFiles(modulesDir: string, requested: readonly string[]): Promise<KernelFiles> {
  const closure = moduleClosure(await loadModuleIndex(modulesDir), requested);
  const describe = async (relativePath: string): Promise<KernelFile> => {
    const hostPath = join(modulesDir, relativePath);
    return { relativePath, hostPath, sizeBytes: (await lstat(hostPath)).size };
  };
  const modules: KernelFile[] = [];
  for (const modulePath of closure.modules) modules.push(await describe(modulePath));
  const indexFiles: KernelFile[] = [];
  for (const name of (await readdir(modulesDir)).sort()) {
    if (!name.startsWith('modules.')) continue;
    if (!(await lstat(join(modulesDir, name))).isFile()) continue;
    indexFiles.push(await describe(name));
  }
  return { version: basename(modulesDir), modules, missing: closure.missing, indexFiles };
}
