import { join } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { resolveModuleClosure } from '../initramfs/module-closure.ts';
import { type ArchiveEntry, writeInitramfsArchive } from '../initramfs/newc-archive.ts';
import type { DebianKernel } from './debian-kernel.ts';
import { demoInitrdModules } from './demo-layout.ts';

/** Debian's busybox-static installs this statically linked binary. */
export const staticBusyboxPath = '/bin/busybox';

/** Kernel command-line parameter naming the data partition the demo initrd mounts at /kiosk. */
export const kioskCmdlineParameter = 'reimage_demo.kiosk';

/**
 * The demo OSes' /init: load the storage and ext4 modules, wait for the root named by `root=`
 * (LABEL=…, UUID=… or a device), mount it and the kiosk data partition read-only, switch_root.
 * Any failure prints a marked line and powers off, so a test never waits for a hung guest.
 */
export function demoInitScript(): string {
  return `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "REIMAGE-DEMO INITRD FAILED: $*"; sleep 1; poweroff -f; }
while IFS= read -r module; do
  insmod "/lib/modules/$module" || echo "reimage-demo initrd: insmod $module failed"
done < /etc/modules-order
root=
kiosk=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root=\${arg#root=} ;;
    ${kioskCmdlineParameter}=*) kiosk=\${arg#${kioskCmdlineParameter}=} ;;
  esac
done
[ -n "$root" ] || fail "no root= on the kernel command line"
resolve() {
  case "$1" in
    LABEL=*|UUID=*) findfs "$1" 2>/dev/null ;;
    *) [ -b "$1" ] && echo "$1" ;;
  esac
}
dev=
i=0
while [ $i -lt 300 ]; do
  dev=$(resolve "$root")
  [ -n "$dev" ] && break
  sleep 0.1
  i=$((i + 1))
done
[ -n "$dev" ] || fail "the root $root did not appear within 30 s"
echo "reimage-demo initrd: root $root is $dev"
mkdir -p /newroot
mount -t ext4 -o ro "$dev" /newroot || fail "cannot mount $dev"
if [ -n "$kiosk" ]; then
  kdev=$(resolve "$kiosk")
  if [ -n "$kdev" ] && mount -t ext4 -o ro "$kdev" /newroot/kiosk; then
    echo "reimage-demo initrd: $kiosk ($kdev) mounted at /kiosk"
  else
    echo "reimage-demo initrd: warning: $kiosk not mounted at /kiosk"
  fi
fi
umount /proc /sys /dev
exec switch_root /newroot /sbin/init
fail "switch_root failed"
`;
}

/** The busybox applet names, without "busybox" itself (linking it over the binary would break it). */
export async function busyboxApplets(busyboxPath: string = staticBusyboxPath): Promise<string[]> {
  const { stdout } = await runCommand(busyboxPath, ['--list']);
  return stdout
    .split('\n')
    .map((name) => name.trim())
    .filter((name) => name !== '' && name !== 'busybox' && !name.includes('/'));
}

/**
 * Builds the small initrd both demo OSes boot with: static busybox, the modules to reach a virtio
 * ext4 root (with their closure from modules.dep), and the /init above. Returns its size.
 */
export async function buildDemoInitrd(
  kernel: DebianKernel,
  outPath: string,
  signal?: AbortSignal,
): Promise<{ sizeBytes: number; modules: readonly string[] }> {
  const closure = await resolveModuleClosure(kernel.modulesDir, demoInitrdModules);
  if (closure.missing.length > 0) {
    throw new ReimageError(
      'REIMAGE_DEMO_MODULES_MISSING',
      `The Debian kernel ${kernel.version} has no module for ${closure.missing.join(', ')}; the demo initrd cannot reach its disk. Delete the kernel cache and rebuild.`,
      {
        evidence: { path: kernel.modulesDir, expected: demoInitrdModules.join(','), actual: closure.missing.join(',') },
      },
    );
  }
  const entries: ArchiveEntry[] = [
    { path: 'bin/busybox', kind: 'file', mode: 0o755, sourcePath: staticBusyboxPath },
    { path: 'init', kind: 'file', mode: 0o755, data: Buffer.from(demoInitScript()) },
    { path: 'dev/console', kind: 'char-device', mode: 0o600, deviceMajor: 5, deviceMinor: 1 },
    { path: 'etc/modules-order', kind: 'file', mode: 0o644, data: Buffer.from(`${closure.modules.join('\n')}\n`) },
  ];
  for (const dir of ['proc', 'sys', 'newroot']) entries.push({ path: dir, kind: 'directory', mode: 0o755 });
  for (const applet of await busyboxApplets()) {
    entries.push({ path: `bin/${applet}`, kind: 'symlink', mode: 0o777, linkTarget: 'busybox' });
  }
  for (const module of closure.modules) {
    entries.push({
      path: `lib/modules/${module}`,
      kind: 'file',
      mode: 0o644,
      sourcePath: join(kernel.modulesDir, module),
    });
  }
  const { sizeBytes } = await writeInitramfsArchive(entries, outPath, { compression: 'zstd', signal });
  return { sizeBytes, modules: closure.modules };
}
