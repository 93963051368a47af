import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePaxRecords, encodePaxRecords } from '../../../src/retain/pax-records.ts';
import type { UstarHeader } from '../../../src/retain/tar-header.ts';
import { decodeUstarHeader, encodeUstarHeader } from '../../../src/retain/tar-header.ts';
import { encodeMemberHeader, formatPaxTime, parsePaxTime } from '../../../src/retain/tar-writer.ts';

describe('pax records', () => {
  const cases: Array<[string, string, Buffer]> = [
    ['short ascii', 'path', Buffer.from('etc/ssh/key')],
    ['binary with NUL and newline', 'SCHILY.xattr.user.bin', Buffer.from([0, 10, 255, 0x3d, 0x20, 0])],
    ['empty value', 'SCHILY.xattr.user.empty', Buffer.alloc(0)],
    ['utf-8 name', 'path', Buffer.from('etc/ké y\tz\n', 'utf8')],
    // Lengths where adding the length's own digits crosses a power of ten.
    ['length crossing 10', 'k', Buffer.from('x'.repeat(3))],
    ['length crossing 100', 'k', Buffer.from('x'.repeat(93))],
    ['length crossing 1000', 'k', Buffer.from('x'.repeat(992))],
  ];
  for (const [name, key, value] of cases) {
    it(`round-trips: ${name}`, () => {
      const encoded = encodePaxRecords([[key, value]]);
      const space = encoded.indexOf(0x20);
      assert.equal(Number(encoded.toString('ascii', 0, space)), encoded.length, 'the length counts the whole record');
      assert.deepEqual(decodePaxRecords(encoded).get(key), value);
    });
  }

  it('keeps several records and their order-independent values', () => {
    const records = decodePaxRecords(
      encodePaxRecords([
        ['a', 'one'],
        ['b', Buffer.from([1, 2])],
      ]),
    );
    assert.deepEqual([...records.keys()], ['a', 'b']);
  });

  const bad: Array<[string, Buffer]> = [
    ['length past the end', Buffer.from('99 path=x\n')],
    ['no equals sign', Buffer.from('9 pathx\n\n')],
    ['non-numeric length', Buffer.from('x path=y\n')],
    ['missing final newline', Buffer.from('10 path=xy')],
  ];
  for (const [name, data] of bad) {
    it(`refuses ${name}`, () => {
      assert.throws(() => decodePaxRecords(data), { code: 'REIMAGE_RETAIN_BUNDLE_CORRUPT' });
    });
  }
});

describe('ustar header', () => {
  const header: UstarHeader = {
    name: 'etc/ssh/ssh_host_ed25519_key',
    mode: 0o4755,
    uid: 1001,
    gid: 1002,
    sizeBytes: 12345,
    mtimeSec: 1700000000,
    typeFlag: '0',
    linkName: '',
    userName: 'kiosk',
    groupName: 'kiosk',
    devMajor: 0,
    devMinor: 0,
  };

  it('round-trips every field', () => {
    assert.deepEqual(decodeUstarHeader(encodeUstarHeader(header), 0), header);
  });

  it('refuses a header whose checksum does not match', () => {
    const block = encodeUstarHeader(header);
    block[5] = (block[5] ?? 0) ^ 1;
    assert.throws(() => decodeUstarHeader(block, 0), { code: 'REIMAGE_RETAIN_BUNDLE_CORRUPT' });
  });

  it('puts long, non-ASCII or oversized values into pax records', () => {
    const block = encodeMemberHeader({
      name: `etc/${'d'.repeat(120)}/ké y`,
      typeFlag: '0',
      mode: 0o600,
      uid: 3_000_000,
      gid: 0,
      userName: 'root',
      groupName: 'root',
      sizeBytes: 1,
      mtimeNs: 1_700_000_000_123_456_789n,
      linkName: '',
      devMajor: 0,
      devMinor: 0,
      xattrs: new Map([['security.capability', Buffer.from([1, 0, 0, 2])]]),
    });
    const paxHeader = decodeUstarHeader(block.subarray(0, 512), 0);
    assert.equal(paxHeader.typeFlag, 'x');
    const records = decodePaxRecords(block.subarray(512, 512 + paxHeader.sizeBytes));
    assert.equal(records.get('path')?.toString('utf8'), `etc/${'d'.repeat(120)}/ké y`);
    assert.equal(records.get('uid')?.toString(), '3000000');
    assert.equal(records.get('mtime')?.toString(), '1700000000.123456789');
    assert.deepEqual(records.get('SCHILY.xattr.security.capability'), Buffer.from([1, 0, 0, 2]));
  });
});

describe('pax times', () => {
  const cases: Array<[bigint, string]> = [
    [0n, '0'],
    [1_700_000_000_000_000_000n, '1700000000'],
    [1_700_000_000_123_456_789n, '1700000000.123456789'],
    [1_600_000_000_000_000_001n, '1600000000.000000001'],
    [1_500_000_000_500_000_000n, '1500000000.5'],
    [-1_500_000_000n, '-1.5'],
  ];
  for (const [timeNs, text] of cases) {
    it(`${timeNs} ns <-> "${text}"`, () => {
      assert.equal(formatPaxTime(timeNs), text);
      assert.equal(parsePaxTime(text), timeNs);
    });
  }
  it('truncates digits beyond nanoseconds and refuses junk', () => {
    assert.equal(parsePaxTime('1.1234567891'), 1_123_456_789n);
    assert.equal(parsePaxTime('1e9'), undefined);
    assert.equal(parsePaxTime(''), undefined);
  });
});
