import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { type DemoWorkspace, prepareDemo } from '../../src/demo/demo-session.ts';
import { bootDiskOnItsOwn } from '../../src/demo/demo-vm-session.ts';
import { fileContains } from '../../src/demo/power-cut-trial.ts';
import { armDemoDisk, assertNewOsWithOldIdentity, removeRequiredOldFile } from '../helpers/arm-demo.ts';
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
    const armed = await armDemoDisk(workspace);
    assert.equal(armed.exitCode, 0, armed.stderr);

    const recovery = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.match(recovery.serialLog, /reimage: recovery boot path/, 'GRUB ran the refuge core.img');
    assert.match(recovery.serialLog, /reimage\.refuge=\d+\+\d+/, 'the kernel got the refuge on its command line');
    assert.match(
      recovery.serialLog,
      /reimage complete \(armed run\)/,
      `the run finished:\n${recovery.serialLog.slice(-3000)}`,
    );
    let from = 0;
    for (const step of ['1/6 capture', '2/6 write', '3/6 restore', '4/6 wipe', '5/6 release', '6/6 commit']) {
      const at = recovery.serialLog.indexOf(`step ${step}`, from);
      assert.ok(at >= 0, `the armed run went through step ${step}, in order`);
      from = at;
    }
    assert.equal(recovery.ending, 'poweroff');

    const boot = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assertNewOsWithOldIdentity(boot, workspace);
  });

  it('a refusal in the recovery run (a required retained path gone since arm) disarms: the old OS boots again', async () => {
    await runCommand('cp', ['--sparse=always', workspace.fixtures.oldDiskPath, workspace.diskPath]);
    const pristineLba0 = await firstSector(workspace.diskPath);
    const armed = await armDemoDisk(workspace);
    assert.equal(armed.exitCode, 0, armed.stderr);
    // After the arm, the machine loses a file the plan requires (the capture will refuse).
    await removeRequiredOldFile(workspace);

    const recovery = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.match(recovery.serialLog, /REIMAGE_ARMED_RUN_REFUSED|refused before the disk was touched/);
    assert.equal(
      recovery.ending,
      'reboot',
      `the recovery run reboots into the old OS:\n${recovery.serialLog.slice(-3000)}`,
    );
    assert.ok((await firstSector(workspace.diskPath)).equals(pristineLba0), 'the old LBA 0 is back');
    // The old OS's status still tells why (from the refuge file), and disarm removes the refuge.
    const status = runReimage(['status', '--disk', workspace.diskPath, '--json']);
    assert.equal(status.exitCode, 0, status.stderr);
    const state = JSON.parse(status.stdout) as { state: string; reason?: { code: string; message: string } };
    assert.equal(state.state, 'refused', status.stdout);
    assert.match(state.reason?.message ?? '', /\/etc\/hostname/);

    const old = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.equal(old.identity?.osVersion, workspace.fixtures.oldIdentity.osVersion, 'the old OS boots');
    assert.equal(old.identity?.machineId, workspace.fixtures.oldIdentity.machineId);
    assert.equal(
      await fileContains(workspace.diskPath, Buffer.from('REIMAGE-BUNDLE\0\0', 'latin1')),
      false,
      'no bundle left',
    );
    const disarmed = runReimage(['disarm', '--disk', workspace.diskPath]);
    assert.equal(disarmed.exitCode, 0, disarmed.stderr);
    assert.equal(JSON.parse(runReimage(['status', '--disk', workspace.diskPath, '--json']).stdout).state, 'not-armed');
  });
});

async function firstSector(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const sector = Buffer.alloc(512);
    await file.read(sector, 0, 512, 0);
    return sector;
  } finally {
    await file.close();
  }
}
