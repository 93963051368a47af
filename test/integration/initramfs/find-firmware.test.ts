import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type DebianKernel, ensureDebianKernel } from '../../../src/demo/debian-kernel.ts';
import { findFirmware } from '../../../src/initramfs/find-firmware.ts';
import { resolveModuleClosure } from '../../../src/initramfs/module-closure.ts';

describe('findFirmware', () => {
  let kernel: DebianKernel;
  let firmwareDir = '';
  before(async () => {
    kernel = await ensureDebianKernel();
    firmwareDir = await mkdtemp(join(tmpdir(), 'reimage-firmware-'));
  });
  after(async () => {
    if (firmwareDir !== '') await rm(firmwareDir, { recursive: true, force: true });
  });

  it('carries the firmware a real module names when the host has it, plain, compressed or via a symlink', async () => {
    // r8169 names dozens of rtl_nic/*.fw files; give the "host" three of them.
    await mkdir(join(firmwareDir, 'rtl_nic'));
    await writeFile(join(firmwareDir, 'rtl_nic', 'rtl8168d-1.fw'), 'plain');
    await writeFile(join(firmwareDir, 'rtl_nic', 'rtl8168d-2.fw.zst'), 'compressed');
    await writeFile(join(firmwareDir, 'real-blob'), 'linked');
    await symlink('../real-blob', join(firmwareDir, 'rtl_nic', 'rtl8168e-1.fw'));
    const { modules } = await resolveModuleClosure(kernel.modulesDir, ['r8169']);
    const { found, missing } = await findFirmware(
      modules.map((m) => join(kernel.modulesDir, m)),
      firmwareDir,
    );
    assert.deepEqual(
      found.map((f) => [f.fileName, f.hostPath.slice(firmwareDir.length), f.sizeBytes]),
      [
        ['rtl_nic/rtl8168d-1.fw', '/rtl_nic/rtl8168d-1.fw', 5],
        ['rtl_nic/rtl8168d-2.fw.zst', '/rtl_nic/rtl8168d-2.fw.zst', 10],
        ['rtl_nic/rtl8168e-1.fw', '/real-blob', 6],
      ],
    );
    assert.ok(missing.length > 10, 'the rest are reported missing, not an error');
    assert.ok(!missing.includes('rtl_nic/rtl8168d-1.fw'));
  });
});
