import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { oldRootPartition } from '../../src/demo/demo-layout.ts';
import { type DemoWorkspace, writeDemoPlan } from '../../src/demo/demo-session.ts';
import { attachLoopDevice, mountReadWrite } from '../../src/disk/index.ts';
import { type CliResult, runReimage } from './run-cli.ts';

/**
 * `reimage arm` of the workspace's disk image, offline, with the demo's Debian kernel and modules;
 * its plan names the VM's /dev/vda (only a hint for the recovery initramfs). `extra` options go
 * before the rest (`--json`, `--check`).
 */
export async function armDemoDisk(workspace: DemoWorkspace, extra: readonly string[] = []): Promise<CliResult> {
  const planPath = await writeDemoPlan(workspace, '/dev/vda', join(workspace.dir, 'plan.yaml'));
  const kernel = workspace.fixtures.kernel;
  return runReimage(
    [
      'arm',
      ...extra,
      '--plan',
      planPath,
      '--disk',
      workspace.diskPath,
      '--kernel',
      kernel.vmlinuzPath,
      '--modules',
      kernel.modulesDir,
    ],
    { timeoutMs: 30 * 60_000 },
  );
}

/**
 * After an arm, the machine loses a file the demo plan requires (/etc/hostname in the old root):
 * the armed run's capture then refuses, before the disk is touched (the refusal tests).
 */
export async function removeRequiredOldFile(workspace: DemoWorkspace): Promise<void> {
  const loop = await attachLoopDevice(workspace.diskPath);
  try {
    const root = await mountReadWrite(`${loop.device}p${oldRootPartition}`, join(workspace.dir, 'old-root'));
    try {
      await rm(join(root.dir, 'etc/hostname'));
    } finally {
      await root.unmount();
    }
  } finally {
    await loop.detach();
  }
}
