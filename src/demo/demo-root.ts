import { randomBytes } from 'node:crypto';
import { chmod, chown, copyFile, lchown, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { findKernelFiles, STORAGE_MODULES } from '../initramfs/find-kernel-files.ts';
import type { DebianKernel } from './debian-kernel.ts';
import { busyboxApplets, staticBusyboxPath } from './demo-initrd.ts';
import type { AccountDatabase } from './demo-layout.ts';
import { copyGrubModules, serialGrubConfig } from './grub-bios.ts';
import { identityInitScript } from './identity-report.ts';

export interface Ownership {
  readonly mode: number;
  readonly uid?: number;
  readonly gid?: number;
}

/** Joins a path inside the tree being built; `inside` may start with "/". */
export function inTree(rootDir: string, inside: string): string {
  return join(rootDir, inside.replace(/^\/+/, ''));
}

/** Writes a file into the tree with an exact mode and owner (chmod after the write: umask is not ours). */
export async function putFile(rootDir: string, inside: string, content: string | Buffer, o: Ownership): Promise<void> {
  const path = inTree(rootDir, inside);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  await chown(path, o.uid ?? 0, o.gid ?? 0);
  await chmod(path, o.mode);
}

export async function putDir(rootDir: string, inside: string, o: Ownership): Promise<void> {
  const path = inTree(rootDir, inside);
  await mkdir(path, { recursive: true });
  await chown(path, o.uid ?? 0, o.gid ?? 0);
  await chmod(path, o.mode);
}

export async function putSymlink(rootDir: string, inside: string, target: string, o: Omit<Ownership, 'mode'> = {}) {
  const path = inTree(rootDir, inside);
  await mkdir(dirname(path), { recursive: true });
  await symlink(target, path);
  await lchown(path, o.uid ?? 0, o.gid ?? 0);
}

/** 32 lowercase hex digits, as systemd-machine-id-setup writes. */
export function randomMachineId(): string {
  return randomBytes(16).toString('hex');
}

export function passwdText(db: AccountDatabase): string {
  return db.accounts.map((a) => `${a.name}:x:${a.uid}:${a.gid}:${a.name}:${a.home}:${a.shell}\n`).join('');
}

export function groupText(db: AccountDatabase): string {
  return db.groups.map((g) => `${g.name}:x:${g.gid}:${(g.members ?? []).join(',')}\n`).join('');
}

/** Locked passwords everywhere but kiosk, whose (fixed, demo-only) hash makes the file look real. */
export function shadowText(db: AccountDatabase): string {
  const kioskHash =
    '$6$reimagedemo$3pT6Gk1v4mQp9o2yXK3cTq8m0yYwq1zVJb6Z7vQ9xR1s2d3f4g5h6j7k8l9m0n1b2v3c4x5z6a7s8d9f0g1h2j3';
  return db.accounts.map((a) => `${a.name}:${a.name === 'kiosk' ? kioskHash : '*'}:20400:0:99999:7:::\n`).join('');
}

export interface BusyboxRootOptions {
  readonly osVersion: string;
  readonly prettyName: string;
  readonly hostname: string;
  readonly machineId: string;
  readonly accounts: AccountDatabase;
  readonly kernel: DebianKernel;
  /** The demo initrd (see demo-initrd.ts), copied to /boot/initrd.img. */
  readonly initrdPath: string;
  /** The kernel command line GRUB passes (root=…, console=…). */
  readonly cmdline: string;
  /** Top-level paths the identity report lists with their owners and modes. */
  readonly reportPaths: readonly string[];
}

/**
 * A tiny but complete OS tree: static busybox with its applets, an account database, os-release,
 * machine-id, the identity-printing /sbin/init, and /boot with the Debian kernel, the demo
 * initrd and GRUB's grub.cfg and modules.
 */
export async function populateBusyboxRoot(rootDir: string, o: BusyboxRootOptions): Promise<void> {
  for (const dir of ['bin', 'sbin', 'etc', 'dev', 'proc', 'sys', 'run', 'kiosk', 'home', 'var/lib', 'var/log']) {
    await putDir(rootDir, dir, { mode: 0o755 });
  }
  for (const dir of ['usr/bin', 'usr/sbin', 'usr/local/bin', 'boot/grub']) await putDir(rootDir, dir, { mode: 0o755 });
  await putDir(rootDir, 'tmp', { mode: 0o1777 });
  await putDir(rootDir, 'root', { mode: 0o700 });
  await copyFile(staticBusyboxPath, inTree(rootDir, 'bin/busybox'));
  await chmod(inTree(rootDir, 'bin/busybox'), 0o755);
  for (const applet of await busyboxApplets()) await putSymlink(rootDir, `bin/${applet}`, 'busybox');
  await putFile(rootDir, 'sbin/init', identityInitScript(), { mode: 0o755 });
  await putFile(
    rootDir,
    'etc/os-release',
    [
      'NAME="Demo Kiosk OS"',
      `VERSION="${o.osVersion}"`,
      'ID=demo-kiosk',
      `VERSION_ID="${o.osVersion}"`,
      `PRETTY_NAME="${o.prettyName}"`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  await putFile(rootDir, 'etc/hostname', `${o.hostname}\n`, { mode: 0o644 });
  await putFile(rootDir, 'etc/machine-id', `${o.machineId}\n`, { mode: 0o444 });
  await putFile(rootDir, 'etc/passwd', passwdText(o.accounts), { mode: 0o644 });
  await putFile(rootDir, 'etc/group', groupText(o.accounts), { mode: 0o644 });
  const shadowGid = o.accounts.groups.find((g) => g.name === 'shadow')?.gid ?? 0;
  await putFile(rootDir, 'etc/shadow', shadowText(o.accounts), { mode: 0o640, gid: shadowGid });
  await putFile(rootDir, 'etc/reimage-demo/report-paths', `${o.reportPaths.join('\n')}\n`, { mode: 0o644 });
  await installKernel(rootDir, o.kernel);
  await copyFile(o.initrdPath, inTree(rootDir, 'boot/initrd.img'));
  await copyGrubModules(rootDir);
  await putFile(
    rootDir,
    'boot/grub/grub.cfg',
    serialGrubConfig({
      title: o.prettyName,
      kernelPath: '/boot/vmlinuz',
      initrdPath: '/boot/initrd.img',
      cmdline: o.cmdline,
    }),
    { mode: 0o644 },
  );
}

/**
 * The kernel as a Debian system installs it: /boot/vmlinuz-<release> (the short /boot/vmlinuz
 * that grub.cfg names links to it) and /lib/modules/<release>, which `reimage arm` on the running
 * OS takes by default (`uname -r`). Only the storage and filesystem modules the reimage initramfs
 * carries, with their dependencies and the modules.* index files: the whole set (~400 MB) would
 * not fit the demo's old root.
 */
async function installKernel(rootDir: string, kernel: DebianKernel): Promise<void> {
  await copyFile(kernel.vmlinuzPath, inTree(rootDir, `boot/vmlinuz-${kernel.version}`));
  await putSymlink(rootDir, 'boot/vmlinuz', `vmlinuz-${kernel.version}`);
  const files = await findKernelFiles(kernel.modulesDir, STORAGE_MODULES);
  for (const file of [...files.modules, ...files.indexFiles]) {
    const inside = `lib/modules/${kernel.version}/${file.relativePath}`;
    await mkdir(dirname(inTree(rootDir, inside)), { recursive: true });
    await copyFile(file.hostPath, inTree(rootDir, inside));
  }
}
