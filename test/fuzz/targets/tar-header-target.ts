import { decodeUstarHeader } from '../../../src/retain/tar-header.ts';
import { type FuzzTarget, SOUND } from '../fuzz-target.ts';
import { mutateTar } from '../mutate-tar.ts';
import { retainBundleSeeds } from '../retain-bundle-seeds.ts';

/** One ustar header block (512 bytes), checksum included. */
export const tarHeaderTarget: FuzzTarget = {
  name: 'tar-header',
  dictionary: ['ustar\u000000', 'ustar  \u0000', '0000777\u0000', '77777777777\u0000', '\u0080', '\u00ff'],
  async seeds() {
    // The headers of a real bundle: pax 'x' headers and every member type.
    const blocks: Buffer[] = [];
    for (const bundle of retainBundleSeeds()) {
      for (let at = 0; at + 512 <= bundle.length; at += 512) {
        if (bundle.toString('latin1', at + 257, at + 262) === 'ustar') blocks.push(bundle.subarray(at, at + 512));
      }
    }
    return blocks;
  },
  mutateStructure: mutateTar,
  async parse(input) {
    const header = decodeUstarHeader(input, 0);
    for (const [field, value] of Object.entries(header)) {
      if (typeof value === 'number' && !(Number.isSafeInteger(value) && value >= 0))
        return { invalid: `${field} is ${value}` };
    }
    return SOUND;
  },
};
