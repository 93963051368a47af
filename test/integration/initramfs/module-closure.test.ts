import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { type DebianKernel, ensureDebianKernel } from '../../../src/demo/debian-kernel.ts';
import { STORAGE_MODULES } from '../../../src/initramfs/find-kernel-files.ts';
import { resolveModuleClosure } from '../../../src/initramfs/module-closure.ts';

describe('resolveModuleClosure on the real Debian kernel', () => {
  let kernel: DebianKernel;
  before(async () => {
    kernel = await ensureDebianKernel();
  });

  it('finds every storage and filesystem module with its dependencies, dependencies first', async () => {
    const { modules, missing } = await resolveModuleClosure(kernel.modulesDir, STORAGE_MODULES);
    assert.deepEqual(missing, [], 'Debian 6.1 has all of them as modules');
    for (const path of modules) assert.ok(existsSync(join(kernel.modulesDir, path)), `${path} exists`);
    const names = modules.map((path) => path.split('/').pop());
    const before = (dependency: string, module: string): void => {
      const d = names.indexOf(dependency);
      const m = names.indexOf(module);
      assert.ok(d >= 0 && m >= 0 && d < m, `${dependency} comes before ${module}`);
    };
    before('virtio.ko', 'virtio_blk.ko');
    before('virtio_ring.ko', 'virtio_blk.ko');
    before('scsi_mod.ko', 'sd_mod.ko');
    before('libata.ko', 'ahci.ko');
    before('jbd2.ko', 'ext4.ko');
    before('mbcache.ko', 'ext4.ko');
    before('libcrc32c.ko', 'xfs.ko');
    before('fat.ko', 'vfat.ko');
    before('usb-storage.ko', 'uas.ko');
    assert.equal(new Set(modules).size, modules.length, 'each module once');
  });

  it('reports a name this kernel does not know', async () => {
    const { modules, missing } = await resolveModuleClosure(kernel.modulesDir, ['ext4', 'no_such_driver']);
    assert.deepEqual(missing, ['no_such_driver']);
    assert.ok(modules.some((path) => path.endsWith('/ext4.ko')));
  });
});
