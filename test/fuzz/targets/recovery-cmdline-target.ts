import { formatRecoveryCmdline, parseRecoveryCmdline } from '../../../src/boot/recovery-cmdline.ts';
import { type FuzzTarget, SOUND } from '../fuzz-target.ts';
import type { SeededRandom } from '../seeded-random.ts';

const ODD = [
  '"',
  "'",
  ' ',
  '\t',
  '\n',
  '+',
  ',',
  '=',
  ':',
  '-',
  '0',
  '8',
  '144',
  '99999999999999999999',
  'gpt:',
  'msdos:',
];

/** /proc/cmdline as the recovery initramfs reads it: a boot loader or an operator may have edited it. */
export const recoveryCmdlineTarget: FuzzTarget = {
  name: 'recovery-cmdline',
  async seeds() {
    const msdos = formatRecoveryCmdline({
      refuge: { startLba: 8, sectorCount: 144 },
      disk: { scheme: 'msdos', signature: 1 },
    });
    const gpt = formatRecoveryCmdline({
      refuge: { startLba: 2048, sectorCount: 144 },
      disk: { scheme: 'gpt', diskGuid: '00112233-4455-6677-8899-aabbccddeeff' },
    });
    return [
      Buffer.from(`BOOT_IMAGE=(hd0)4096+2000 console=ttyS0,115200 ${msdos.join(' ')}\n`),
      Buffer.from(`'${gpt[0]}' "${gpt[1]}" quiet`),
      Buffer.from('BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro'),
    ];
  },
  dictionary: ['reimage.refuge=', 'reimage.disk=', 'BOOT_IMAGE=', ...ODD],
  mutateStructure(input: Buffer, random: SeededRandom): Buffer {
    const text = input.toString('latin1');
    const at = random.below(text.length + 1);
    return Buffer.from(text.slice(0, at) + random.pick(ODD) + text.slice(at + random.below(3)), 'latin1');
  },
  async parse(input: Buffer) {
    const parsed = parseRecoveryCmdline(input.toString('utf8'));
    if (parsed === undefined) return { outcome: 'not a recovery boot' };
    if (parsed.refuge.sectorCount !== 144 || parsed.refuge.startLba % 8 !== 0)
      return { invalid: 'a range not the head' };
    // What was accepted formats back (the same formatters arm uses) and parses to the same.
    const again = parseRecoveryCmdline(formatRecoveryCmdline(parsed).join(' '));
    if (JSON.stringify(again) !== JSON.stringify(parsed)) return { invalid: 'no round trip' };
    return SOUND;
  },
};
