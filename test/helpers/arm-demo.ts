import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { oldRootPartition } from '../../src/demo/demo-layout.ts';
import { type DemoWorkspace, writeDemoPlan } from '../../src/demo/demo-session.ts';
import type { IdentityReport } from '../../src/demo/identity-report.ts';
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

/** The boot printed the new OS's identity report, with the old machine-id and SSH host keys. */
export function assertNewOsWithOldIdentity(
  boot: { readonly identity: IdentityReport | undefined; readonly serialLog: string },
  workspace: DemoWorkspace,
): void {
  const identity = boot.identity;
  assert.ok(identity, `the new OS printed its identity:\n${boot.serialLog.slice(-3000)}`);
  assert.equal(identity.osVersion, workspace.fixtures.newOsVersion);
  assert.equal(identity.machineId, workspace.fixtures.oldIdentity.machineId);
  assert.deepEqual(identity.sshHostKeySha256, workspace.fixtures.oldIdentity.sshHostKeySha256);
}
