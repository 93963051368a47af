import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endingFromSerialLog, qemuArguments } from '../../../src/demo/qemu-vm.ts';

describe('endingFromSerialLog', () => {
  const cases: [string, string][] = [
    ['...\n[   44.8] reboot: Restarting system\n', 'reboot'],
    ['...\n[   12.1] reboot: Power down\n', 'poweroff'],
    ['[1] reboot: Power down\n...\n[9] reboot: Restarting system\n', 'reboot'],
    ['Kernel panic - not syncing: Attempted to kill init!\n', 'exit'],
    ['', 'exit'],
  ];
  for (const [log, ending] of cases) {
    it(`${JSON.stringify(log.slice(-30))} is ${ending}`, () => assert.equal(endingFromSerialLog(log), ending));
  }
});

describe('qemuArguments', () => {
  it('uses TCG, no reboot, a raw virtio disk, and the kernel when given', () => {
    const args = qemuArguments({
      kernelPath: '/k',
      initrdPath: '/i',
      append: 'console=ttyS0',
      diskPath: '/d,isk.img',
      timeoutMs: 1,
    });
    assert.deepEqual(args.slice(0, 2), ['-accel', 'tcg']);
    assert.ok(args.includes('-no-reboot'));
    assert.ok(!args.some((arg) => arg.includes('kvm')));
    assert.equal(args[args.indexOf('-drive') + 1], 'file=/d,,isk.img,format=raw,if=virtio');
    assert.equal(args[args.indexOf('-kernel') + 1], '/k');
    assert.equal(args[args.indexOf('-initrd') + 1], '/i');
    assert.equal(args[args.indexOf('-append') + 1], 'console=ttyS0');
  });

  it('boots the disk by its own bootloader without a kernel', () => {
    const args = qemuArguments({ diskPath: '/d.img', timeoutMs: 1 });
    assert.ok(!args.includes('-kernel'));
    assert.ok(!args.includes('-append'));
  });
});
