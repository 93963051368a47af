import { ReimageError } from '../core/reimage-error.ts';

/**
 * pax extended header records: `LEN KEY=VALUE\n`, where LEN counts the whole record in bytes,
 * itself included. Values stay raw bytes: xattr values (ACL blobs, file capabilities) are binary,
 * and decoding them as UTF-8 would corrupt them (the tar-stream bug noted in FACTS.md).
 */
export type PaxRecords = ReadonlyMap<string, Buffer>;

export function encodePaxRecords(records: Iterable<readonly [string, Buffer | string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, rawValue] of records) {
    if (key.includes('=') || key.includes('\n') || key.length === 0) {
      throw new ReimageError('REIMAGE_RETAIN_BUNDLE_CORRUPT', `Cannot store the pax key "${key}".`, {
        evidence: { field: 'pax key', actual: key },
      });
    }
    const value = typeof rawValue === 'string' ? Buffer.from(rawValue, 'utf8') : rawValue;
    const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
    // The length prefix counts its own digits, so adding digits can change the count.
    let lengthBytes = body.length + 1;
    while (String(lengthBytes).length + body.length !== lengthBytes) lengthBytes += 1;
    parts.push(Buffer.from(String(lengthBytes), 'ascii'), body);
  }
  return Buffer.concat(parts);
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
    records.set(key, Buffer.from(data.subarray(equals + 1, end - 1)));
    offset = end;
  }
  return records;
}
