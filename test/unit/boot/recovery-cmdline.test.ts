import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRecoveryCmdline, parseRecoveryCmdline, refugeSectorRange } from '../../../src/boot/recovery-cmdline.ts';
import { recoveryKernelArguments } from '../../../src/boot/recovery-config.ts';
import { REFUGE_HEAD_BYTES } from '../../../src/boot/refuge-layout.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';

const HEAD_SECTORS = REFUGE_HEAD_BYTES / 512;
const GPT = { scheme: 'gpt', diskGuid: '00112233-4455-6677-8899-aabbccddeeff' } as const;
const MSDOS = { scheme: 'msdos', signature: 0x0a0b0c0d } as const;

function refusal(cmdline: string): string {
  try {
    parseRecoveryCmdline(cmdline);
  } catch (e) {
    assert.ok(isReimageError(e), String(e));
    assert.equal(e.code, 'REIMAGE_BOOT_CMDLINE_INVALID');
    return e.message;
  }
  assert.fail(`accepted: ${cmdline}`);
}

describe('recovery command line', () => {
  it('round-trips through the formatter, and through recovery-config’s own arguments with GRUB’s BOOT_IMAGE=', () => {
    for (const disk of [GPT, MSDOS]) {
      const refuge = refugeSectorRange({
        fileOffsetBytes: 12_288,
        diskOffsetBytes: 1_048_576 * 300,
        lengthBytes: 8192,
      });
      assert.deepEqual(refuge, { startLba: 614_400, sectorCount: HEAD_SECTORS });
      assert.deepEqual(parseRecoveryCmdline(formatRecoveryCmdline({ refuge, disk }).join(' ')), { refuge, disk });
      const args = recoveryKernelArguments({
        kernel: [{ startLba: 4096, sectorCount: 20_000 }],
        initramfs: [{ startLba: 40_000, sectorCount: 9000 }],
        refuge: [refuge],
        disk,
      });
      assert.deepEqual(parseRecoveryCmdline(`BOOT_IMAGE=(hd0)4096+20000 ${args.join(' ')}\n`), { refuge, disk });
    }
  });

  it('is undefined on a plain boot (no recovery arguments)', () => {
    assert.equal(parseRecoveryCmdline('BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet reimage.debug=1\n'), undefined);
    assert.equal(parseRecoveryCmdline(''), undefined);
  });

  const tolerated: { name: string; cmdline: string }[] = [
    {
      name: 'other arguments around, tabs and newlines',
      cmdline: 'console=ttyS0\treimage.refuge=8+144\n  reimage.disk=msdos:0A0B0C0D quiet',
    },
    { name: 'double quotes around a value', cmdline: 'reimage.refuge="8+144" reimage.disk="msdos:0a0b0c0d"' },
    { name: 'double quotes around a whole argument', cmdline: '"reimage.refuge=8+144" reimage.disk=msdos:0a0b0c0d' },
    { name: "GRUB's single quotes left in place", cmdline: "'reimage.refuge=8+144' 'reimage.disk=msdos:0a0b0c0d'" },
    {
      name: 'a quoted argument with spaces before ours',
      cmdline: 'dyndbg="file foo.c +p" reimage.refuge=8+144 reimage.disk=msdos:0a0b0c0d',
    },
    {
      name: 'the same argument twice with the same value',
      cmdline: 'reimage.refuge=8+144 reimage.refuge=8+144 reimage.disk=msdos:0a0b0c0d',
    },
  ];
  for (const c of tolerated) {
    it(`tolerates ${c.name}`, () => {
      assert.deepEqual(parseRecoveryCmdline(c.cmdline), {
        refuge: { startLba: 8, sectorCount: HEAD_SECTORS },
        disk: MSDOS,
      });
    });
  }

  it('does not take an argument whose name only ends like ours', () => {
    assert.equal(parseRecoveryCmdline('xreimage.refuge=8+144 notreimage.disk=msdos:0a0b0c0d'), undefined);
  });

  const refused: { name: string; cmdline: string; says: RegExp }[] = [
    { name: 'the refuge without the disk', cmdline: 'reimage.refuge=8+144', says: /no reimage\.disk=/ },
    { name: 'the disk without the refuge', cmdline: `reimage.disk=gpt:${GPT.diskGuid}`, says: /no reimage\.refuge=/ },
    {
      name: 'two refuge values',
      cmdline: 'reimage.refuge=8+144 reimage.refuge=16+144 reimage.disk=msdos:0a0b0c0d',
      says: /2 different values/,
    },
    {
      name: 'a refuge of several ranges',
      cmdline: 'reimage.refuge=8+144,400+8 reimage.disk=msdos:0a0b0c0d',
      says: /START\+COUNT/,
    },
    { name: 'a refuge in hex', cmdline: 'reimage.refuge=0x8+144 reimage.disk=msdos:0a0b0c0d', says: /START\+COUNT/ },
    { name: 'leading zeros', cmdline: 'reimage.refuge=08+144 reimage.disk=msdos:0a0b0c0d', says: /START\+COUNT/ },
    { name: 'an empty refuge', cmdline: 'reimage.refuge= reimage.disk=msdos:0a0b0c0d', says: /START\+COUNT/ },
    { name: 'a negative start', cmdline: 'reimage.refuge=-8+144 reimage.disk=msdos:0a0b0c0d', says: /START\+COUNT/ },
    {
      name: 'a wrong length',
      cmdline: 'reimage.refuge=8+16 reimage.disk=msdos:0a0b0c0d',
      says: /16 sectors, not the 144/,
    },
    {
      name: 'a misaligned start',
      cmdline: 'reimage.refuge=9+144 reimage.disk=msdos:0a0b0c0d',
      says: /4096-byte boundary/,
    },
    {
      name: 'a start beyond exact integers',
      cmdline: 'reimage.refuge=99999999999999992+144 reimage.disk=msdos:0a0b0c0d',
      says: /4096-byte boundary|exact/,
    },
    { name: 'a short msdos signature', cmdline: 'reimage.refuge=8+144 reimage.disk=msdos:abc', says: /neither msdos/ },
    {
      name: 'a GUID without dashes',
      cmdline: 'reimage.refuge=8+144 reimage.disk=gpt:00112233445566778899aabbccddeeff',
      says: /neither/,
    },
    { name: 'a device name for a disk', cmdline: 'reimage.refuge=8+144 reimage.disk=/dev/sda', says: /neither/ },
    {
      name: 'trailing junk in the disk',
      cmdline: 'reimage.refuge=8+144 "reimage.disk=msdos:0a0b0c0d x"',
      says: /neither/,
    },
  ];
  for (const c of refused) {
    it(`refuses ${c.name}`, () => assert.match(refusal(c.cmdline), c.says));
  }

  it('refuses to format or name a misaligned journal', () => {
    assert.throws(() => refugeSectorRange({ fileOffsetBytes: 0, diskOffsetBytes: 512, lengthBytes: 8192 }), {
      code: 'REIMAGE_BOOT_CMDLINE_INVALID',
    });
    assert.throws(() => formatRecoveryCmdline({ refuge: { startLba: 8, sectorCount: 16 }, disk: GPT }), {
      code: 'REIMAGE_BOOT_CMDLINE_INVALID',
    });
  });
});
