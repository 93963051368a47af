import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { qemuArguments } from '../../../src/demo/qemu-vm.ts';

describe('qemuArguments with writeLogPath', () => {
  const args = qemuArguments({ diskPath: '/tmp/d,isk.img', writeLogPath: '/tmp/w,rites.log', timeoutMs: 1 });

  it('attaches the disk through file → blklogwrites → raw, logging into its own file in 512-byte sectors', () => {
    assert.ok(!args.includes('-drive'), 'no -drive: the disk is a -blockdev chain');
    const node: unknown = JSON.parse(args[args.indexOf('-blockdev') + 1] ?? '');
    assert.deepEqual(node, {
      driver: 'raw',
      'node-name': 'disk',
      file: {
        driver: 'blklogwrites',
        'log-sector-size': 512,
        // JSON: commas in paths need no escaping.
        file: { driver: 'file', filename: '/tmp/d,isk.img' },
        log: { driver: 'file', filename: '/tmp/w,rites.log' },
      },
    });
  });

  it('puts a virtio-blk device with a write cache (the guest flushes) and without write-zeroes or discard on it', () => {
    const device = args[args.indexOf('-device') + 1] ?? '';
    const properties = device.split(',');
    assert.equal(properties[0], 'virtio-blk-pci');
    for (const property of ['drive=disk', 'write-cache=on', 'write-zeroes=off', 'discard=off']) {
      assert.ok(properties.includes(property), `${property} in ${device}`);
    }
  });

  it('keeps the plain -drive without a log', () => {
    const plain = qemuArguments({ diskPath: '/d.img', timeoutMs: 1 });
    assert.ok(plain.includes('-drive'));
    assert.ok(!plain.includes('-blockdev'));
  });
});
