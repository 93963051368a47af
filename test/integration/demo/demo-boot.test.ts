import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../../../src/core/run-command.ts';
import { type DemoFixtures, ensureDemoFixtures } from '../../../src/demo/demo-fixtures.ts';
import { parseIdentityReport } from '../../../src/demo/identity-report.ts';
import { runVm } from '../../../src/demo/qemu-vm.ts';
import { requireTools } from './system-tools.ts';

/** Generous: a TCG boot through GRUB takes ~10 s here; a slow CI machine may take several times that. */
const bootTimeoutMs = 180_000;

describe('demo disks boot by their own bootloader under QEMU', () => {
  let fixtures: DemoFixtures;
  let scratch: string;

  before(async () => {
    requireTools({ 'qemu-system-x86_64': 'qemu-system-x86', zstd: 'zstd', cp: 'coreutils' });
    fixtures = await ensureDemoFixtures();
    scratch = await mkdtemp(join(tmpdir(), 'reimage-demo-boot-'));
  });

  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  it('boots the new image, written onto a scratch disk, into the new OS', async () => {
    const diskPath = join(scratch, 'new-disk.img');
    await runCommand('zstd', ['-q', '-d', '-f', fixtures.newImagePath, '-o', diskPath]);
    // A disk bigger than the image, as the real target is.
    await truncate(diskPath, 512 * 1024 * 1024);
    const result = await runVm({ diskPath, timeoutMs: bootTimeoutMs, memoryMiB: 512, cpuCount: 1 });
    const report = parseIdentityReport(result.serialLog);
    assert.ok(report, `the new OS printed its identity (ending ${result.ending}):\n${result.serialLog.slice(-3000)}`);
    assert.equal(report.osVersion, fixtures.newOsVersion);
    assert.equal(report.machineId, fixtures.newImageMachineId);
    assert.deepEqual(report.sshHostKeySha256, {}, 'the new image ships no host keys of its own');
    assert.equal(report.reportJsonPresent, false);
    assert.equal(result.ending, 'poweroff');
  });

  it('boots the old disk into the old OS, which sees the identity the fixtures recorded', async () => {
    const diskPath = join(scratch, 'old-disk.img');
    await runCommand('cp', ['--sparse=always', fixtures.oldDiskPath, diskPath]);
    const result = await runVm({ diskPath, timeoutMs: bootTimeoutMs, memoryMiB: 512, cpuCount: 1 });
    const report = parseIdentityReport(result.serialLog);
    assert.ok(report, `the old OS printed its identity (ending ${result.ending}):\n${result.serialLog.slice(-3000)}`);
    assert.equal(report.osVersion, fixtures.oldIdentity.osVersion);
    assert.equal(report.machineId, fixtures.oldIdentity.machineId);
    // The guest's sh computation of the fingerprints agrees with ssh-keygen on the host.
    assert.deepEqual(report.sshHostKeySha256, fixtures.oldIdentity.sshHostKeySha256);
    const kioskConf = report.entries.find((entry) => entry.path === '/etc/kiosk/kiosk.conf');
    assert.deepEqual(kioskConf, {
      mode: '640',
      uid: 1001,
      gid: 1001,
      kind: 'regular file',
      path: '/etc/kiosk/kiosk.conf',
    });
    assert.ok(report.entries.some((entry) => entry.path === '/etc/kiosk/screen layout.conf'));
  });
});
