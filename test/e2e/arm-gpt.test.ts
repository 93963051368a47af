import assert from 'node:assert/strict';
import { open, stat } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { ensureGptOldDisk } from '../../src/demo/demo-fixtures.ts';
import { newRootPartition, oldRootPartition } from '../../src/demo/demo-layout.ts';
import { type DemoWorkspace, prepareDemo } from '../../src/demo/demo-session.ts';
import { bootDiskOnItsOwn } from '../../src/demo/demo-vm-session.ts';
import { fileContains } from '../../src/demo/power-cut-trial.ts';
import {
  checkRetainedBytes,
  describeStrayBytes,
  extFileDiskRanges,
  readArmedMap,
  readRetainedSecrets,
} from '../../src/demo/retained-bytes.ts';
import type { ByteRange } from '../../src/disk/index.ts';
import { armDemoDisk, assertNewOsWithOldIdentity, removeRequiredOldFile } from '../helpers/arm-demo.ts';
import { readRefugePlacement } from '../helpers/refuge-placement.ts';
import { runReimage } from '../helpers/run-cli.ts';

// The demo's old machine on a GPT table (its GRUB in a BIOS boot partition), armed offline with the
// demo plan, whose new image has an msdos table: a real case (old GPT, new msdos). The commit's one
// sector then turns the protective MBR into an msdos table; the old primary GPT (LBA 1–33) is gone
// with the new image's first MiB, and the old backup GPT at the disk's end, which the new image
// does not reach, is wiped by the armed run before the commit.
// The demo's refuge lies partly inside the new root (p2) and the new kiosk data (p6), both mounted
// read-write before the commit: the run must keep those blocks out of the new filesystems' hands.
const signal = AbortSignal.timeout(40 * 60_000);
const sectorBytes = 512;
const gptSignature = Buffer.from('EFI PART', 'latin1');

describe('a GPT old disk under QEMU', () => {
  let workspace: DemoWorkspace;
  let gptDiskPath: string;

  before(async () => {
    const msdos = await prepareDemo(silentLogger, 'test-arm-gpt');
    gptDiskPath = await ensureGptOldDisk(msdos.fixtures, { signal });
    workspace = { ...msdos, fixtures: { ...msdos.fixtures, oldDiskPath: gptDiskPath } };
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  it('the GPT old disk boots the old OS by its own GRUB from its BIOS boot partition', async () => {
    await freshCopy(workspace, gptDiskPath);
    assert.equal(await gptHeaderAt(workspace.diskPath, 1), 'valid', 'a primary GPT header');
    const boot = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.match(boot.serialLog, /Welcome to GRUB/);
    // The kernel read the GPT: no extended partition, numbers as the table names them.
    assert.match(boot.serialLog, / vda: vda1 vda2 vda3 vda5 vda6\r?\n/, boot.serialLog.slice(-3000));
    assert.equal(boot.identity?.osVersion, workspace.fixtures.oldIdentity.osVersion, boot.serialLog.slice(-3000));
    assert.equal(boot.identity?.machineId, workspace.fixtures.oldIdentity.machineId);
    assert.deepEqual(boot.identity?.sshHostKeySha256, workspace.fixtures.oldIdentity.sshHostKeySha256);
  });

  it('armed offline, it reimages by its own BIOS path; the refuge inside restored partitions is protected, then released', async () => {
    await freshCopy(workspace, gptDiskPath);
    const secrets = await readRetainedSecrets(workspace.diskPath, oldRootPartition);
    const armed = await armDemoDisk(workspace);
    assert.equal(armed.exitCode, 0, armed.stderr);
    const status = runReimage(['status', '--disk', workspace.diskPath, '--json']);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { state: string }).state, 'armed', status.stdout);

    // Where the refuge lies: inside new partitions the restore mounts read-write (checked, not assumed).
    const placement = await readRefugePlacement(workspace.diskPath);
    const protectedParts = placement.insideWritable.filter((inside) => inside.bytes > 0);
    assert.ok(protectedParts.length > 0, `the refuge lies inside a restored partition: ${JSON.stringify(placement)}`);
    const map = await readArmedMap(workspace.diskPath);
    const newLba0 = Buffer.from(map.firstSector, 'base64');
    const lastLba = (await stat(workspace.diskPath)).size / sectorBytes - 1;
    assert.equal(await gptHeaderAt(workspace.diskPath, lastLba), 'valid', 'the old backup GPT header before the run');

    const recovery = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.match(recovery.serialLog, /reimage: recovery boot path/, 'GRUB ran the refuge core.img');
    assert.match(recovery.serialLog, /reimage\.disk=gpt:[0-9a-f-]{36}/, 'the disk named by its GPT GUID');
    assert.match(recovery.serialLog, /reimage complete \(armed run\)/, recovery.serialLog.slice(-3000));
    assert.equal(recovery.ending, 'poweroff');
    for (const inside of protectedParts) {
      const line = new RegExp(`partition ${inside.number}: (\\d+) refuge blocks marked in use`).exec(
        recovery.serialLog,
      );
      assert.ok(line, `the run protected the refuge in partition ${inside.number}`);
      assert.equal(Number(line[1]), inside.bytes / 4096, `every refuge block in partition ${inside.number}`);
    }

    // The commit: the new msdos LBA 0, no protective entry, so no GPT is read from this disk again.
    const lba0 = await sectorAt(workspace.diskPath, 0);
    assert.ok(lba0.equals(newLba0), 'LBA 0 is the new image’s');
    assert.equal(hasProtectiveEntry(lba0), false);
    assert.equal(await gptHeaderAt(workspace.diskPath, 1), 'absent', 'the old primary GPT header is overwritten');
    // The old backup GPT (the new image is smaller and maps none of it) is wiped before the commit: a
    // kernel booted with `gpt` would otherwise take it over the new msdos table (boot/stale-gpt.ts).
    assert.match(recovery.serialLog, new RegExp(`wiped the old GPT header .* at byte ${lastLba * sectorBytes}`));
    assert.equal(await gptHeaderAt(workspace.diskPath, lastLba), 'absent', 'no stale backup GPT header');

    // The refuge's blocks: given back, the filesystems clean, and no restored file landed in them.
    for (const inside of protectedParts) {
      const partition = map.partitions.find((p) => p.number === inside.number);
      assert.ok(partition);
      const device = `${workspace.diskPath}?offset=${partition.startBytes}`;
      const fsck = await runCommand('e2fsck', ['-fn', device], { allowFailure: true });
      assert.equal(fsck.exitCode, 0, `partition ${inside.number} fsck clean:\n${fsck.stdout}${fsck.stderr}`);
      const badBlocks = await runCommand('dumpe2fs', ['-b', device]);
      assert.equal(badBlocks.stdout.trim(), '', `partition ${inside.number}: the refuge's blocks were released`);
    }
    const rootStart = map.partitions.find((p) => p.number === newRootPartition)?.startBytes ?? 0;
    for (const secret of secrets) {
      const restored = await extFileDiskRanges(workspace.diskPath, rootStart, secret.path);
      assert.equal(overlapping(restored, placement.ranges), false, `${secret.path} was restored outside the refuge`);
    }
    // No retained key's bytes anywhere but the restored file and the old copy the new image left alone.
    const verdict = await checkRetainedBytes({
      diskPath: workspace.diskPath,
      secrets,
      map,
      newRootPartition,
    });
    assert.ok(verdict.allowed, describeStrayBytes(verdict));
    assert.ok(verdict.occurrences.some((o) => o.place === 'restored'));

    const boot = await bootDiskOnItsOwn(workspace, () => {}, signal);
    // The kernel read the msdos table (logical partitions in < >), not the stale GPT.
    assert.match(boot.serialLog, / vda: vda1 vda2 vda3 < vda5 vda6 >\r?\n/, boot.serialLog.slice(-3000));
    assertNewOsWithOldIdentity(boot, workspace);
  });

  it('a refusal in the recovery run on GPT gives the old LBA 0 back: the old OS boots again', async () => {
    await freshCopy(workspace, gptDiskPath);
    const pristineHead = await sectorsAt(workspace.diskPath, 0, 34);
    const armed = await armDemoDisk(workspace);
    assert.equal(armed.exitCode, 0, armed.stderr);
    await removeRequiredOldFile(workspace);

    const recovery = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.match(recovery.serialLog, /REIMAGE_ARMED_RUN_REFUSED|refused before the disk was touched/);
    assert.equal(recovery.ending, 'reboot', recovery.serialLog.slice(-3000));
    assert.ok(
      (await sectorsAt(workspace.diskPath, 0, 34)).equals(pristineHead),
      'the protective MBR with the old GRUB boot code and the primary GPT are as before the arm',
    );
    const old = await bootDiskOnItsOwn(workspace, () => {}, signal);
    assert.match(old.serialLog, / vda: vda1 vda2 vda3 vda5 vda6\r?\n/);
    assert.equal(old.identity?.osVersion, workspace.fixtures.oldIdentity.osVersion, old.serialLog.slice(-3000));
    assert.equal(old.identity?.machineId, workspace.fixtures.oldIdentity.machineId);
    assert.equal(
      await fileContains(workspace.diskPath, Buffer.from('REIMAGE-BUNDLE\0\0', 'latin1')),
      false,
      'no bundle left',
    );
  });
});

async function freshCopy(workspace: DemoWorkspace, from: string): Promise<void> {
  await runCommand('cp', ['--sparse=always', from, workspace.diskPath]);
}

async function sectorsAt(path: string, lba: number, count: number): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const bytes = Buffer.alloc(count * sectorBytes);
    await file.read(bytes, 0, bytes.length, lba * sectorBytes);
    return bytes;
  } finally {
    await file.close();
  }
}

function sectorAt(path: string, lba: number): Promise<Buffer> {
  return sectorsAt(path, lba, 1);
}

/** An msdos entry of type 0xEE: what makes a kernel or GRUB look for a GPT at all. */
function hasProtectiveEntry(lba0: Buffer): boolean {
  return [0, 1, 2, 3].some((index) => lba0[446 + index * 16 + 4] === 0xee);
}

/** Whether a sector holds a GPT header, and whether its own CRC32 holds (header size at 12, CRC at 16). */
async function gptHeaderAt(path: string, lba: number): Promise<'absent' | 'valid' | 'bad-crc'> {
  const sector = await sectorAt(path, lba);
  if (!sector.subarray(0, 8).equals(gptSignature)) return 'absent';
  const headerBytes = sector.readUInt32LE(12);
  const header = Buffer.from(sector.subarray(0, headerBytes));
  const stored = header.readUInt32LE(16);
  header.writeUInt32LE(0, 16);
  return crc32(header) === stored ? 'valid' : 'bad-crc';
}

function overlapping(a: readonly ByteRange[], b: readonly ByteRange[]): boolean {
  return a.some((x) =>
    b.some((y) => x.offsetBytes < y.offsetBytes + y.lengthBytes && y.offsetBytes < x.offsetBytes + x.lengthBytes),
  );
}
