import { ReimageError } from '../core/reimage-error.ts';

/**
 * pax extended header records: `LEN KEY=VALUE\n`, where LEN counts the whole record in bytes,
 * itself included. Values stay raw bytes: xattr values (ACL blobs, file capabilities) are binary,
 * and decoding them as UTF-8 would corrupt them (the tar-stream bug noted in FACTS.md).
 */
export type PaxRecords = ReadonlyMap<string, Buffer>;

export function encodePaxRecords(records: Iterable<readonly [string, Buffer | string]>): Buffer {
  // Sizes first, then one buffer: a member has a dozen records and a bundle 10,000 members.
  const sized: Array<{ key: string; value: Buffer | string; valueBytes: number; lengthText: string }> = [];
  let totalBytes = 0;
  for (const [key, value] of records) {
    if (key.includes('=') || key.includes('\n') || key.length === 0) {
      throw new ReimageError('REIMAGE_RETAIN_BUNDLE_CORRUPT', `Cannot store the pax key "${key}".`, {
        evidence: { field: 'pax key', actual: key },
      });
    }
    const valueBytes = typeof value === 'string' ? Buffer.byteLength(value, 'utf8') : value.length;
    // ' KEY=VALUE\n' after the length, which counts its own digits: adding digits can change it.
    const bodyBytes = Buffer.byteLength(key, 'utf8') + valueBytes + 3;
    let lengthBytes = bodyBytes + 1;
    while (String(lengthBytes).length + bodyBytes !== lengthBytes) lengthBytes += 1;
    sized.push({ key, value, valueBytes, lengthText: String(lengthBytes) });
    totalBytes += lengthBytes;
  }
  const out = Buffer.allocUnsafe(totalBytes);
  let offset = 0;
  for (const { key, value, valueBytes, lengthText } of sized) {
    offset += out.write(`${lengthText} ${key}=`, offset, 'utf8');
    if (typeof value === 'string') out.write(value, offset, 'utf8');
    else value.copy(out, offset);
    offset += valueBytes;
    out[offset] = 0x0a;
    offset += 1;
  }
  return out;
}

function corrupt(what: string, offsetBytes: number): ReimageError {
  return new ReimageError(
    'REIMAGE_RETAIN_BUNDLE_CORRUPT',
    `The bundle has a malformed pax header (${what}). The bundle is damaged; capture it again.`,
    { evidence: { field: 'pax record', offsetBytes } },
  );
}

export function decodePaxRecords(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let offset = 0;
  while (offset < data.length) {
    // Trailing NUL padding after the last record is tolerated (some writers pad).
    if (data[offset] === 0) {
      if (data.subarray(offset).every((byte) => byte === 0)) break;
      throw corrupt('NUL inside records', offset);
    }
    const space = data.indexOf(0x20, offset);
    if (space === -1 || space - offset > 12) throw corrupt('no length', offset);
    const lengthText = data.toString('ascii', offset, space);
    if (!/^[1-9][0-9]*$/.test(lengthText)) throw corrupt('bad length', offset);
    const lengthBytes = Number(lengthText);
    const end = offset + lengthBytes;
    if (end > data.length || data[end - 1] !== 0x0a) throw corrupt('length past end', offset);
    const equals = data.indexOf(0x3d, space + 1);
    if (equals === -1 || equals >= end) throw corrupt('no "="', offset);
    const key = data.toString('utf8', space + 1, equals);
    if (key.length === 0) throw corrupt('empty key', offset);
    // A copy (the caller's buffer is a window that moves on), made without an intermediate view.
    const value = Buffer.allocUnsafe(end - 1 - (equals + 1));
    data.copy(value, 0, equals + 1, end - 1);
    records.set(key, value);
    offset = end;
  }
  return records;
}
