import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { type DemoWorkspace, prepareDemo, writeDemoPlan } from '../../src/demo/demo-session.ts';
import { bootDiskOnItsOwn } from '../../src/demo/demo-vm-session.ts';
import { runReimage } from '../helpers/run-cli.ts';

// An armed disk boots by its own BIOS path into the refuge: SeaBIOS → LBA 0's boot code → the
// recovery core.img in the refuge → the kernel and the reimage initramfs by sector ranges → the
// run; then the disk boots the new OS with the old identity.
const signal = AbortSignal.timeout(30 * 60_000);

describe('an armed disk under QEMU', () => {
  let workspace: DemoWorkspace;

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-arm-boot');
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  it('boots the recovery path from the refuge, reimages, and the new OS comes up with the old identity', async () => {
    const planPath = await writeDemoPlan(workspace, '/dev/vda', join(workspace.dir, 'plan.yaml'));
    const kernel = workspace.fixtures.kernel;
    const armed = runReimage(
      [
        'arm',
        '--plan',
        planPath,
        '--disk',
        workspace.diskPath,
        '--kernel',
        kernel.vmlinuzPath,
        '--modules',
        kernel.modulesDir,
      ],
      { timeoutMs: 15 * 60_000 },
    );
    assert.equal(armed.exitCode, 0, armed.stderr);

    const recovery = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.match(recovery.serialLog, /reimage: recovery boot path/, 'GRUB ran the refuge core.img');
    assert.match(recovery.serialLog, /reimage\.refuge=\d+\+\d+/, 'the kernel got the refuge on its command line');
    assert.match(
      recovery.serialLog,
      /reimage complete \(armed run\)/,
      `the run finished:\n${recovery.serialLog.slice(-3000)}`,
    );
    for (const step of ['1/6 capture', '2/6 write', '3/6 restore', '4/6 wipe', '5/6 commit', '6/6 release']) {
      assert.match(recovery.serialLog, new RegExp(`step ${step}`), `the armed run went through step ${step}`);
    }
    assert.equal(recovery.ending, 'poweroff');

    const boot = await bootDiskOnItsOwn(workspace, () => {}, signal);
    const identity = boot.identity;
    assert.ok(identity, `the new OS printed its identity:\n${boot.serialLog.slice(-3000)}`);
    assert.equal(identity.osVersion, workspace.fixtures.newOsVersion);
    assert.equal(identity.machineId, workspace.fixtures.oldIdentity.machineId);
    assert.deepEqual(identity.sshHostKeySha256, workspace.fixtures.oldIdentity.sshHostKeySha256);
  });
});
