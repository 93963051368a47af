import { ReimageError } from '../core/reimage-error.ts';

export const BLOCK_BYTES = 512;

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
  const fitting = value >= 0 && value <= limit && Number.isInteger(value) ? value : 0;
  block.write(`${fitting.toString(8).padStart(width - 1, '0')}\0`, offset, width, 'ascii');
}

/** Writes as much of `text` as fits in `width` bytes without splitting a UTF-8 character. */
function writeText(block: Buffer, offset: number, width: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let length = Math.min(bytes.length, width);
  while (length > 0 && length < bytes.length && ((bytes[length] ?? 0) & 0xc0) === 0x80) length -= 1;
  bytes.copy(block, offset, 0, length);
}

export function fitsUstarField(text: string, width: number): boolean {
  // ASCII only, so that a reader that ignores pax records still sees the same name.
  return Buffer.byteLength(text, 'utf8') <= width && /^[\x20-\x7e]*$/.test(text);
}

export function fitsOctal(value: number, width: 8 | 12): boolean {
  return Number.isInteger(value) && value >= 0 && value <= (OCTAL_LIMITS[width] ?? 0);
}

export function encodeUstarHeader(header: UstarHeader): Buffer {
  const block = Buffer.alloc(BLOCK_BYTES);
  writeText(block, 0, 100, header.name);
  writeOctal(block, 100, 8, header.mode);
  writeOctal(block, 108, 8, header.uid);
  writeOctal(block, 116, 8, header.gid);
  writeOctal(block, 124, 12, header.sizeBytes);
  writeOctal(block, 136, 12, header.mtimeSec);
  block.fill(0x20, 148, 156);
  block.write(header.typeFlag, 156, 1, 'ascii');
  writeText(block, 157, 100, header.linkName);
  block.write('ustar\u000000', 257, 8, 'ascii');
  writeText(block, 265, 32, header.userName);
  writeText(block, 297, 32, header.groupName);
  writeOctal(block, 329, 8, header.devMajor);
  writeOctal(block, 337, 8, header.devMinor);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

function corrupt(message: string, offsetBytes: number): ReimageError {
  return new ReimageError(
    'REIMAGE_RETAIN_BUNDLE_CORRUPT',
    `The bundle is not a valid tar archive: ${message}. Capture the bundle again.`,
    { evidence: { offsetBytes } },
  );
}

function readText(block: Buffer, offset: number, width: number): string {
  const field = block.subarray(offset, offset + width);
  const nul = field.indexOf(0);
  return field.toString('utf8', 0, nul === -1 ? width : nul);
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
  const text = block
    .toString('ascii', offset, offset + width)
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw corrupt(`bad octal field "${text}"`, blockOffsetBytes);
  return Number.parseInt(text, 8);
}

export function isZeroBlock(block: Buffer): boolean {
  return block.every((byte) => byte === 0);
}

/** Decodes one header block, checking its checksum. */
export function decodeUstarHeader(block: Buffer, blockOffsetBytes: number): UstarHeader {
  if (block.length !== BLOCK_BYTES) throw corrupt('truncated header', blockOffsetBytes);
  const stored = readNumber(block, 148, 8, blockOffsetBytes);
  let sum = 0;
  for (let i = 0; i < BLOCK_BYTES; i += 1) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
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
  return Math.ceil(sizeBytes / BLOCK_BYTES) * BLOCK_BYTES;
}
