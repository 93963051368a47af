import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ReimageError } from '../../../src/core/reimage-error.ts';
import { runCommand } from '../../../src/core/run-command.ts';
import { attachLoopDevice, type LoopDevice, resolvePartition } from '../../../src/disk/index.ts';
import { loadPlanFile, type PartitionRef } from '../../../src/plan/index.ts';
import { runReimage } from '../../helpers/run-cli.ts';

// A plan may name a partition by number, by filesystem label or by filesystem UUID. These
// resolve against real partitions of a real loop device: an msdos table written by sfdisk,
// partitions added by partx (this host's kernel parses no tables; see loop-device.ts), file
// systems made with mkfs and read back by blkid, as the runner does in the initramfs.

const ROOT_UUID = '3f0c6a8e-5b1d-4c2e-9a7f-1d2e3c4b5a69';
const DATA_UUID = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
/** vfat has a short volume id, printed by blkid as XXXX-XXXX. */
const ESP_VOLUME_ID = '12AB-34CD';

async function makeDisk(path: string, partitions: number): Promise<void> {
  await writeFile(path, '');
  await truncate(path, (1 + 16 * partitions) * 1024 * 1024);
  const lines = Array.from({ length: partitions }, (_, index) => `start=${2048 + index * 32768}, size=32768, type=83`);
  await runCommand('sfdisk', ['--quiet', path], { input: `label: dos\n${lines.join('\n')}\n` });
}

describe('partition references by label and UUID, on loop devices', () => {
  let dir = '';
  let disk: LoopDevice | undefined;
  let other: LoopDevice | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reimage-partrefs-'));
    await makeDisk(join(dir, 'disk.img'), 3);
    await makeDisk(join(dir, 'other.img'), 1);
    disk = await attachLoopDevice(join(dir, 'disk.img'));
    other = await attachLoopDevice(join(dir, 'other.img'));
    const d = disk.device;
    await runCommand('mkfs.ext4', ['-q', '-F', '-L', 'new-root', '-U', ROOT_UUID, `${d}p1`]);
    await runCommand('mkfs.ext4', ['-q', '-F', '-L', 'kiosk-data', '-U', DATA_UUID, `${d}p2`]);
    await runCommand('mkfs.vfat', ['-n', 'ESP', '-i', ESP_VOLUME_ID.replace('-', ''), `${d}p3`]);
    // A label that exists only on another disk must never be taken for this one's.
    await runCommand('mkfs.ext4', ['-q', '-F', '-L', 'elsewhere', `${other.device}p1`]);
  });
  after(async () => {
    await disk?.detach();
    await other?.detach();
    await rm(dir, { recursive: true, force: true });
  });

  const device = (n: number): string => `${disk?.device ?? '?'}p${n}`;

  const found: [string, PartitionRef, number][] = [
    ['a label', { label: 'new-root' }, 1],
    ['another label', { label: 'kiosk-data' }, 2],
    ['a vfat label', { label: 'ESP' }, 3],
    ['a UUID', { uuid: DATA_UUID }, 2],
    ['a UUID in upper case', { uuid: ROOT_UUID.toUpperCase() }, 1],
    ['a vfat volume id', { uuid: ESP_VOLUME_ID }, 3],
    ['a number', 2, 2],
  ];
  for (const [name, ref, number] of found) {
    it(`resolves ${name} (${JSON.stringify(ref)}) to partition ${number}`, async () => {
      assert.equal(await resolvePartition(disk?.device ?? '', ref, { timeoutMs: 0 }), device(number));
    });
  }

  const notFound: [string, PartitionRef][] = [
    ['a label of no partition', { label: 'old-root' }],
    ['a prefix of a label', { label: 'new' }],
    ['a label in another case', { label: 'NEW-ROOT' }],
    ['a label that is only on another disk', { label: 'elsewhere' }],
    ['a UUID of no partition', { uuid: 'deadbeef-0000-4000-8000-000000000000' }],
    ['a number past the table', 4],
  ];
  for (const [name, ref] of notFound) {
    it(`refuses ${name} (${JSON.stringify(ref)}), naming the plan's field`, async () => {
      await assert.rejects(
        resolvePartition(disk?.device ?? '', ref, { timeoutMs: 0, field: 'restore.mounts[1].partition' }),
        (error: unknown) =>
          error instanceof ReimageError &&
          error.code === 'REIMAGE_DISK_PARTITION_NOT_FOUND' &&
          error.evidence.field === 'restore.mounts[1].partition' &&
          !error.targetTouched,
      );
    });
  }

  it('accepts a plan that names every partition by label or UUID, and each of its references resolves', async () => {
    const planPath = join(dir, 'plan.yaml');
    await writeFile(
      planPath,
      [
        'version: 1',
        `disk: ${disk?.device}`,
        `image: { partition: { label: kiosk-data }, path: /new.img.zst, sha256: ${'ab'.repeat(32)} }`,
        `retain: { partition: { uuid: ${ROOT_UUID} }, paths: [/etc/machine-id] }`,
        'restore:',
        `  mounts: [{ partition: { uuid: ${ROOT_UUID.toUpperCase()} }, at: / }, { partition: { label: kiosk-data }, at: /kiosk }, { partition: { uuid: ${ESP_VOLUME_ID} }, at: /boot/efi }]`,
        '  logs: /kiosk/log',
      ].join('\n'),
    );
    const validated = runReimage(['plan', 'validate', planPath]);
    assert.equal(validated.exitCode, 0, validated.stderr);
    assert.match(validated.stdout, /label "kiosk-data"|kiosk-data/);

    const plan = await loadPlanFile(planPath);
    const d = disk?.device ?? '';
    assert.equal(await resolvePartition(d, plan.image.partition, { timeoutMs: 0 }), device(2));
    assert.equal(await resolvePartition(d, plan.retain.partition, { timeoutMs: 0 }), device(1));
    assert.deepEqual(
      await Promise.all(plan.restore.mounts.map((mount) => resolvePartition(d, mount.partition, { timeoutMs: 0 }))),
      [device(1), device(2), device(3)],
    );
  });
});
