import assert from 'node:assert/strict';
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { accountIdRemap, readAccountFiles } from '../../src/demo/account-id-remap.ts';
import { withPlanDisk } from '../../src/demo/demo-plan.ts';
import { type DemoWorkspace, prepareDemo } from '../../src/demo/demo-session.ts';
import { bootDiskOnItsOwn, bootReimageVm, buildDemoInitramfs } from '../../src/demo/demo-vm-session.ts';
import { sha256OfFile, withMountedPartitions, xattrDump } from '../helpers/mounted-disk.ts';

// End to end under QEMU (TCG): the Debian kernel boots the project's initramfs against the demo
// disk, the runner reimages it, then the disk boots on its own (SeaBIOS -> its GRUB -> new OS).
const signal = AbortSignal.timeout(25 * 60_000);

function collect(): { lines: string[]; onLine: (line: string) => void } {
  const lines: string[] = [];
  return { lines, onLine: (line) => lines.push(line) };
}

describe('reimage under QEMU, end to end', () => {
  let workspace: DemoWorkspace;
  let planText = '';

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-e2e');
    planText = withPlanDisk(await readFile(workspace.fixtures.planPath, 'utf8'), '/dev/vda');
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  async function expectRefusedAndUnchanged(name: string, editedPlan: string, expected: RegExp): Promise<void> {
    await runCommand('cp', ['--sparse=always', workspace.fixtures.oldDiskPath, workspace.diskPath]);
    const before = await sha256OfFile(workspace.diskPath);
    const initramfs = await buildDemoInitramfs(workspace, editedPlan, silentLogger, signal);
    const serial = collect();
    const vm = await bootReimageVm(workspace, initramfs.path, serial.onLine, signal);
    const text = serial.lines.join('\n');
    assert.match(text, expected, `${name}: the console shows why`);
    assert.match(text, /nothing on the disk was changed/i, `${name}: the console says the disk is untouched`);
    assert.equal(vm.ending, 'reboot', `${name}: the machine reboots into its old OS`);
    assert.equal(await sha256OfFile(workspace.diskPath), before, `${name}: the disk is bit-for-bit unchanged`);
  }

  it('a wrong image digest leaves the disk bit-for-bit unchanged and reboots', async () => {
    const wrong = planText.replace(/sha256: [0-9a-f]{64}/, `sha256: ${'e'.repeat(64)}`);
    await expectRefusedAndUnchanged('wrong digest', wrong, /REIMAGE_IMAGE_DIGEST_MISMATCH/);
  });

  it('a missing required retained path leaves the disk bit-for-bit unchanged and reboots', async () => {
    const missing = planText.replace('- /etc/hostname', '- /etc/no-such-identity-file');
    await expectRefusedAndUnchanged('missing path', missing, /\/etc\/no-such-identity-file/);
  });

  it('reimages the disk, which then boots by itself into the new OS with the old identity', async () => {
    await runCommand('cp', ['--sparse=always', workspace.fixtures.oldDiskPath, workspace.diskPath]);
    const initramfs = await buildDemoInitramfs(workspace, planText, silentLogger, signal);
    const serial = collect();
    const vm = await bootReimageVm(workspace, initramfs.path, serial.onLine, signal);
    assert.equal(
      vm.ending,
      'poweroff',
      `the run finishes with the plan's poweroff:\n${serial.lines.slice(-40).join('\n')}`,
    );
    assert.match(serial.lines.join('\n'), /reimage complete/);

    const boot = await bootDiskOnItsOwn(workspace, () => {}, signal);
    const identity = boot.identity;
    assert.ok(identity, `the new OS printed its identity:\n${boot.serialLog.slice(-3000)}`);
    const old = workspace.fixtures.oldIdentity;
    assert.equal(identity.osVersion, workspace.fixtures.newOsVersion);
    assert.equal(identity.machineId, old.machineId);
    assert.deepEqual(identity.sshHostKeySha256, old.sshHostKeySha256);
    assert.equal(identity.reportJsonPresent, true);

    // Owners and modes, as the new OS itself sees them, against the old disk's (ids mapped by name).
    await withMountedPartitions(workspace.fixtures.oldDiskPath, [5], async ([oldRoot = '']) => {
      await withMountedPartitions(workspace.diskPath, [2, 6], async ([newRoot = '', kiosk = '']) => {
        // The ids the owners should have moved to, from the two roots' own account databases.
        const remap = accountIdRemap(await readAccountFiles(oldRoot), await readAccountFiles(newRoot));
        assert.ok(
          remap.uid.size > 0 && remap.gid.size > 0,
          'the demo gives accounts new ids, so the mapping is tested',
        );
        assert.ok(identity.entries.length > 10);
        for (const entry of identity.entries) {
          const oldStat = await lstat(join(oldRoot, entry.path));
          assert.equal(entry.mode, (oldStat.mode & 0o7777).toString(8), `mode of ${entry.path}`);
          assert.equal(entry.uid, remap.uid.get(oldStat.uid) ?? oldStat.uid, `owner of ${entry.path}`);
          assert.equal(entry.gid, remap.gid.get(oldStat.gid) ?? oldStat.gid, `group of ${entry.path}`);
        }
        // Extended attributes (user.*, security.capability), read on the host from both disks.
        const attributePaths = ['etc/kiosk', 'var/lib/kiosk', 'usr/local/bin', 'etc/ssh', 'etc/pki'];
        assert.equal(await xattrDump(newRoot, attributePaths), await xattrDump(oldRoot, attributePaths));
        const report = JSON.parse(await readFile(join(kiosk, 'log/report.json'), 'utf8')) as { result: string };
        assert.equal(report.result, 'ok');
        assert.match(await readFile(join(kiosk, 'log/reimage.log'), 'utf8'), /verified \d+ retained entries/);
      });
    });
  });
});
