import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  canonicalModuleName,
  type ModuleIndex,
  moduleClosure,
  moduleNameFromPath,
  parseModulesAlias,
  parseModulesDep,
  parseModulesSoftdep,
} from '../../../src/initramfs/module-closure.ts';

function index(dep: string, extra: { builtin?: string[]; softdep?: string; alias?: string } = {}): ModuleIndex {
  const depsByPath = parseModulesDep(dep);
  return {
    depsByPath,
    pathByName: new Map([...depsByPath.keys()].map((path) => [moduleNameFromPath(path), path])),
    builtin: new Set((extra.builtin ?? []).map(moduleNameFromPath)),
    softdeps: parseModulesSoftdep(extra.softdep ?? ''),
    aliases: parseModulesAlias(extra.alias ?? ''),
  };
}

const dep = `kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/usb/storage/usb-storage.ko.xz: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/crypto/crc32c_generic.ko:
kernel/fs/nls/nls_iso8859-1.ko:
`;

describe('module names', () => {
  const cases: [string, string][] = [
    ['kernel/fs/nls/nls_iso8859-1.ko', 'nls_iso8859_1'],
    ['kernel/drivers/usb/storage/usb-storage.ko.xz', 'usb_storage'],
    ['kernel/drivers/ata/ahci.ko.zst', 'ahci'],
    ['kernel/x/y.ko.gz', 'y'],
  ];
  for (const [path, name] of cases) {
    it(`${path} is ${name}`, () => assert.equal(moduleNameFromPath(path), name));
  }
  it('treats - and _ alike', () => assert.equal(canonicalModuleName('usb-storage'), 'usb_storage'));
});

describe('moduleClosure', () => {
  it('lists dependencies first, each once', () => {
    const { modules, missing } = moduleClosure(index(dep), ['ahci', 'usb-storage']);
    assert.deepEqual(modules, [
      'kernel/drivers/scsi/scsi_common.ko',
      'kernel/drivers/scsi/scsi_mod.ko',
      'kernel/drivers/ata/libata.ko',
      'kernel/drivers/ata/libahci.ko',
      'kernel/drivers/ata/ahci.ko',
      'kernel/drivers/usb/storage/usb-storage.ko.xz',
    ]);
    assert.deepEqual(missing, []);
  });

  it('accepts either spelling of a name', () => {
    assert.deepEqual(moduleClosure(index(dep), ['nls_iso8859_1']).modules, ['kernel/fs/nls/nls_iso8859-1.ko']);
    assert.deepEqual(moduleClosure(index(dep), ['nls-iso8859-1']).modules, ['kernel/fs/nls/nls_iso8859-1.ko']);
  });

  it('counts builtins as present and reports unknown names as missing', () => {
    const result = moduleClosure(index(dep, { builtin: ['kernel/drivers/block/virtio_blk.ko'] }), [
      'virtio_blk',
      'nvme',
    ]);
    assert.deepEqual(result.modules, []);
    assert.deepEqual(result.missing, ['nvme']);
  });

  it('follows softdeps through aliases (ext4 wants crypto-crc32c)', () => {
    const result = moduleClosure(
      index(dep, {
        softdep: 'softdep ext4 pre: crypto-crc32c\n',
        alias: 'alias crypto-crc32c crc32c_generic\nalias crypto-crc32c crc32c_intel\nalias pci:v*d* ahci\n',
      }),
      ['ext4'],
    );
    assert.deepEqual(result.modules, [
      'kernel/fs/jbd2/jbd2.ko',
      'kernel/fs/mbcache.ko',
      'kernel/lib/crc16.ko',
      'kernel/fs/ext4/ext4.ko',
      'kernel/crypto/crc32c_generic.ko',
    ]);
    assert.deepEqual(result.missing, [], 'a softdep this kernel lacks (crc32c_intel) is not an error');
  });
});
