import { type ArchiveEntry, listNewcArchive, newcStream } from '../../../src/initramfs/newc-archive.ts';
import { type FuzzTarget, SOUND } from '../fuzz-target.ts';
import type { SeededRandom } from '../seeded-random.ts';

const HEADER_BYTES = 110;
const FIELD_VALUES = [
  '00000000',
  'FFFFFFFF',
  '7FFFFFFF',
  '80000000',
  '0000006E',
  'GGGGGGGG',
  ' 0000001',
  '-0000001',
  '0x000010',
];

/** Header offsets of a newc stream, walked as the reader walks it, stopping at the first field that is not hex. */
function headerOffsets(archive: Buffer): number[] {
  const offsets: number[] = [];
  let at = 0;
  while (at + HEADER_BYTES <= archive.length && archive.toString('latin1', at, at + 6) === '070701') {
    offsets.push(at);
    const nameBytes = Number.parseInt(archive.toString('latin1', at + 94, at + 102), 16);
    const sizeBytes = Number.parseInt(archive.toString('latin1', at + 54, at + 62), 16);
    if (Number.isNaN(nameBytes) || Number.isNaN(sizeBytes)) break;
    const dataStart = at + HEADER_BYTES + nameBytes + ((4 - ((HEADER_BYTES + nameBytes) % 4)) % 4);
    at = dataStart + sizeBytes + ((4 - (sizeBytes % 4)) % 4);
  }
  return offsets;
}

/** Rewrites one header field (namesize, filesize, mode…) with a huge, zero, off-by-one or non-hex value. */
export function mutateNewc(input: Buffer, random: SeededRandom): Buffer {
  const offsets = headerOffsets(input);
  if (offsets.length === 0) return input;
  const out = Buffer.from(input);
  const at = random.pick(offsets);
  if (random.chance(0.1)) {
    out.write(random.pick(['070702', '070707', '070700', '\0\0\0\0\0\0']), at, 6, 'latin1');
    return out;
  }
  // Fields 6 (filesize) and 11 (namesize) steer the walk: weight them.
  const index = random.chance(0.5) ? random.pick([6, 11]) : random.below(13);
  const fieldAt = at + 6 + index * 8;
  const current = Number.parseInt(out.toString('latin1', fieldAt, fieldAt + 8), 16);
  const value = random.chance(0.4)
    ? Math.max(0, (Number.isNaN(current) ? 0 : current) + random.below(9) - 4)
        .toString(16)
        .toUpperCase()
        .padStart(8, '0')
    : random.pick(FIELD_VALUES);
  out.write(value.slice(0, 8), fieldAt, 8, 'latin1');
  return out;
}

export const NEWC_SEED_ENTRIES: ArchiveEntry[] = [
  { path: 'bin/busybox', kind: 'file', mode: 0o755, data: Buffer.from('\x7fELF fake busybox') },
  { path: 'bin/sh', kind: 'symlink', mode: 0o777, linkTarget: 'busybox' },
  { path: 'dev/console', kind: 'char-device', mode: 0o600, deviceMajor: 5, deviceMinor: 1 },
  { path: 'etc/empty', kind: 'file', mode: 0o644, data: new Uint8Array(0) },
  { path: `lib/${'long-name/'.repeat(12)}module.ko`, kind: 'file', mode: 0o644, data: Buffer.alloc(1027, 0x55) },
  { path: 'init', kind: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\nexec /bin/sh\n') },
];

export async function newcBytes(entries: readonly ArchiveEntry[]): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const part of newcStream(entries)) parts.push(part);
  return Buffer.concat(parts);
}

/** The newc reader behind `reimage initramfs list` (after decompression). */
export const newcArchiveTarget: FuzzTarget = {
  name: 'newc-archive',
  dictionary: ['070701', 'TRAILER!!!\0', '00000000', 'FFFFFFFF', '0000000B'],
  async seeds() {
    return [
      await newcBytes(NEWC_SEED_ENTRIES),
      await newcBytes([]),
      await newcBytes([{ path: 'a', kind: 'directory', mode: 0o755 }]),
    ];
  },
  mutateStructure: mutateNewc,
  async parse(input) {
    for (const member of listNewcArchive(input)) {
      if (member.data.length !== member.sizeBytes)
        return { invalid: `member ${member.path} has ${member.data.length} bytes, claims ${member.sizeBytes}` };
      if (typeof member.path !== 'string') return { invalid: 'a member without a path' };
    }
    return SOUND;
  },
};
