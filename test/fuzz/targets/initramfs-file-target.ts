import { gunzipSync, gzipSync, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { listInitramfsFile } from '../../../src/initramfs/newc-archive.ts';
import type { FuzzTarget } from '../fuzz-target.ts';
import { SOUND } from '../fuzz-target.ts';
import type { SeededRandom } from '../seeded-random.ts';
import { mutateNewc, NEWC_SEED_ENTRIES, newcBytes } from './newc-archive-target.ts';

/**
 * Mutates the archive inside the compression and compresses it again, so that most inputs reach
 * the newc reader instead of stopping at the decompressor; sometimes damages the stream itself.
 */
function mutateCompressed(input: Buffer, random: SeededRandom): Buffer {
  const magic = input.subarray(0, 4).toString('hex');
  const zstd = magic === '28b52ffd';
  if (!zstd && !magic.startsWith('1f8b')) return mutateNewc(input, random);
  if (random.chance(0.2)) {
    // A stream cut short or with a damaged byte: the decompressor's error must become ours.
    const out = Buffer.from(input.subarray(0, random.below(input.length + 1)));
    if (out.length > 0 && random.chance(0.5)) out[random.below(out.length)] = random.below(256);
    return out;
  }
  let plain: Buffer;
  try {
    plain = zstd ? zstdDecompressSync(input) : gunzipSync(input);
  } catch {
    return input;
  }
  const mutated = mutateNewc(plain, random);
  return zstd ? zstdCompressSync(mutated) : gzipSync(mutated);
}

/** `reimage initramfs list`'s whole read path: magic bytes, decompression, then the newc reader. */
export const initramfsFileTarget: FuzzTarget = {
  name: 'initramfs-file',
  dictionary: ['\u001f\u008b', '(\u00b5/\u00fd', '070701', 'TRAILER!!!\u0000'],
  async seeds() {
    const plain = await newcBytes(NEWC_SEED_ENTRIES);
    return [plain, gzipSync(plain), zstdCompressSync(plain)];
  },
  mutateStructure: mutateCompressed,
  async parse(input) {
    for (const member of listInitramfsFile(input)) {
      if (member.data.length !== member.sizeBytes) {
        return { invalid: `member ${member.path} has ${member.data.length} bytes, claims ${member.sizeBytes}` };
      }
    }
    return SOUND;
  },
};
