import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { type DemoWorkspace, prepareDemo } from '../../src/demo/demo-session.ts';
import { bootDiskOnItsOwn, bootOldOsToArm, stageOperatorArm } from '../../src/demo/demo-vm-session.ts';
import { OPERATOR_ARM_STARTED } from '../../src/demo/operator-run.ts';
import { assertNewOsWithOldIdentity } from '../helpers/arm-demo.ts';
import { runReimage } from '../helpers/run-cli.ts';

// Arm from inside the running old OS: the old disk boots by its own GRUB (no -kernel), its init
// runs the operator's script (the portable runtime unpacked into a tmpfs, then `reimage arm
// --plan plan.yaml --reboot` with the running OS's defaults: the plan's /dev/vda, the running
// kernel and its modules), arm reboots (QEMU's -no-reboot ends the VM: that is the reboot), and
// the disk then boots into the recovery path and on into the new OS with the old identity.
// Node under software emulation is slow: the timeouts are generous.
const signal = AbortSignal.timeout(60 * 60_000);

describe('arm from the running old OS under QEMU', () => {
  let workspace: DemoWorkspace;

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-arm-live');
    await stageOperatorArm(workspace, signal);
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  it('arms inside the old OS and reboots; the disk then reimages itself and boots the new OS with the old identity', async () => {
    const old = await bootOldOsToArm(workspace, () => {}, signal);
    const tail = `\n${old.serialLog.slice(-4000)}`;
    assert.match(old.serialLog, new RegExp(OPERATOR_ARM_STARTED), `the old OS ran the operator's script${tail}`);
    assert.match(
      old.serialLog,
      /from the runtime in \/run\/reimage/,
      `arm built the initramfs from the runtime${tail}`,
    );
    assert.match(old.serialLog, /reimage arm: \/dev\/vda is armed\./, `arm armed the running disk${tail}`);
    assert.match(old.serialLog, /kernel: +\/boot\/vmlinuz-\S+ \(Linux /, `arm took the running kernel${tail}`);
    assert.match(old.serialLog, /the arm reads back whole: rebooting/, `--reboot checked the arm first${tail}`);
    assert.equal(old.ending, 'reboot', `the old OS rebooted${tail}`);
    assert.doesNotMatch(old.serialLog, /REIMAGE-DEMO IDENTITY BEGIN/, 'the old OS did not go on to power off');

    // The disk, read from outside, is armed as the old OS left it.
    const status = runReimage(['status', '--disk', workspace.diskPath, '--json']);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { state: string }).state, 'armed', status.stdout);

    const recovery = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.match(recovery.serialLog, /reimage: recovery boot path/, 'LBA 0 led to the refuge core.img');
    assert.match(
      recovery.serialLog,
      /reimage complete \(armed run\)/,
      `the armed run finished:\n${recovery.serialLog.slice(-3000)}`,
    );

    const boot = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assertNewOsWithOldIdentity(boot, workspace);
  });
});
