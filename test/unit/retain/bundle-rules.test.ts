import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exactDoubleSeconds } from '../../../src/retain/file-times.ts';
import { modeText } from '../../../src/retain/inspect-bundle.ts';
import type { ManifestEntry } from '../../../src/retain/manifest.ts';
import { archiveName, parseManifest, xattrDigest } from '../../../src/retain/manifest.ts';
import { checkManifestPaths } from '../../../src/retain/read-bundle.ts';
import { safeComponents } from '../../../src/retain/safe-path.ts';

function entry(path: string, type: ManifestEntry['type'] = 'file', extra: Partial<ManifestEntry> = {}): ManifestEntry {
  return {
    path,
    type,
    mode: 0o644,
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    sizeBytes: 0,
    mtimeNs: '0',
    ...(type === 'file' ? { sha256: 'a'.repeat(64) } : {}),
    xattrs: [],
    xattrSha256: '0'.repeat(64),
    ...extra,
  };
}

describe('safeComponents', () => {
  const unsafe = ['etc/x', '/', '/etc//x', '/etc/./x', '/etc/../x', '/..', '/etc/x/', '/etc/\0x'];
  for (const path of unsafe) {
    it(`refuses ${JSON.stringify(path)}`, () => {
      assert.throws(() => safeComponents(path), { code: 'REIMAGE_RETAIN_UNSAFE_PATH' });
    });
  }
  it('splits a safe path, spaces and dots inside names included', () => {
    assert.deepEqual(safeComponents('/etc/key dir/..hidden/a.b'), ['etc', 'key dir', '..hidden', 'a.b']);
  });
});

describe('checkManifestPaths', () => {
  const refused: Array<[string, ManifestEntry[], string]> = [
    [
      'an entry below a symlink entry',
      [entry('/etc/l', 'symlink', { linkTarget: '/' }), entry('/etc/l/x')],
      'REIMAGE_RETAIN_UNSAFE_PATH',
    ],
    ['an entry below a file entry', [entry('/etc/f'), entry('/etc/f/x')], 'REIMAGE_RETAIN_UNSAFE_PATH'],
    ['a path listed twice', [entry('/etc/x'), entry('/etc/x')], 'REIMAGE_RETAIN_BUNDLE_MISMATCH'],
    [
      'a hard link to an unknown path',
      [entry('/etc/h', 'hardlink', { linkTarget: '/etc/shadow' })],
      'REIMAGE_RETAIN_BUNDLE_MISMATCH',
    ],
    [
      'a hard link to a later entry',
      [entry('/etc/h', 'hardlink', { linkTarget: '/etc/x' }), entry('/etc/x')],
      'REIMAGE_RETAIN_BUNDLE_MISMATCH',
    ],
    [
      'a hard link to a directory',
      [entry('/etc/d', 'directory'), entry('/etc/h', 'hardlink', { linkTarget: '/etc/d' })],
      'REIMAGE_RETAIN_BUNDLE_MISMATCH',
    ],
    ['a symlink without target', [entry('/etc/l', 'symlink')], 'REIMAGE_RETAIN_BUNDLE_MISMATCH'],
  ];
  for (const [name, entries, code] of refused) {
    it(`refuses ${name}`, () => {
      assert.throws(() => checkManifestPaths(entries), { code });
    });
  }
  it('accepts a directory, its contents and a hard link to an earlier file', () => {
    checkManifestPaths([
      entry('/etc/d', 'directory'),
      entry('/etc/d/x'),
      entry('/etc/d/y', 'hardlink', { linkTarget: '/etc/d/x' }),
    ]);
  });
});

describe('manifest', () => {
  it('refuses JSON that is not a version 1 manifest, naming the field', () => {
    assert.throws(() => parseManifest('{"format":"reimage-retain-bundle","version":2}'), /version/);
    assert.throws(() => parseManifest('not json'), { code: 'REIMAGE_RETAIN_MANIFEST_INVALID' });
  });
  it('names archive members without the leading slash, directories with a trailing one', () => {
    assert.equal(archiveName({ path: '/etc/ssh', type: 'directory' }), 'etc/ssh/');
    assert.equal(archiveName({ path: '/etc/ssh/key', type: 'file' }), 'etc/ssh/key');
  });
  it('xattr digest depends on names and values, not on order', () => {
    const a = xattrDigest(
      new Map([
        ['user.a', Buffer.from('1')],
        ['user.b', Buffer.from('2')],
      ]),
    );
    const b = xattrDigest(
      new Map([
        ['user.b', Buffer.from('2')],
        ['user.a', Buffer.from('1')],
      ]),
    );
    const c = xattrDigest(
      new Map([
        ['user.b', Buffer.from('3')],
        ['user.a', Buffer.from('1')],
      ]),
    );
    assert.equal(a, b);
    assert.notEqual(a, c);
  });
});

describe('exactDoubleSeconds', () => {
  // The oracle is the kernel, not the function's own arithmetic: Node's utimes sets the time of
  // a real file and lstat reads back what was stored, to the nanosecond.
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'reimage-times-'));
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });
  const storedNs = (seconds: number): bigint => {
    const path = join(dir, 'f');
    writeFileSync(path, '');
    utimesSync(path, seconds, seconds);
    return statSync(path, { bigint: true }).mtimeNs;
  };

  const cases: Array<[bigint, boolean]> = [
    [1_700_000_000_000_000_000n, true],
    [1_500_000_000_500_000_000n, true],
    [1_700_000_000_125_000_000n, true],
    [1_600_000_000_000_000_001n, false],
    // The nearest double's fraction is 4094123.99… ns: libuv truncates it to …123.
    [1_700_000_000_004_094_124n, false],
    [1_700_000_000_123_456_789n, false],
  ];
  for (const [timeNs, exact] of cases) {
    it(`${timeNs} ns ${exact ? 'is' : 'is not'} exact through Node's utimes`, () => {
      const seconds = exactDoubleSeconds(timeNs);
      assert.equal(seconds !== undefined, exact);
      if (seconds !== undefined) {
        assert.equal(storedNs(seconds), timeNs, 'the seconds it gives store exactly that time');
      } else {
        // Refused rightly: the nearest double does not store that time.
        assert.notEqual(storedNs(Number(timeNs) / 1e9), timeNs);
      }
    });
  }

  it('refuses a time before the epoch', () => {
    assert.equal(exactDoubleSeconds(-1n), undefined);
  });
});

describe('modeText', () => {
  const cases: Array<[ManifestEntry['type'], number, string]> = [
    ['file', 0o644, '-rw-r--r--'],
    ['file', 0o4755, '-rwsr-xr-x'],
    ['file', 0o4644, '-rwSr--r--'],
    ['directory', 0o2775, 'drwxrwsr-x'],
    ['directory', 0o1777, 'drwxrwxrwt'],
    ['directory', 0o1770, 'drwxrwx--T'],
    ['symlink', 0o777, 'lrwxrwxrwx'],
    ['char-device', 0o600, 'crw-------'],
  ];
  for (const [type, mode, text] of cases) {
    it(`${type} ${mode.toString(8)} -> ${text}`, () => assert.equal(modeText(type, mode), text));
  }
});
