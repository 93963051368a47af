// A hostile set for the refuge header: the recovery initramfs trusts nothing it reads from the
// disk, so every frame field, every JSON field and every single byte is damaged once here, and
// each is refused with REIMAGE_REFUGE_DAMAGED naming what.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  decodeRefugeHeader,
  encodeRefugeHeader,
  REFUGE_HEADER_JSON_MAX_BYTES,
  type RefugeHeader,
} from '../../../src/boot/refuge-header.ts';
import { REFUGE_HEADER_BYTES } from '../../../src/boot/refuge-layout.ts';
import { isReimageError } from '../../../src/core/reimage-error.ts';

const MIB = 1024 * 1024;
const DIGEST = 'ab'.repeat(32);

const HEADER: RefugeHeader = {
  format: 1,
  journalId: '0123456789abcdef0123456789abcdef',
  disk: { scheme: 'gpt', diskGuid: '00112233-4455-6677-8899-aabbccddeeff' },
  diskSizeBytes: 1024 * MIB,
  refugeFile: { partitionNumber: 2, name: 'reimage-refuge' },
  items: [
    { name: 'core', sizeBytes: 60_000, sha256: DIGEST, ranges: [{ offsetBytes: 100 * MIB, lengthBytes: 61_440 }] },
    {
      name: 'image',
      sizeBytes: 5 * MIB + 1,
      sha256: 'cd'.repeat(32),
      ranges: [
        { offsetBytes: 300 * MIB, lengthBytes: 3 * MIB },
        { offsetBytes: 200 * MIB, lengthBytes: 2 * MIB + 4096 },
      ],
    },
    { name: 'bundle', sizeBytes: MIB, ranges: [{ offsetBytes: 400 * MIB, lengthBytes: MIB }] },
  ],
  image: { format: 'zst', sha256: 'ef'.repeat(32), sizeBytes: 5 * MIB + 1 },
  createdAt: '2026-12-02T00:00:00.000Z',
};

/** A frame with a correct digest around any JSON text: reaches the schema checks. */
function frame(json: string): Buffer {
  const block = Buffer.alloc(REFUGE_HEADER_BYTES);
  const bytes = Buffer.from(json, 'utf8');
  block.write('REIMAGE-REFUGE\0\0', 0, 'latin1');
  block.writeUInt32LE(1, 16);
  block.writeUInt32LE(bytes.length, 20);
  createHash('sha256').update(bytes).digest().copy(block, 24);
  bytes.copy(block, 64);
  return block;
}

function damage(bytes: Uint8Array): { message: string; field: unknown } {
  try {
    decodeRefugeHeader(bytes);
  } catch (e) {
    assert.ok(isReimageError(e), String(e));
    assert.equal(e.code, 'REIMAGE_REFUGE_DAMAGED');
    return { message: e.message, field: e.evidence.field };
  }
  assert.fail('the damaged header was accepted');
}

const withJson = (edit: (header: Record<string, unknown>) => void): Buffer => {
  const header = structuredClone(HEADER) as unknown as Record<string, unknown>;
  edit(header);
  return frame(JSON.stringify(header));
};
const items = (header: Record<string, unknown>): Record<string, unknown>[] => header.items as Record<string, unknown>[];

describe('refuge header', () => {
  it('round-trips in exactly REFUGE_HEADER_BYTES', () => {
    const block = encodeRefugeHeader(HEADER);
    assert.equal(block.length, REFUGE_HEADER_BYTES);
    assert.equal(block.subarray(0, 16).toString('latin1'), 'REIMAGE-REFUGE\0\0');
    assert.deepEqual(decodeRefugeHeader(block), HEADER);
    const msdos = { ...HEADER, disk: { scheme: 'msdos', signature: 0xffffffff } } as const;
    assert.deepEqual(decodeRefugeHeader(encodeRefugeHeader(msdos)), msdos);
  });

  const frameCases: { name: string; bytes: () => Uint8Array; says: RegExp; field: string }[] = [
    {
      name: 'truncated by one byte',
      bytes: () => encodeRefugeHeader(HEADER).subarray(1),
      says: /65535 bytes/,
      field: 'length',
    },
    {
      name: 'oversized by one block',
      bytes: () => Buffer.concat([encodeRefugeHeader(HEADER), Buffer.alloc(4096)]),
      says: /truncated or oversized/,
      field: 'length',
    },
    { name: 'empty', bytes: () => new Uint8Array(0), says: /0 bytes/, field: 'length' },
    {
      name: 'all zeros (never written)',
      bytes: () => Buffer.alloc(REFUGE_HEADER_BYTES),
      says: /magic/,
      field: 'magic',
    },
    {
      name: 'a wrong magic',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b.write('REIMAGE-BUNDLE\0\0', 0, 'latin1');
        return b;
      },
      says: /magic/,
      field: 'magic',
    },
    {
      name: 'format 2',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b.writeUInt32LE(2, 16);
        return b;
      },
      says: /format 2/,
      field: 'format',
    },
    {
      name: 'a reserved byte set',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b[60] = 1;
        return b;
      },
      says: /reserved/,
      field: 'reserved',
    },
    {
      name: 'a JSON length of 0',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b.writeUInt32LE(0, 20);
        return b;
      },
      says: /JSON length 0/,
      field: 'jsonLength',
    },
    {
      name: 'a JSON length past the frame',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b.writeUInt32LE(REFUGE_HEADER_JSON_MAX_BYTES + 1, 20);
        return b;
      },
      says: /JSON length/,
      field: 'jsonLength',
    },
    {
      name: 'a JSON length one short (the digest covers what the length says)',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b.writeUInt32LE(b.readUInt32LE(20) - 1, 20);
        return b;
      },
      says: /SHA-256/,
      field: 'sha256',
    },
    {
      name: 'a digest byte flipped',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b[30] = (b[30] ?? 0) ^ 0x01;
        return b;
      },
      says: /SHA-256/,
      field: 'sha256',
    },
    {
      name: 'a JSON byte changed',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b[100] = (b[100] ?? 0) ^ 0x20;
        return b;
      },
      says: /torn or overwritten/,
      field: 'sha256',
    },
    {
      name: 'a byte after the JSON (leftovers of another write)',
      bytes: () => {
        const b = encodeRefugeHeader(HEADER);
        b[REFUGE_HEADER_BYTES - 1] = 0x41;
        return b;
      },
      says: /after the JSON/,
      field: 'padding',
    },
    { name: 'JSON that does not parse', bytes: () => frame('{"format": 1,'), says: /does not parse/, field: 'json' },
    { name: 'JSON that is not an object', bytes: () => frame('[1,2]'), says: /not a valid header/, field: 'header' },
  ];
  for (const c of frameCases) {
    it(`refuses a frame with ${c.name}`, () => {
      const { message, field } = damage(c.bytes());
      assert.match(message, c.says);
      assert.equal(field, c.field);
    });
  }

  const fieldCases: { name: string; edit: (h: Record<string, unknown>) => void; field: RegExp }[] = [
    { name: 'format 2 inside the JSON', edit: (h) => (h.format = 2), field: /^format$/ },
    { name: 'a short journalId', edit: (h) => (h.journalId = 'abc'), field: /^journalId$/ },
    { name: 'an unknown disk scheme', edit: (h) => (h.disk = { scheme: 'apm', id: 1 }), field: /^disk/ },
    {
      name: 'an msdos signature beyond 32 bits',
      edit: (h) => (h.disk = { scheme: 'msdos', signature: 2 ** 32 }),
      field: /^disk\.signature$/,
    },
    {
      name: 'an upper-case disk GUID',
      edit: (h) => (h.disk = { scheme: 'gpt', diskGuid: '00112233-4455-6677-8899-AABBCCDDEEFF' }),
      field: /^disk\.diskGuid$/,
    },
    { name: 'a disk size of 0', edit: (h) => (h.diskSizeBytes = 0), field: /^diskSizeBytes$/ },
    { name: 'a fractional disk size', edit: (h) => (h.diskSizeBytes = 1.5), field: /^diskSizeBytes$/ },
    {
      name: 'partition number 0',
      edit: (h) => (h.refugeFile = { partitionNumber: 0, name: 'x' }),
      field: /^refugeFile\.partitionNumber$/,
    },
    {
      name: 'a refuge file name with a slash',
      edit: (h) => (h.refugeFile = { partitionNumber: 1, name: '../etc/shadow' }),
      field: /^refugeFile\.name$/,
    },
    { name: 'no items', edit: (h) => (h.items = []), field: /^items$/ },
    {
      name: 'an unknown item name',
      edit: (h) => ((items(h)[0] as Record<string, unknown>).name = 'rootkit'),
      field: /^items\.0\.name$/,
    },
    {
      name: 'an item twice',
      edit: (h) => (h.items = [items(h)[0], items(h)[0], items(h)[2]]),
      field: /^items$/,
    },
    { name: 'an item without its digest', edit: (h) => delete items(h)[0]?.sha256, field: /^items\.0$/ },
    { name: "a digest on the bundle's room", edit: (h) => ((items(h)[2] ?? {}).sha256 = DIGEST), field: /^items\.2$/ },
    {
      name: 'an upper-case digest',
      edit: (h) => ((items(h)[0] ?? {}).sha256 = DIGEST.toUpperCase()),
      field: /^items\.0\.sha256$/,
    },
    {
      name: 'a misaligned range',
      edit: (h) => ((items(h)[0] ?? {}).ranges = [{ offsetBytes: 100 * MIB + 512, lengthBytes: 61_440 }]),
      field: /^items\.0\.ranges\.0\.offsetBytes$/,
    },
    {
      name: 'ranges that do not cover the size',
      edit: (h) => ((items(h)[0] ?? {}).sizeBytes = 61_441),
      field: /^items\.0$/,
    },
    { name: 'an empty range list', edit: (h) => ((items(h)[0] ?? {}).ranges = []), field: /^items\.0\.ranges$/ },
    {
      name: 'a range past the end of the disk',
      edit: (h) => (h.diskSizeBytes = 400 * MIB),
      field: /^header$/,
    },
    {
      name: 'two items overlapping (a wipe of one would wipe the other)',
      edit: (h) => ((items(h)[2] ?? {}).ranges = [{ offsetBytes: 301 * MIB, lengthBytes: MIB }]),
      field: /^header$/,
    },
    { name: 'an unknown key', edit: (h) => (h.extra = true), field: /^header$/ },
    { name: 'an unknown key in an item', edit: (h) => ((items(h)[0] ?? {}).path = '/x'), field: /^items\.0$/ },
    {
      name: 'a bad image format',
      edit: (h) => (h.image = { ...(h.image as object), format: 'ZST!' }),
      field: /^image\.format$/,
    },
    { name: 'a local time', edit: (h) => (h.createdAt = '2026-12-02T01:00:00+01:00'), field: /^createdAt$/ },
  ];
  for (const c of fieldCases) {
    it(`refuses a header with ${c.name}`, () => {
      const { message, field } = damage(withJson(c.edit));
      assert.match(String(field), c.field, message);
      assert.match(message, /not a valid header/);
    });
  }

  it('refuses every single-byte change of the frame, the JSON and the padding', () => {
    const block = encodeRefugeHeader(HEADER);
    const jsonEnd = 64 + block.readUInt32LE(20);
    const positions = [...Array(jsonEnd + 64).keys(), REFUGE_HEADER_BYTES - 1];
    for (const position of positions) {
      const copy = Buffer.from(block);
      copy[position] = (copy[position] ?? 0) ^ 0x80;
      assert.throws(() => decodeRefugeHeader(copy), { code: 'REIMAGE_REFUGE_DAMAGED' }, `byte ${position}`);
    }
  });

  it('encode refuses a header the decoder would refuse, and one too large for its frame', () => {
    assert.throws(() => encodeRefugeHeader({ ...HEADER, journalId: 'x' }), { code: 'REIMAGE_REFUGE_LAYOUT_INVALID' });
    const ranges = Array.from({ length: 2000 }, (_, i) => ({ offsetBytes: i * 8192, lengthBytes: 4096 }));
    const fragmented: RefugeHeader = {
      ...HEADER,
      items: [{ name: 'image', sizeBytes: 2000 * 4096, sha256: DIGEST, ranges }],
    };
    assert.throws(
      () => encodeRefugeHeader(fragmented),
      (e: unknown) => {
        assert.ok(isReimageError(e) && e.code === 'REIMAGE_REFUGE_LAYOUT_INVALID');
        assert.match(e.message, /too many fragments/);
        return true;
      },
    );
  });
});
