import { join } from 'node:path';
import { type DemoWorkspace, writeDemoPlan } from '../../src/demo/demo-session.ts';
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
