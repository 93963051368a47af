import { quoteInput } from '../core/quote-input.ts';
import { ReimageError } from '../core/reimage-error.ts';

/** A tar "block": the unit of headers and padding (not a disk sector, not the writer's write block). */
export const TAR_BLOCK_BYTES = 512;

/** ustar type flags we write or accept. */
export type TarTypeFlag = '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x' | 'g';

export interface UstarHeader {
  /** Already truncated to fit; the full name travels in a pax `path` record. */
  readonly name: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly sizeBytes: number;
  readonly mtimeSec: number;
  readonly typeFlag: string;
  readonly linkName: string;
  readonly userName: string;
  readonly groupName: string;
  readonly devMajor: number;
  readonly devMinor: number;
}

const OCTAL_LIMITS: Record<number, number> = { 8: 0o7777777, 12: 0o77777777777 };

/** Writes `value` as NUL-terminated octal, or 0 when it does not fit (a pax record then carries it). */
function writeOctal(block: Buffer, offset: number, width: number, value: number): void {
  const limit = OCTAL_LIMITS[width] ?? 0;
  // Digit by digit from the right: no string per field (a bundle writes 14 fields per member).
  let rest = value >= 0 && value <= limit && Number.isInteger(value) ? value : 0;
  block[offset + width - 1] = 0;
  for (let i = offset + width - 2; i >= offset; i -= 1) {
    block[i] = 0x30 + (rest % 8);
    rest = Math.floor(rest / 8);
  }
}

/** Writes as much of `text` as fits in `width` bytes; Buffer#write never splits a UTF-8 character. */
function writeText(block: Buffer, offset: number, width: number, text: string): void {
  if (text !== '') block.write(text, offset, width, 'utf8');
}

export function fitsUstarField(text: string, width: number): boolean {
  // ASCII only, so that a reader that ignores pax records still sees the same name.
  return Buffer.byteLength(text, 'utf8') <= width && /^[\x20-\x7e]*$/.test(text);
}

export function fitsOctal(value: number, width: 8 | 12): boolean {
  return Number.isInteger(value) && value >= 0 && value <= (OCTAL_LIMITS[width] ?? 0);
}

export function encodeUstarHeader(header: UstarHeader): Buffer {
  const block = Buffer.alloc(TAR_BLOCK_BYTES);
  encodeUstarHeaderInto(block, 0, header);
  return block;
}

/** Writes one header block at `offset` of a zero-filled `target` (the writer packs members into one buffer). */
export function encodeUstarHeaderInto(target: Buffer, offset: number, header: UstarHeader): void {
  writeText(target, offset, 100, header.name);
  writeOctal(target, offset + 100, 8, header.mode);
  writeOctal(target, offset + 108, 8, header.uid);
  writeOctal(target, offset + 116, 8, header.gid);
  writeOctal(target, offset + 124, 12, header.sizeBytes);
  writeOctal(target, offset + 136, 12, header.mtimeSec);
  // The checksum is computed with its own field as spaces.
  for (let i = offset + 148; i < offset + 156; i += 1) target[i] = 0x20;
  target.write(header.typeFlag, offset + 156, 1, 'ascii');
  writeText(target, offset + 157, 100, header.linkName);
  target.write('ustar\u000000', offset + 257, 8, 'ascii');
  writeText(target, offset + 265, 32, header.userName);
  writeText(target, offset + 297, 32, header.groupName);
  writeOctal(target, offset + 329, 8, header.devMajor);
  writeOctal(target, offset + 337, 8, header.devMinor);
  let sum = 0;
  for (let i = offset; i < offset + TAR_BLOCK_BYTES; i += 1) sum += target[i] ?? 0;
  target.write(`${sum.toString(8).padStart(6, '0')}\0 `, offset + 148, 8, 'ascii');
}

function corrupt(message: string, offsetBytes: number): ReimageError {
  return new ReimageError(
    'REIMAGE_RETAIN_BUNDLE_CORRUPT',
    `The bundle is not a valid tar archive: ${message}. Capture the bundle again.`,
    { evidence: { offsetBytes } },
  );
}

function readText(block: Buffer, offset: number, width: number): string {
  // A scan instead of subarray().indexOf(): a view per field costs more than the field.
  let end = offset;
  while (end < offset + width && block[end] !== 0) end += 1;
  return end === offset ? '' : block.toString('utf8', offset, end);
}

function readNumber(block: Buffer, offset: number, width: number, blockOffsetBytes: number): number {
  const first = block[offset] ?? 0;
  if ((first & 0x80) !== 0) {
    // GNU base-256 for values octal cannot hold; we read it but never write it.
    let value = first & 0x7f;
    for (let i = 1; i < width; i += 1) value = value * 256 + (block[offset + i] ?? 0);
    if (!Number.isSafeInteger(value)) throw corrupt('number too large', blockOffsetBytes);
    return value;
  }
  // Octal digits, optionally led by spaces and ended by NULs or spaces; read byte by byte
  // because a header has eight such fields and a bundle 20,000 headers (no regex, no strings).
  const end = offset + width;
  let i = offset;
  while (i < end && block[i] === 0x20) i += 1;
  let value = 0;
  let digits = 0;
  for (; i < end; i += 1) {
    const byte = block[i] ?? 0;
    if (byte < 0x30 || byte > 0x37) break;
    value = value * 8 + (byte - 0x30);
    digits += 1;
  }
  for (; i < end; i += 1) {
    const byte = block[i];
    if (byte !== 0 && byte !== 0x20) {
      const text = block.toString('latin1', offset, end);
      throw corrupt(`bad octal field ${quoteInput(text.replace(/[\0 ]+$/, ''))}`, blockOffsetBytes);
    }
  }
  return digits === 0 ? 0 : value;
}

const ZERO_BLOCK = Buffer.alloc(TAR_BLOCK_BYTES);

export function isZeroBlock(block: Buffer): boolean {
  return block.equals(ZERO_BLOCK);
}

/** Decodes one header block, checking its checksum. */
export function decodeUstarHeader(block: Buffer, blockOffsetBytes: number): UstarHeader {
  if (block.length !== TAR_BLOCK_BYTES) throw corrupt('truncated header', blockOffsetBytes);
  const stored = readNumber(block, 148, 8, blockOffsetBytes);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK_BYTES; i += 1) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  if (sum !== stored) throw corrupt('header checksum mismatch', blockOffsetBytes);
  const magic = block.toString('ascii', 257, 263);
  if (magic !== 'ustar\0' && magic !== 'ustar ') throw corrupt('not a ustar header', blockOffsetBytes);
  const prefix = magic === 'ustar\0' ? readText(block, 345, 155) : '';
  const baseName = readText(block, 0, 100);
  return {
    name: prefix === '' ? baseName : `${prefix}/${baseName}`,
    mode: readNumber(block, 100, 8, blockOffsetBytes),
    uid: readNumber(block, 108, 8, blockOffsetBytes),
    gid: readNumber(block, 116, 8, blockOffsetBytes),
    sizeBytes: readNumber(block, 124, 12, blockOffsetBytes),
    mtimeSec: readNumber(block, 136, 12, blockOffsetBytes),
    typeFlag: block.toString('ascii', 156, 157).replace('\0', '0'),
    linkName: readText(block, 157, 100),
    userName: readText(block, 265, 32),
    groupName: readText(block, 297, 32),
    devMajor: readNumber(block, 329, 8, blockOffsetBytes),
    devMinor: readNumber(block, 337, 8, blockOffsetBytes),
  };
}

export function paddedSize(sizeBytes: number): number {
  return Math.ceil(sizeBytes / TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES;
}
