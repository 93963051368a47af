import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Tools these tests call, with the Debian package that provides each: a missing one fails loudly. */
const TOOLS: Readonly<Record<string, string>> = {
  'mkfs.ext4': 'e2fsprogs',
  losetup: 'mount',
  mount: 'mount',
  setfacl: 'acl',
  getfacl: 'acl',
  setfattr: 'attr',
  getfattr: 'attr',
  setcap: 'libcap2-bin',
  getcap: 'libcap2-bin',
  tar: 'tar',
  mknod: 'coreutils',
};

export function requireTools(): void {
  const missing = Object.entries(TOOLS).filter(([tool]) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(`missing tools: ${missing.map(([tool, pkg]) => `${tool} (apt-get install ${pkg})`).join(', ')}`);
  }
  if (process.getuid?.() !== 0) throw new Error('these tests need root (loop devices, mounts, chown)');
}

export function sh(command: string, args: readonly string[], input?: string): string {
  return execFileSync(command, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export interface Ext4Loop {
  readonly dir: string;
  cleanup(): void;
}

/** A fresh, mounted ext4 filesystem in an image file on a loop device. */
export function makeExt4(sizeMiB = 32): Ext4Loop {
  const base = mkdtempSync(join(tmpdir(), 'reimage-retain-'));
  const image = join(base, 'fs.img');
  const dir = join(base, 'mnt');
  sh('truncate', ['-s', `${sizeMiB}M`, image]);
  // Small inodes would cap in-inode xattrs; 256 is the ext4 default and what real roots use.
  sh('mkfs.ext4', ['-q', '-F', '-I', '256', '-O', '^has_journal', image]);
  const device = sh('losetup', ['-f', '--show', image]).trim();
  let mounted = false;
  try {
    sh('mkdir', ['-p', dir]);
    sh('mount', ['-o', 'acl,user_xattr', device, dir]);
    mounted = true;
  } catch (e) {
    sh('losetup', ['-d', device]);
    rmSync(base, { recursive: true, force: true });
    throw e;
  }
  return {
    dir,
    cleanup() {
      if (mounted) sh('umount', [dir]);
      mounted = false;
      sh('losetup', ['-d', device]);
      rmSync(base, { recursive: true, force: true });
    },
  };
}
