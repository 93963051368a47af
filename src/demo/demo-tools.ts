import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';

/** The system tools the demo fixtures build needs, each with the Debian package that ships it. */
export const demoBuildTools: Readonly<Record<string, string>> = {
  sfdisk: 'fdisk',
  'mkfs.ext4': 'e2fsprogs',
  'ssh-keygen': 'openssh-client',
  openssl: 'openssl',
  setfacl: 'acl',
  setfattr: 'attr',
  setcap: 'libcap2-bin',
  'grub-mkimage': 'grub-common',
  bmaptool: 'bmap-tools',
  zstd: 'zstd',
  busybox: 'busybox-static',
  'apt-get': 'apt',
  dpkg: 'dpkg',
  depmod: 'kmod',
};

/** Files the build reads that no tool on PATH stands for. */
const demoBuildFiles: Readonly<Record<string, string>> = {
  '/usr/lib/grub/i386-pc/boot.img': 'grub-pc-bin',
  '/bin/busybox': 'busybox-static',
};

async function onPath(tool: string): Promise<boolean> {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (dir === '') continue;
    try {
      await access(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** The Debian packages missing for the demo build (empty when all is there), sorted, no repeats. */
export async function missingDemoPackages(): Promise<string[]> {
  const missing = new Set<string>();
  for (const [tool, debianPackage] of Object.entries(demoBuildTools)) {
    if (!(await onPath(tool))) missing.add(debianPackage);
  }
  for (const [file, debianPackage] of Object.entries(demoBuildFiles)) {
    try {
      await access(file, constants.R_OK);
    } catch {
      missing.add(debianPackage);
    }
  }
  return [...missing].sort();
}

/** Throws REIMAGE_DEMO_TOOLS_MISSING naming the packages to install, before any work starts. */
export async function checkDemoTools(): Promise<void> {
  const missing = await missingDemoPackages();
  if (missing.length === 0) return;
  throw new ReimageError(
    'REIMAGE_DEMO_TOOLS_MISSING',
    `Building the demo disks needs these Debian packages: ${missing.join(' ')}. Install them with "apt-get install ${missing.join(' ')}" and try again.`,
    { evidence: { expected: 'installed', actual: 'missing', packages: missing } },
  );
}
