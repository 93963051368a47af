import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ArmReport, ArmStatus } from '../../../src/arm/index.ts';
import { decodeRefugeHeader, mapImageFile, REFUGE_HEADER_BYTES } from '../../../src/boot/index.ts';
import { silentLogger } from '../../../src/core/logger.ts';
import { runCommand } from '../../../src/core/run-command.ts';
import { type DemoWorkspace, prepareDemo, writeDemoPlan } from '../../../src/demo/demo-session.ts';
import { sha256OfFile, withMountedPartitions } from '../../helpers/mounted-disk.ts';
import { runReimage } from '../../helpers/run-cli.ts';

// `reimage arm` offline against the demo's old disk image (msdos, the old root on p5 holding the
// new image), with the Debian kernel the demo boots: the checks, --check, the refuge, LBA 0,
// status, disarm. Booting the armed disk is test/e2e/arm-boot.test.ts.

const ARM_TIMEOUT_MS = 10 * 60_000;

async function sector0(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const sector = Buffer.alloc(512);
    await file.read(sector, 0, 512, 0);
    return sector;
  } finally {
    await file.close();
  }
}

describe('reimage arm, offline, on a disk image file', () => {
  let workspace: DemoWorkspace;
  let planPath = '';
  let initramfsPath = '';
  let pristineDigest = '';
  let pristineSector0: Buffer;
  let kernelArgs: string[] = [];

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-arm-offline');
    // The plan's disk is only a hint for the recovery initramfs (the VM's disk); --disk is the file.
    planPath = await writeDemoPlan(workspace, '/dev/vda', join(workspace.dir, 'plan.yaml'));
    const kernel = workspace.fixtures.kernel;
    kernelArgs = ['--kernel', kernel.vmlinuzPath, '--modules', kernel.modulesDir];
    initramfsPath = join(workspace.dir, 'recovery-initramfs.img');
    const built = runReimage(
      ['initramfs', 'build', '--plan', planPath, '--modules', kernel.modulesDir, '--out', initramfsPath],
      { timeoutMs: ARM_TIMEOUT_MS },
    );
    assert.equal(built.exitCode, 0, built.stderr);
    pristineDigest = await sha256OfFile(workspace.diskPath);
    pristineSector0 = await sector0(workspace.diskPath);
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  function arm(plan: string, ...extra: string[]) {
    return runReimage(
      ['arm', '--plan', plan, '--disk', workspace.diskPath, ...kernelArgs, '--initramfs', initramfsPath, ...extra],
      {
        timeoutMs: ARM_TIMEOUT_MS,
      },
    );
  }

  function status(): ArmStatus {
    const result = runReimage(['status', '--disk', workspace.diskPath, '--json']);
    assert.equal(result.exitCode, 0, result.stderr);
    return JSON.parse(result.stdout) as ArmStatus;
  }

  async function planWith(name: string, edit: (text: string) => string): Promise<string> {
    const file = join(workspace.dir, `${name}.yaml`);
    await writeFile(file, edit(await readFile(planPath, 'utf8')));
    return file;
  }

  it('refuses a wrong image digest, a missing retained path and a missing --kernel, leaving the disk bit for bit', async () => {
    const wrong = await planWith('wrong', (text) => text.replace(/sha256: [0-9a-f]{64}/, `sha256: ${'e'.repeat(64)}`));
    let result = arm(wrong);
    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /REIMAGE_IMAGE_DIGEST_MISMATCH/);
    assert.match(result.stderr, /untouched/);

    const missing = await planWith('missing', (text) =>
      text.replace('- /etc/hostname', '- /etc/no-such-identity-file'),
    );
    result = arm(missing);
    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /\/etc\/no-such-identity-file/);

    result = runReimage(['arm', '--plan', planPath, '--disk', workspace.diskPath]);
    assert.equal(result.exitCode, 2, result.stderr);
    assert.match(result.stderr, /REIMAGE_ARM_OFFLINE_NEEDS_KERNEL/);

    result = arm(planPath, '--reboot');
    assert.equal(result.exitCode, 2, result.stderr);
    assert.match(result.stderr, /disk image file: there is no machine to reboot/);

    assert.equal(await sha256OfFile(workspace.diskPath), pristineDigest);
  });

  it('--check chooses the refuge and changes nothing', async () => {
    const result = arm(planPath, '--check', '--json');
    assert.equal(result.exitCode, 0, result.stderr);
    const report = JSON.parse(result.stdout) as ArmReport;
    assert.equal(report.armed, false);
    assert.equal(report.disk.offline, true);
    assert.ok(report.needBytes > report.initramfsSizeBytes + report.image.compressedSizeBytes);
    const p5 = report.candidates.find((candidate) => candidate.partition === 5);
    assert.ok(p5 !== undefined && (p5.usableBytes ?? 0) >= report.needBytes, JSON.stringify(report.candidates));
    // The extended partition holds no filesystem: named, not used.
    assert.ok(report.candidates.some((candidate) => candidate.refused !== undefined));
    assert.equal(await sha256OfFile(workspace.diskPath), pristineDigest);
    assert.equal(status().state, 'not-armed');
  });

  it('arms: refuge outside the new image, LBA 0 boot code only, status armed; disarm undoes it', async () => {
    const result = arm(planPath, '--json');
    assert.equal(result.exitCode, 0, result.stderr);
    const report = JSON.parse(result.stdout) as ArmReport;
    assert.equal(report.armed, true);
    assert.ok(report.refuge !== undefined);

    const armedSector0 = await sector0(workspace.diskPath);
    assert.ok(armedSector0.subarray(440).equals(pristineSector0.subarray(440)), 'bytes 440-511 kept');
    assert.ok(!armedSector0.subarray(0, 440).equals(pristineSector0.subarray(0, 440)), 'boot code replaced');

    const armed = status();
    assert.equal(armed.state, 'armed', JSON.stringify(armed));
    assert.deepEqual(armed.refuge?.damagedItems, []);
    assert.equal(armed.refuge?.coreLba, report.refuge.coreLba);

    // Every byte of the refuge is one the new image's filesystems leave alone.
    const decoded = join(workspace.dir, 'new.raw');
    await runCommand('zstd', ['-d', '-f', '-q', workspace.fixtures.newImagePath, '-o', decoded]);
    const map = await mapImageFile(decoded);
    const header = await readHeaderRanges(workspace.diskPath, armed);
    for (const range of header) {
      for (const mapped of map.ranges) {
        const overlap =
          range.offsetBytes < mapped.offsetBytes + mapped.lengthBytes &&
          mapped.offsetBytes < range.offsetBytes + range.lengthBytes;
        assert.ok(
          !overlap,
          `refuge range ${range.offsetBytes}+${range.lengthBytes} overlaps the map at ${mapped.offsetBytes}`,
        );
      }
    }

    // The refuge file is immutable and the old filesystem is clean around it.
    await withMountedPartitions(workspace.diskPath, [5], async ([root = '']) => {
      const attributes = await runCommand('lsattr', ['-d', join(root, 'reimage-refuge')]);
      assert.match(attributes.stdout.split(' ')[0] ?? '', /i/);
    });

    const again = arm(planPath);
    assert.equal(again.exitCode, 3, again.stderr);
    assert.match(again.stderr, /REIMAGE_ALREADY_ARMED/);

    const disarmed = runReimage(['disarm', '--disk', workspace.diskPath]);
    assert.equal(disarmed.exitCode, 0, disarmed.stderr);
    assert.ok((await sector0(workspace.diskPath)).equals(pristineSector0), 'LBA 0 is the old one again');
    assert.equal(status().state, 'not-armed');
    await withMountedPartitions(workspace.diskPath, [5], async ([root = '']) => {
      assert.equal(existsSync(join(root, 'reimage-refuge')), false, 'the refuge file is gone');
    });
  });

  it('an arm whose LBA 0 was rewritten since (a boot loader install) is damaged, and disarm removes its refuge', async () => {
    const result = arm(planPath, '--json');
    assert.equal(result.exitCode, 0, result.stderr);
    const file = await open(workspace.diskPath, 'r+');
    try {
      await file.write(pristineSector0, 0, 512, 0);
    } finally {
      await file.close();
    }
    const state = status();
    assert.equal(state.state, 'damaged', JSON.stringify(state));
    assert.match(state.why ?? '', /a refuge is on partition 5 .*rewrote it/);
    const disarmed = runReimage(['disarm', '--disk', workspace.diskPath]);
    assert.equal(disarmed.exitCode, 0, disarmed.stderr);
    assert.ok((await sector0(workspace.diskPath)).equals(pristineSector0), 'LBA 0 left as it was');
    await withMountedPartitions(workspace.diskPath, [5], async ([root = '']) => {
      assert.equal(existsSync(join(root, 'reimage-refuge')), false, 'the refuge file is gone');
    });
    assert.equal(status().state, 'not-armed');
  });

  it('status says damaged when a refuge item no longer matches its digest', async () => {
    const result = arm(planPath, '--json');
    assert.equal(result.exitCode, 0, result.stderr);
    const armed = status();
    const ranges = await readHeaderRanges(workspace.diskPath, armed, 'image');
    const first = ranges[0];
    assert.ok(first !== undefined);
    const file = await open(workspace.diskPath, 'r+');
    try {
      const byte = Buffer.alloc(1);
      await file.read(byte, 0, 1, first.offsetBytes + 100);
      byte[0] = (byte[0] ?? 0) ^ 0xff;
      await file.write(byte, 0, 1, first.offsetBytes + 100);
    } finally {
      await file.close();
    }
    const damaged = status();
    assert.equal(damaged.state, 'damaged');
    assert.deepEqual(damaged.refuge?.damagedItems, ['image']);
    const disarmed = runReimage(['disarm', '--disk', workspace.diskPath]);
    assert.equal(disarmed.exitCode, 0, disarmed.stderr);
  });
});

/** The refuge's byte ranges (every item, or one), read from its header the way status finds it. */
async function readHeaderRanges(
  diskPath: string,
  status: ArmStatus,
  only?: string,
): Promise<{ offsetBytes: number; lengthBytes: number }[]> {
  assert.ok(status.refuge !== undefined);
  const file = await open(diskPath, 'r');
  try {
    const bytes = Buffer.alloc(REFUGE_HEADER_BYTES);
    await file.read(bytes, 0, bytes.length, status.refuge.journalOffsetBytes + 8192);
    const header = decodeRefugeHeader(bytes);
    return header.items.filter((item) => only === undefined || item.name === only).flatMap((item) => item.ranges);
  } finally {
    await file.close();
  }
}
