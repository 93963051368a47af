import { decodePaxRecords, encodePaxRecords } from '../../src/retain/pax-records.ts';
import { paddedSize, TAR_BLOCK_BYTES } from '../../src/retain/tar-header.ts';
import type { SeededRandom } from './seeded-random.ts';

interface HeaderField {
  readonly offset: number;
  readonly width: number;
  readonly kind: 'text' | 'octal' | 'flag' | 'magic';
}

const FIELDS: readonly HeaderField[] = [
  { offset: 0, width: 100, kind: 'text' }, // name
  { offset: 100, width: 8, kind: 'octal' }, // mode
  { offset: 108, width: 8, kind: 'octal' }, // uid
  { offset: 116, width: 8, kind: 'octal' }, // gid
  { offset: 124, width: 12, kind: 'octal' }, // size
  { offset: 136, width: 12, kind: 'octal' }, // mtime
  { offset: 156, width: 1, kind: 'flag' }, // typeflag
  { offset: 157, width: 100, kind: 'text' }, // linkname
  { offset: 257, width: 8, kind: 'magic' }, // magic + version
  { offset: 265, width: 32, kind: 'text' }, // uname
  { offset: 297, width: 32, kind: 'text' }, // gname
  { offset: 329, width: 8, kind: 'octal' }, // devmajor
  { offset: 337, width: 8, kind: 'octal' }, // devminor
  { offset: 345, width: 155, kind: 'text' }, // prefix
];

const TYPE_FLAGS = ['0', '1', '2', '3', '4', '5', '6', '7', 'x', 'g', 'L', 'K', 'S', 'V', '\0', 'Z'];
const MAGICS = ['ustar\u000000', 'ustar  \u0000', 'ustar\u0000\u0000\u0000', 'USTAR\u000000', '\u0000'.repeat(8)];
const TEXTS = ['', '..', '../../etc/shadow', '/abs', 'a'.repeat(200), '\u00ff\u00fe', 'x\u0000y', 'PaxHeaders/x'];

/** An octal field's interesting contents: empty, maximal, unterminated, base-256 (GNU), negative, the field ± 1. */
function octalValue(random: SeededRandom, width: number, current: number): Buffer {
  const out = Buffer.alloc(width);
  const text = (value: string): Buffer => {
    out.write(value, 0, 'latin1');
    return out;
  };
  switch (random.below(10)) {
    case 0:
      return out;
    case 1:
      return text('7'.repeat(width));
    case 2:
      return text(`${'7'.repeat(width - 1)}\0`);
    case 3: {
      // GNU base-256, 2^60 and 2^53 + 1: must be refused or bounded, never allocated.
      out[0] = 0x80;
      const value = random.chance(0.5) ? 2n ** 60n : 2n ** 53n + 1n;
      for (let i = width - 1, rest = value; i > 0; i -= 1, rest >>= 8n) out[i] = Number(rest & 0xffn);
      return out;
    }
    case 4:
      return out.fill(0xff);
    case 5:
      return text(' -1 ');
    case 6:
      return text(`  ${(current + (random.chance(0.5) ? 1 : -1)).toString(8)} `);
    case 7:
      return text('0'.repeat(width));
    case 8:
      return text(`${(current + 1 + random.below(4096)).toString(8).padStart(width - 1, '0')}\0`);
    default:
      return text('8 9');
  }
}

function readOctal(block: Buffer, offset: number, width: number): number {
  const text = block.toString('latin1', offset, offset + width).replace(/[\0 ].*$/s, '');
  const value = Number.parseInt(text, 8);
  return Number.isNaN(value) ? 0 : value;
}

/** Recomputes a header's checksum, so a mutated field reaches the parser instead of the checksum check. */
export function fixChecksum(archive: Buffer, headerOffset: number): void {
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK_BYTES; i += 1) {
    sum += i >= 148 && i < 156 ? 0x20 : (archive[headerOffset + i] ?? 0);
  }
  archive.write(`${sum.toString(8).padStart(6, '0')}\0 `, headerOffset + 148, 8, 'latin1');
}

/** Offsets of blocks that look like ustar headers. */
function headerOffsets(archive: Buffer): number[] {
  const offsets: number[] = [];
  for (let at = 0; at + TAR_BLOCK_BYTES <= archive.length; at += TAR_BLOCK_BYTES) {
    if (archive.toString('latin1', at + 257, at + 262) === 'ustar') offsets.push(at);
  }
  return offsets;
}

const PAX_KEYS = ['path', 'linkpath', 'size', 'mtime', 'uid', 'gid', 'uname', 'gname', 'SCHILY.xattr.user.x', 'atime'];
const PAX_VALUES = [
  '',
  '-1',
  '1152921504606846976',
  '9007199254740993',
  '99999999999999999',
  '1e3',
  '.5',
  '-0.5',
  '99999999999999999999.999999999999',
  '1700000000.1234567891234',
  '../../etc/shadow',
  '/abs/path',
  'a\0b',
  '\u00ff',
  ' 12',
];

/** Rewrites one pax header's records (odd values, wrong lengths), then its size field, checksum and padding. */
function mutatePax(archive: Buffer, headerOffset: number, random: SeededRandom): Buffer {
  const sizeBytes = readOctal(archive, headerOffset + 124, 12);
  const dataStart = headerOffset + TAR_BLOCK_BYTES;
  const dataEnd = Math.min(archive.length, dataStart + sizeBytes);
  let records: Array<[string, Buffer]>;
  try {
    records = [...decodePaxRecords(archive.subarray(dataStart, dataEnd))];
  } catch {
    records = [];
  }
  const key = random.pick(PAX_KEYS);
  const value = Buffer.from(random.pick(PAX_VALUES), 'latin1');
  if (random.chance(0.5) || records.length === 0) records.push([key, value]);
  else records[random.below(records.length)] = [records[random.below(records.length)]?.[0] ?? key, value];
  let payload: Buffer;
  try {
    payload = encodePaxRecords(records);
  } catch {
    // The reader takes keys the writer refuses (a newline in a key): nothing to rebuild from.
    return archive;
  }
  if (random.chance(0.4)) {
    // A record whose LEN lies: off by one, zero, leading zeros, huge, or more digits than fit.
    const lies = ['0', '1', '012', '99999999999', '1'.repeat(13), '-5', String(payload.length + 1)];
    const space = payload.indexOf(0x20);
    const lengthText = payload.toString('latin1', 0, space);
    const lie = random.chance(0.5) ? random.pick(lies) : String(Number(lengthText) + (random.chance(0.5) ? 1 : -1));
    payload = Buffer.concat([Buffer.from(lie, 'latin1'), payload.subarray(space)]);
  }
  const header = Buffer.from(archive.subarray(headerOffset, headerOffset + TAR_BLOCK_BYTES));
  const claimed = random.chance(0.85) ? payload.length : payload.length + random.below(2048) - 1024;
  header.write(`${Math.max(0, claimed).toString(8).padStart(11, '0')}\0`, 124, 12, 'latin1');
  fixChecksum(header, 0);
  const padded = Buffer.alloc(paddedSize(payload.length));
  payload.copy(padded);
  return Buffer.concat([
    archive.subarray(0, headerOffset),
    header,
    padded,
    archive.subarray(dataStart + paddedSize(sizeBytes)),
  ]);
}

/** A structure-aware tar mutation: one header field rewritten (checksum fixed most of the time), or one pax header. */
export function mutateTar(input: Buffer, random: SeededRandom): Buffer {
  const offsets = headerOffsets(input);
  if (offsets.length === 0) return input;
  const headerOffset = random.pick(offsets);
  if (input[headerOffset + 156] === 0x78 && random.chance(0.5)) return mutatePax(input, headerOffset, random);
  const out = Buffer.from(input);
  const field = random.pick(FIELDS);
  const at = headerOffset + field.offset;
  let value: Buffer;
  if (field.kind === 'octal') value = octalValue(random, field.width, readOctal(out, at, field.width));
  else if (field.kind === 'flag') value = Buffer.from(random.pick(TYPE_FLAGS), 'latin1');
  else if (field.kind === 'magic') value = Buffer.from(random.pick(MAGICS), 'latin1');
  else value = Buffer.from(random.pick(TEXTS), 'utf8');
  out.fill(0, at, at + field.width);
  value.copy(out, at, 0, field.width);
  if (random.chance(0.9)) fixChecksum(out, headerOffset);
  return out;
}
