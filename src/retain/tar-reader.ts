import { quoteInput } from '../core/quote-input.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { decodePaxRecords } from './pax-records.ts';
import { decodeUstarHeader, isZeroBlock, paddedSize, TAR_BLOCK_BYTES } from './tar-header.ts';
import { parsePaxTime, type TarMemberSpec } from './tar-writer.ts';
import type { WindowReader } from './window-reader.ts';
import { createWindowReader } from './window-reader.ts';

/**
 * A member as read back: pax values applied over the ustar header. The same fields as a
 * member written (any type flag, since the archive is untrusted), plus where it sits.
 */
export interface TarMember extends Omit<TarMemberSpec, 'typeFlag'> {
  readonly typeFlag: string;
  /** Where the member's content starts in the archive file. */
  readonly dataOffsetBytes: number;
  readonly headerOffsetBytes: number;
}

/** Pax headers larger than this are refused: ours hold a few xattrs, and a hostile size must not exhaust RAM. */
const MAX_PAX_BYTES = 16 * 1024 * 1024;

function corrupt(message: string, offsetBytes: number): ReimageError {
  return new ReimageError(
    'REIMAGE_RETAIN_BUNDLE_CORRUPT',
    `The bundle is damaged or not a retention bundle: ${message}. Capture the bundle again.`,
    { evidence: { offsetBytes } },
  );
}

/**
 * A view into the reader's window, valid until its next read: callers decode it at once (header
 * fields become strings and numbers, pax values are copied by decodePaxRecords).
 */
function readExactly(reader: WindowReader, positionBytes: number, lengthBytes: number): Buffer {
  const view = reader.read(positionBytes, lengthBytes);
  if (view.length !== lengthBytes) throw corrupt('unexpected end of file', positionBytes + view.length);
  return view;
}

function paxNumber(records: ReadonlyMap<string, Buffer>, key: string, fallback: number, offsetBytes: number): number {
  const raw = records.get(key);
  if (raw === undefined) return fallback;
  const text = raw.toString('ascii');
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw corrupt(`bad pax ${key} ${quoteInput(text)}`, offsetBytes);
  }
  return Number(text);
}

/**
 * Reads member headers one after another, seeking over contents, so listing a bundle costs a
 * few reads per member whatever the file sizes. Contents are read later by offset. Synchronous
 * reads: a bundle of 10,000 keys and configs is 20,000 small reads (docs/adr/0103).
 */
export function* readTarMembers(fd: number, fileSizeBytes: number): Generator<TarMember> {
  const reader = createWindowReader(fd);
  let offset = 0;
  let pending: Map<string, Buffer> | undefined;
  for (;;) {
    if (offset + TAR_BLOCK_BYTES > fileSizeBytes) throw corrupt('archive ends without an end marker', offset);
    const block = readExactly(reader, offset, TAR_BLOCK_BYTES);
    if (isZeroBlock(block)) {
      if (pending !== undefined) throw corrupt('pax header without a member', offset);
      return;
    }
    const header = decodeUstarHeader(block, offset);
    const dataOffsetBytes = offset + TAR_BLOCK_BYTES;
    if (header.typeFlag === 'x' || header.typeFlag === 'g') {
      if (header.typeFlag === 'g') throw corrupt('global pax headers are not used in retention bundles', offset);
      if (pending !== undefined) throw corrupt('two pax headers in a row', offset);
      if (header.sizeBytes > MAX_PAX_BYTES) throw corrupt('pax header too large', offset);
      if (dataOffsetBytes + header.sizeBytes > fileSizeBytes) throw corrupt('pax header past end of file', offset);
      pending = decodePaxRecords(readExactly(reader, dataOffsetBytes, header.sizeBytes));
      offset = dataOffsetBytes + paddedSize(header.sizeBytes);
      continue;
    }
    const records: ReadonlyMap<string, Buffer> = pending ?? new Map<string, Buffer>();
    pending = undefined;
    const xattrs = new Map<string, Buffer>();
    for (const [key, value] of records) {
      if (key.startsWith('SCHILY.xattr.')) xattrs.set(key.slice('SCHILY.xattr.'.length), value);
    }
    const mtimeText = records.get('mtime')?.toString('ascii');
    const mtimeNs = mtimeText === undefined ? BigInt(header.mtimeSec) * 1_000_000_000n : parsePaxTime(mtimeText);
    if (mtimeNs === undefined) throw corrupt(`bad pax mtime ${quoteInput(mtimeText ?? '')}`, offset);
    const sizeBytes = paxNumber(records, 'size', header.sizeBytes, offset);
    // Only regular files carry content in our bundles; a size on anything else is hostile or foreign.
    const carriesData = header.typeFlag === '0' || header.typeFlag === '7';
    const contentBytes = carriesData ? sizeBytes : 0;
    if (!carriesData && sizeBytes !== 0)
      throw corrupt(`member ${quoteInput(header.name)} of type ${quoteInput(header.typeFlag)} has content`, offset);
    if (dataOffsetBytes + contentBytes > fileSizeBytes) throw corrupt('member content past end of file', offset);
    yield {
      name: records.get('path')?.toString('utf8') ?? header.name,
      typeFlag: header.typeFlag,
      mode: header.mode,
      uid: paxNumber(records, 'uid', header.uid, offset),
      gid: paxNumber(records, 'gid', header.gid, offset),
      userName: records.get('uname')?.toString('utf8') ?? header.userName,
      groupName: records.get('gname')?.toString('utf8') ?? header.groupName,
      sizeBytes,
      mtimeNs,
      linkName: records.get('linkpath')?.toString('utf8') ?? header.linkName,
      devMajor: header.devMajor,
      devMinor: header.devMinor,
      xattrs,
      dataOffsetBytes,
      headerOffsetBytes: offset,
    };
    offset = dataOffsetBytes + paddedSize(contentBytes);
  }
}
