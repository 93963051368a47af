import { createHash } from 'node:crypto';
import { decodeRefugeHeader, encodeRefugeHeader, type RefugeHeader } from '../../../src/boot/refuge-header.ts';
import { type FuzzTarget, SOUND } from '../fuzz-target.ts';
import type { SeededRandom } from '../seeded-random.ts';

const MIB = 1024 * 1024;
const JSON_AT = 64;

export const SEED_HEADER: RefugeHeader = {
  format: 1,
  journalId: '0123456789abcdef0123456789abcdef',
  disk: { scheme: 'msdos', signature: 0x1234abcd },
  diskSizeBytes: 1024 * MIB,
  refugeFile: { partitionNumber: 1, name: 'reimage-refuge' },
  items: [
    {
      name: 'kernel',
      sizeBytes: 9 * MIB + 1,
      sha256: 'a'.repeat(64),
      ranges: [{ offsetBytes: 100 * MIB, lengthBytes: 9 * MIB + 4096 }],
    },
    {
      name: 'image',
      sizeBytes: 3 * MIB,
      sha256: 'b'.repeat(64),
      ranges: [
        { offsetBytes: 300 * MIB, lengthBytes: MIB },
        { offsetBytes: 200 * MIB, lengthBytes: 2 * MIB },
      ],
    },
    { name: 'bundle', sizeBytes: MIB, ranges: [{ offsetBytes: 400 * MIB, lengthBytes: MIB }] },
  ],
  image: { format: 'raw', sha256: 'c'.repeat(64), sizeBytes: 3 * MIB },
  createdAt: '2026-12-02T00:00:00.000Z',
};

const VALUES = [
  '0',
  '-1',
  '4096',
  '4095',
  '1e308',
  '9007199254740993',
  'null',
  'true',
  '[]',
  '{}',
  '""',
  '"bundle"',
  '"gpt"',
  '"msdos"',
];

/** The frame refilled around new JSON bytes (length and digest right), so mutations reach the schema. */
function reframe(frame: Buffer, json: Buffer): Buffer {
  const out = Buffer.from(frame);
  const room = out.length - JSON_AT;
  const body = json.subarray(0, Math.max(0, room));
  out.fill(0, JSON_AT);
  body.copy(out, JSON_AT);
  if (out.length >= JSON_AT) {
    out.writeUInt32LE(body.length, 20);
    createHash('sha256').update(body).digest().copy(out, 24);
  }
  return out;
}

/** The refuge header as the recovery initramfs reads it off the disk: untrusted bytes. */
export const refugeHeaderTarget: FuzzTarget = {
  name: 'refuge-header',
  async seeds() {
    return [
      encodeRefugeHeader(SEED_HEADER),
      encodeRefugeHeader({ ...SEED_HEADER, disk: { scheme: 'gpt', diskGuid: '00112233-4455-6677-8899-aabbccddeeff' } }),
    ];
  },
  dictionary: ['"sizeBytes"', '"ranges"', '"offsetBytes"', '"lengthBytes"', '"sha256"', '"__proto__"', ...VALUES],
  mutateStructure(input: Buffer, random: SeededRandom): Buffer {
    if (input.length < JSON_AT + 2) return input;
    const length = Math.min(input.readUInt32LE(20), input.length - JSON_AT);
    let json = input.subarray(JSON_AT, JSON_AT + length).toString('latin1');
    // Swap one JSON value (a number, a string or a literal) for an odd one.
    const values = [...json.matchAll(/-?\d+(?:\.\d+)?(?:e\d+)?|"[^"]*"|true|false|null/g)];
    const picked = values.length === 0 ? undefined : random.pick(values);
    if (picked?.index !== undefined) {
      json = json.slice(0, picked.index) + random.pick(VALUES) + json.slice(picked.index + picked[0].length);
    }
    return reframe(input, Buffer.from(json, 'latin1'));
  },
  async parse(input: Buffer) {
    const header = decodeRefugeHeader(input);
    for (const item of header.items) {
      const covered = item.ranges.reduce((sum, range) => sum + range.lengthBytes, 0);
      if (covered !== Math.ceil(item.sizeBytes / 4096) * 4096)
        return { invalid: `${item.name} ranges do not cover it` };
      for (const range of item.ranges) {
        if (range.offsetBytes % 4096 !== 0 || range.offsetBytes + range.lengthBytes > header.diskSizeBytes) {
          return { invalid: `${item.name} has a range off the disk or misaligned` };
        }
      }
    }
    return SOUND;
  },
};
