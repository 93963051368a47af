import { chmod, copyFile, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { attachLoopDevice, mountReadWrite, resolvePartition } from '../disk/index.ts';

/** Where the operator's copy puts things on the old root (as `scp` to root's home would). */
export const OPERATOR_RUNTIME_ARCHIVE = '/root/reimage-runtime.tar.gz';
export const OPERATOR_PLAN = '/root/plan.yaml';
/** The old OS's init runs this when it is there (see identityInitScript). */
export const OPERATOR_SCRIPT = '/etc/rc.local';
/** Lines the operator's script prints, for the harness to follow. */
export const OPERATOR_ARM_STARTED = 'operator: reimage arm --plan';
export const OPERATOR_UNPACK_STARTED = 'operator: unpacking the reimage runtime';

/**
 * What the operator runs on the old machine, as docs/arm.md says: the runtime unpacked into a
 * tmpfs (it takes no room in the old filesystems, which the refuge needs; the copy on disk is
 * removed first thing so its room comes back), arm's scratch there too (TMPDIR), then
 * `reimage arm` with the running OS's defaults (the plan's disk, the running kernel) and
 * `--reboot`. busybox `date +%s` stamps let the log show how long each step took.
 */
export function operatorScript(): string {
  return `#!/bin/sh
# The operator's commands on the old machine (the demo put the files here, as scp would).
set -e
t0=$(date +%s)
echo "${OPERATOR_UNPACK_STARTED} into a tmpfs"
mkdir -p /run/reimage
mount -t tmpfs -o size=1200m,mode=0700 reimage-runtime /run/reimage
tar -xzf ${OPERATOR_RUNTIME_ARCHIVE} -C /run/reimage
rm -f ${OPERATOR_RUNTIME_ARCHIVE}
sync
mkdir -p /run/reimage/tmp
t1=$(date +%s)
echo "operator: runtime unpacked in $((t1 - t0)) s; $(du -sm /run/reimage | cut -f1) MiB in RAM, none on disk"
echo "${OPERATOR_ARM_STARTED} ${OPERATOR_PLAN} --reboot"
TMPDIR=/run/reimage/tmp /run/reimage/bin/reimage arm --plan ${OPERATOR_PLAN} --reboot
echo "operator: reimage arm ended after $(($(date +%s) - t1)) s"
`;
}

/**
 * Puts the operator's files onto the old root of a disk image (through a loop device, as the
 * operator's scp would put them on the running machine): the runtime archive, the plan, and the
 * script the old OS's init runs at its next boot.
 */
export async function stageOperatorRun(o: {
  diskPath: string;
  oldRootPartition: number;
  runtimeArchivePath: string;
  planText: string;
  workDir: string;
}): Promise<{ runtimeArchiveBytes: number }> {
  const loop = await attachLoopDevice(o.diskPath);
  try {
    const device = await resolvePartition(loop.device, o.oldRootPartition);
    const root = await mountReadWrite(device, join(o.workDir, 'operator-old-root'));
    try {
      const at = (inside: string): string => join(root.dir, inside);
      await mkdir(at('/root'), { recursive: true });
      await copyFile(o.runtimeArchivePath, at(OPERATOR_RUNTIME_ARCHIVE));
      await writeFile(at(OPERATOR_PLAN), o.planText, { mode: 0o600 });
      await writeFile(at(OPERATOR_SCRIPT), operatorScript());
      await chmod(at(OPERATOR_SCRIPT), 0o755);
    } finally {
      await root.unmount();
    }
  } finally {
    await loop.detach();
  }
  return { runtimeArchiveBytes: (await stat(o.runtimeArchivePath)).size };
}
