import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatDiskIdentity,
  type RecoveryConfigInput,
  recoveryGrubConfig,
  recoveryKernelArguments,
} from '../../../src/boot/recovery-config.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';

const input: RecoveryConfigInput = {
  kernel: [
    { startLba: 4096, sectorCount: 7000 },
    { startLba: 11096, sectorCount: 3000 },
  ],
  initramfs: [
    { startLba: 30000, sectorCount: 2500 },
    { startLba: 20000, sectorCount: 100 },
  ],
  refuge: [
    { startLba: 100000, sectorCount: 2048 },
    { startLba: 200000, sectorCount: 16 },
  ],
  disk: { scheme: 'msdos', signature: 0x1a2b3c },
};

function isCode(code: string): (error: unknown) => boolean {
  return (error: unknown) => error instanceof ReimageError && error.code === code;
}

describe('recoveryGrubConfig', () => {
  it('writes the whole embedded config, every kernel argument single-quoted', () => {
    assert.equal(
      recoveryGrubConfig(input),
      [
        'serial --unit=0 --speed=115200',
        'terminal_input serial console',
        'terminal_output serial console',
        "echo 'reimage: recovery boot path'",
        "linux (hd0)4096+10000 'console=tty0' 'console=ttyS0,115200' 'panic=-1' 'reimage.refuge=100000+2048,200000+16' 'reimage.disk=msdos:001a2b3c'",
        'initrd (hd0)30000+2500 (hd0)20000+100',
        'boot',
        "echo 'reimage: the recovery boot path could not start its kernel'",
        '',
      ].join('\n'),
    );
  });

  it('names a GPT disk by its GUID, lower case', () => {
    const args = recoveryKernelArguments({
      ...input,
      kernelArguments: [],
      disk: { scheme: 'gpt', diskGuid: 'B1A5E7C2-0F3D-4E5A-9B8C-7D6E5F4A3B2C' },
    });
    assert.deepEqual(args, [
      'reimage.refuge=100000+2048,200000+16',
      'reimage.disk=gpt:b1a5e7c2-0f3d-4e5a-9b8c-7d6e5f4a3b2c',
    ]);
  });

  const identities: [RecoveryConfigInput['disk'], string][] = [
    [{ scheme: 'msdos', signature: 0 }, 'msdos:00000000'],
    [{ scheme: 'msdos', signature: 0xffffffff }, 'msdos:ffffffff'],
  ];
  for (const [disk, expected] of identities) {
    it(`formats ${expected}`, () => assert.equal(formatDiskIdentity(disk), expected));
  }

  const refused: [string, RecoveryConfigInput][] = [
    ['a quote in an argument', { ...input, kernelArguments: ["quiet'"] }],
    ['a space in an argument', { ...input, kernelArguments: ['a b'] }],
    ['a $ in an argument (GRUB would expand it unquoted)', { ...input, kernelArguments: ['x=$root'] }],
    ['a newline in an argument', { ...input, kernelArguments: ['a\nboot'] }],
    ['a signature beyond 32 bits', { ...input, disk: { scheme: 'msdos', signature: 2 ** 32 } }],
    ['a malformed GUID', { ...input, disk: { scheme: 'gpt', diskGuid: 'not-a-guid' } }],
    [
      'a command line longer than Linux keeps',
      {
        ...input,
        refuge: Array.from({ length: 300 }, (_, index) => ({ startLba: 1000 + index * 10, sectorCount: 1 })),
      },
    ],
  ];
  for (const [name, bad] of refused) {
    it(`refuses ${name}`, () => assert.throws(() => recoveryGrubConfig(bad), isCode('REIMAGE_BOOT_CMDLINE_INVALID')));
  }

  it('refuses a kernel in two separate ranges (GRUB 2.06 misreads across fragments)', () => {
    assert.throws(
      () =>
        recoveryGrubConfig({
          ...input,
          kernel: [
            { startLba: 4096, sectorCount: 7000 },
            { startLba: 20000, sectorCount: 3000 },
          ],
        }),
      isCode('REIMAGE_BOOT_RANGES_INVALID'),
    );
  });

  it('refuses an empty initramfs range list', () => {
    assert.throws(() => recoveryGrubConfig({ ...input, initramfs: [] }), isCode('REIMAGE_BOOT_RANGES_INVALID'));
  });

  it('refuses an empty kernel range list', () => {
    assert.throws(() => recoveryGrubConfig({ ...input, kernel: [] }), isCode('REIMAGE_BOOT_RANGES_INVALID'));
  });
});
