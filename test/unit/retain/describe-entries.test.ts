import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { parseAccountDb } from '../../../src/retain/account-db.ts';
import { describeEntries, type EntryStats, type ObservedEntry } from '../../../src/retain/describe-entries.ts';

const OLD_ROOT = parseAccountDb(
  'root:x:0:0::/root:/bin/sh\nkiosk:x:1001:1001::/:/bin/sh\nsvc:x:1002:1002::/:/bin/false\n',
  'root:x:0:\nkiosk:x:1001:\nadm:x:4:\n',
);

const S_IFREG = 0o100000n;
const S_IFDIR = 0o040000n;

function stats(kind: EntryStats['kind'], overrides: Partial<EntryStats> = {}): EntryStats {
  const typeBits = kind === 'directory' ? S_IFDIR : S_IFREG;
  return {
    kind,
    mode: typeBits | 0o640n,
    uid: 1001n,
    gid: 4n,
    size: 0n,
    mtimeNs: 1_700_000_000_123_456_789n,
    nlink: 1n,
    dev: 2049n,
    ino: 100n,
    rdev: 0n,
    ...overrides,
  };
}

function observed(path: string, s: EntryStats, extra: Partial<ObservedEntry> = {}): ObservedEntry {
  return { path, sourcePath: `/mnt/old${path}`, stats: s, xattrs: new Map(), ...extra };
}

/** A POSIX ACL xattr as the kernel stores it: version 2, then (tag u16, perm u16, id u32) entries. */
function aclValue(entries: [tag: number, perm: number, id: number][]): Buffer {
  const value = Buffer.alloc(4 + 8 * entries.length);
  value.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    value.writeUInt16LE(tag, 4 + 8 * i);
    value.writeUInt16LE(perm, 6 + 8 * i);
    value.writeUInt32LE(id, 8 + 8 * i);
  });
  return value;
}
const NO_ID = 0xffffffff;

describe('describeEntries', () => {
  it('describes each kind: [path, stats] → [type, mode, owners, size, link, devices]', () => {
    const table: [ObservedEntry, Record<string, unknown>][] = [
      [
        observed('/etc/app.conf', stats('file', { size: 12n, mode: S_IFREG | 0o4755n })),
        { type: 'file', mode: 0o4755, uid: 1001, user: 'kiosk', gid: 4, group: 'adm', sizeBytes: 12 },
      ],
      [
        observed('/etc/app', stats('directory', { size: 4096n, uid: 0n, gid: 0n })),
        { type: 'directory', mode: 0o640, user: 'root', group: 'root', sizeBytes: 0 },
      ],
      [
        observed('/etc/link', stats('symlink', { size: 9n }), { linkTarget: 'app.conf' }),
        { type: 'symlink', sizeBytes: 0, linkTarget: 'app.conf' },
      ],
      [observed('/dev/fifo', stats('fifo')), { type: 'fifo' }],
      [
        // makedev(4, 64) in glibc's encoding: minor's low byte | major << 8.
        observed('/dev/ttyS0', stats('char-device', { rdev: (4n << 8n) | 64n })),
        { type: 'char-device', devMajor: 4, devMinor: 64 },
      ],
      [
        observed('/etc/orphan', stats('file', { uid: 4242n, gid: 4343n })),
        { uid: 4242, user: null, gid: 4343, group: null },
      ],
    ];
    for (const [input, expected] of table) {
      const [described] = describeEntries([input], OLD_ROOT).described;
      assert.ok(described !== undefined, input.path);
      const actual = Object.fromEntries(Object.keys(expected).map((key) => [key, Reflect.get(described.entry, key)]));
      assert.deepEqual(actual, expected, input.path);
      assert.equal(described.entry.mtimeNs, '1700000000123456789', 'to the nanosecond, as text');
      assert.equal(described.sourcePath, `/mnt/old${input.path}`);
    }
  });

  it('makes the second path of an inode a hard link to the first, and only within one device', () => {
    const a = stats('file', { nlink: 3n, ino: 7n, size: 5n });
    const { described, totalBytes } = describeEntries(
      [
        observed('/etc/a', a),
        observed('/etc/b', a),
        observed('/etc/c', { ...a, dev: 2050n }),
        observed('/etc/d', stats('file', { nlink: 1n, ino: 7n, size: 5n })),
      ],
      OLD_ROOT,
    );
    assert.deepEqual(
      described.map((d) => [d.entry.path, d.entry.type, d.entry.linkTarget, d.entry.sizeBytes]),
      [
        ['/etc/a', 'file', undefined, 5],
        ['/etc/b', 'hardlink', '/etc/a', 0],
        ['/etc/c', 'file', undefined, 5],
        ['/etc/d', 'file', undefined, 5],
      ],
    );
    assert.equal(totalBytes, 15, 'content counted once per inode');
  });

  it('skips sockets with the reason, and keeps going', () => {
    const { described, skipped } = describeEntries(
      [observed('/run/app.sock', stats('socket')), observed('/etc/x', stats('file'))],
      OLD_ROOT,
    );
    assert.deepEqual(skipped, [
      { path: '/run/app.sock', reason: 'socket (recreated by its service, cannot be retained)' },
    ]);
    assert.deepEqual(
      described.map((d) => d.entry.path),
      ['/etc/x'],
    );
  });

  it('lists xattr names, digests their values, and names the ids an ACL qualifies', () => {
    const acl = aclValue([
      [0x01, 6, NO_ID],
      [0x02, 4, 1002],
      [0x02, 4, 4242],
      [0x04, 4, NO_ID],
      [0x08, 4, 1001],
      [0x10, 4, NO_ID],
      [0x20, 0, NO_ID],
    ]);
    const xattrs = new Map([
      ['system.posix_acl_access', acl],
      ['user.origin', Buffer.from('kiosk')],
    ]);
    const [described] = describeEntries([observed('/etc/shared', stats('file'), { xattrs })], OLD_ROOT).described;
    assert.deepEqual(described?.entry.xattrs, ['system.posix_acl_access', 'user.origin']);
    assert.deepEqual(described?.entry.aclUsers, { '1002': 'svc' }, '4242 has no name in the old root');
    assert.deepEqual(described?.entry.aclGroups, { '1001': 'kiosk' });
    assert.match(described?.entry.xattrSha256 ?? '', /^[0-9a-f]{64}$/);
    const other = describeEntries(
      [observed('/etc/shared', stats('file'), { xattrs: new Map([...xattrs, ['user.origin', Buffer.from('other')]]) })],
      OLD_ROOT,
    ).described[0];
    assert.notEqual(other?.entry.xattrSha256, described?.entry.xattrSha256, 'a changed value changes the digest');
    assert.notEqual(described?.entry.xattrSha256, createHash('sha256').update('').digest('hex'));
  });

  it('refuses a symlink whose target is not UTF-8', () => {
    assert.throws(
      () => describeEntries([observed('/etc/l', stats('symlink'), { linkTarget: 'bad\uFFFDname' })], OLD_ROOT),
      { code: 'REIMAGE_RETAIN_NAME_NOT_UTF8' },
    );
  });
});
