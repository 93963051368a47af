import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import { bootSectorCoreLba, CORE_BLOCKLIST_START_OFFSET } from '../../../src/boot/grub-boot-sector.ts';
import { runCommand } from '../../../src/core/run-command.ts';
import { type DemoFixtures, ensureDemoFixtures, ensureGptOldDisk } from '../../../src/demo/demo-fixtures.ts';
import { gptBiosBootType, kioskDataPartition, oldRootPartition } from '../../../src/demo/demo-layout.ts';
import { readPartitionLayout } from '../../../src/demo/disk-image.ts';
import { hasGrubBootSector } from '../../../src/demo/grub-bios.ts';
import { requireTools } from './system-tools.ts';

// The GPT variant of the demo's old disk (booted under QEMU by test/e2e/arm-gpt.test.ts): the
// same machine on a GPT table, its GRUB's core.img in the BIOS boot partition.
describe('the GPT old disk', () => {
  let fixtures: DemoFixtures;
  let gptDiskPath: string;

  before(async () => {
    requireTools({ sfdisk: 'fdisk', 'grub-mkimage': 'grub-common', blkid: 'util-linux', e2fsck: 'e2fsprogs' });
    fixtures = await ensureDemoFixtures();
    gptDiskPath = await ensureGptOldDisk(fixtures);
  });

  it('is built once, beside the msdos disk, and reused', async () => {
    assert.equal(await ensureGptOldDisk(fixtures), gptDiskPath);
    assert.ok(gptDiskPath.startsWith(fixtures.dir));
  });

  it('has a GPT with a BIOS boot partition holding GRUB’s core.img, which LBA 0 boots', async () => {
    const layout = await readPartitionLayout(gptDiskPath);
    assert.equal(layout.table, 'gpt');
    assert.deepEqual(
      layout.partitions.map((p) => p.number),
      [1, 2, 3, 5, 6],
    );
    const biosBoot = layout.partitions.find((p) => p.number === 1);
    assert.equal(biosBoot?.type.toUpperCase(), gptBiosBootType);
    assert.equal(await hasGrubBootSector(gptDiskPath), true);
    const file = await open(gptDiskPath, 'r');
    try {
      const lba0 = Buffer.alloc(512);
      await file.read(lba0, 0, 512, 0);
      const coreLba = bootSectorCoreLba(lba0);
      assert.equal(coreLba * 512, biosBoot?.offsetBytes, 'boot.img leads into the BIOS boot partition');
      assert.equal(lba0[446 + 4], 0xee, 'the protective MBR entry stays');
      const core = Buffer.alloc(512);
      await file.read(core, 0, 512, coreLba * 512);
      assert.equal(
        core.readBigUInt64LE(CORE_BLOCKLIST_START_OFFSET),
        BigInt(coreLba + 1),
        'core.img reads on from its own second sector',
      );
      const header = Buffer.alloc(8);
      await file.read(header, 0, 8, 512);
      assert.equal(header.toString('latin1'), 'EFI PART', 'core.img left the GPT header alone');
    } finally {
      await file.close();
    }
  });

  it('holds the msdos disk’s old root and kiosk data filesystems, unchanged and clean', async () => {
    const msdos = await readPartitionLayout(fixtures.oldDiskPath);
    const gpt = await readPartitionLayout(gptDiskPath);
    for (const number of [oldRootPartition, kioskDataPartition]) {
      const probe = async (path: string, offsetBytes: number | undefined): Promise<string> => {
        assert.ok(offsetBytes !== undefined);
        const { stdout } = await runCommand('blkid', ['-p', '-O', String(offsetBytes), '-o', 'export', path]);
        return stdout
          .split('\n')
          .filter((line) => /^(UUID|LABEL|TYPE)=/.test(line))
          .join(' ');
      };
      const from = await probe(fixtures.oldDiskPath, msdos.partitions.find((p) => p.number === number)?.offsetBytes);
      const to = await probe(gptDiskPath, gpt.partitions.find((p) => p.number === number)?.offsetBytes);
      assert.match(to, /TYPE=ext4/);
      assert.equal(to, from, `partition ${number}: the same filesystem`);
      const offset = gpt.partitions.find((p) => p.number === number)?.offsetBytes;
      const fsck = await runCommand('e2fsck', ['-fn', `${gptDiskPath}?offset=${offset}`], { allowFailure: true });
      assert.equal(fsck.exitCode, 0, fsck.stdout);
    }
  });
});
