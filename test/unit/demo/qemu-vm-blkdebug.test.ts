import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { qemuArguments } from '../../../src/demo/qemu-vm.ts';

describe('qemuArguments with a blkdebug rules file', () => {
  it('opens the disk through blkdebug, paths with commas escaped', () => {
    const args = qemuArguments({ diskPath: '/tmp/a,b/disk.img', blkdebugConfigPath: '/tmp/rules.conf', timeoutMs: 1 });
    const drive = args[args.indexOf('-drive') + 1];
    assert.equal(
      drive,
      'if=virtio,format=raw,file.driver=blkdebug,file.config=/tmp/rules.conf,file.image.driver=file,file.image.filename=/tmp/a,,b/disk.img',
    );
    const plain = qemuArguments({ diskPath: '/tmp/disk.img', timeoutMs: 1 });
    assert.equal(plain[plain.indexOf('-drive') + 1], 'file=/tmp/disk.img,format=raw,if=virtio');
  });

  it('is a drive QEMU 7.2 opens, whose rules inject (qemu-io, the same block layer)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'reimage-blkdebug-'));
    try {
      const disk = join(dir, 'disk.img');
      const rules = join(dir, 'rules.conf');
      writeFileSync(disk, Buffer.alloc(4 * 1024 * 1024));
      writeFileSync(
        rules,
        '[inject-error]\nevent = "write_aio"\niotype = "write"\nerrno = "5"\nsector = "2048"\nonce = "on"\n',
      );
      const drive = qemuArguments({ diskPath: disk, blkdebugConfigPath: rules, timeoutMs: 1 }).find((a) =>
        a.includes('blkdebug'),
      );
      assert.ok(drive);
      // qemu-io takes the same options, less the guest device.
      const options = `driver=raw,${drive.replace(/^if=virtio,format=raw,/, '')}`;
      const run = spawnSync(
        'qemu-io',
        ['--image-opts', '-c', 'write 1M 4k', '-c', 'write 1M 4k', '-c', 'write 0 4k', options],
        { encoding: 'utf8' },
      );
      assert.equal(run.error, undefined, 'qemu-io runs (Debian package qemu-utils)');
      const lines = run.stdout.split('\n').filter((line) => /^(wrote|write failed)/.test(line));
      assert.deepEqual(
        lines.map((line) => line.split(':')[0]),
        ['write failed', 'wrote 4096/4096 bytes at offset 1048576', 'wrote 4096/4096 bytes at offset 0'],
        run.stdout + run.stderr,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
