import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  lchownSync,
  linkSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import type { Server } from 'node:net';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setAttributeSync } from '@napi-rs/xattr';
import { memoryLogger } from '../../../src/core/logger.ts';
import type { CaptureSummary, RestoreSummary, VerifySummary } from '../../../src/retain/index.ts';
import {
  captureBundle,
  inspectBundle,
  parseRetainList,
  restoreBundle,
  verifyBundle,
} from '../../../src/retain/index.ts';
import type { Ext4Loop } from './ext4-loop.ts';
import { makeExt4, requireTools, sh } from './ext4-loop.ts';

const OLD_PASSWD =
  'root:x:0:0:root:/root:/bin/sh\nkiosk:x:1001:1001::/home/kiosk:/bin/sh\nsvc:x:1002:1002::/:/usr/sbin/nologin\n';
const OLD_GROUP = 'root:x:0:\nkiosk:x:1001:\nsvc:x:1002:\nssl-cert:x:1003:\n';
// The new OS gave the same accounts other ids, and has no ssl-cert group at all.
const NEW_PASSWD =
  'root:x:0:0:root:/root:/bin/sh\nsvc:x:2002:2002::/:/usr/sbin/nologin\nkiosk:x:2001:2001::/home/kiosk:/bin/sh\n';
const NEW_GROUP = 'root:x:0:\nsvc:x:2002:\nkiosk:x:2001:\n';

const WEIRD_NAME = 'na\tme\nwith newline é 鍵';
const BINARY_XATTR = Buffer.from([0, 1, 2, 0xff, 0xfe, 0, 0x80]);

const LIST = `# identity of the kiosk
/etc/machine-id
/etc/ssh/ssh_host_*
/etc/a/x
/etc/b/x
/etc/key dir
/opt/app
?/etc/not-there
`;

/** Mode, owner, group and type as `stat` reports them, e.g. `640 2002 2001 regular file`. */
function meta(path: string): string {
  return sh('stat', ['-c', '%a %u %g %F', path]).trim();
}

function xattrDump(path: string): string {
  return sh('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path])
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .sort()
    .join('\n');
}

describe('retain: capture from one ext4, restore into another with different account ids', () => {
  let oldFs: Ext4Loop | undefined;
  let newFs: Ext4Loop | undefined;
  let socketServer: Server | undefined;
  let oldRoot = '';
  let newRoot = '';
  let bundlePath = '';
  let capture: CaptureSummary;
  let restore: RestoreSummary;
  let verify: VerifySummary;
  const log = memoryLogger();

  before(async () => {
    requireTools();
    oldFs = makeExt4();
    newFs = makeExt4();
    oldRoot = oldFs.dir;
    newRoot = newFs.dir;
    bundlePath = `${oldRoot}/../bundle.tar`;
    const o = (path: string): string => `${oldRoot}${path}`;

    mkdirSync(o('/etc/ssh'), { recursive: true });
    writeFileSync(o('/etc/passwd'), OLD_PASSWD);
    writeFileSync(o('/etc/group'), OLD_GROUP);
    writeFileSync(o('/etc/hostname'), 'kiosk-17\n');
    writeFileSync(o('/etc/machine-id'), '0123456789abcdef0123456789abcdef\n', { mode: 0o444 });
    writeFileSync(o('/etc/ssh/ssh_host_ed25519_key'), 'PRIVATE KEY old machine\n', { mode: 0o600 });
    writeFileSync(o('/etc/ssh/ssh_host_ed25519_key.pub'), 'ssh-ed25519 AAAA old\n', { mode: 0o644 });
    mkdirSync(o('/etc/a'));
    mkdirSync(o('/etc/b'));
    writeFileSync(o('/etc/a/x'), 'first x\n');
    writeFileSync(o('/etc/b/x'), 'second x\n');
    mkdirSync(o('/etc/key dir'));
    writeFileSync(o(`/etc/key dir/${WEIRD_NAME}`), 'weird\n');
    writeFileSync(o('/etc/key dir/tls key.pem'), 'TLS KEY\n', { mode: 0o640 });
    chownSync(o('/etc/key dir/tls key.pem'), 0, 1003);

    mkdirSync(o('/opt/app/bin'), { recursive: true });
    mkdirSync(o('/opt/app/spool'));
    mkdirSync(o('/opt/app/shared'));
    chownSync(o('/opt/app'), 1001, 1001);
    chmodSync(o('/opt/app'), 0o750);
    chmodSync(o('/opt/app/spool'), 0o1777);
    chownSync(o('/opt/app/shared'), 1001, 1002);
    chmodSync(o('/opt/app/shared'), 0o2775);
    writeFileSync(o('/opt/app/conf'), 'setting=1\n');
    chownSync(o('/opt/app/conf'), 1002, 1001);
    chmodSync(o('/opt/app/conf'), 0o640);
    linkSync(o('/opt/app/conf'), o('/opt/app/conf-hard'));
    writeFileSync(o('/opt/app/bin/tool'), '#!/bin/sh\necho tool\n');
    chownSync(o('/opt/app/bin/tool'), 0, 1001);
    chmodSync(o('/opt/app/bin/tool'), 0o4750);
    writeFileSync(o('/opt/app/bin/pinger'), 'binary\n');
    chmodSync(o('/opt/app/bin/pinger'), 0o755);
    sh('setcap', ['cap_net_raw+ep', o('/opt/app/bin/pinger')]);
    symlinkSync('../../etc/machine-id', o('/opt/app/relative-link'));
    lchownSync(o('/opt/app/relative-link'), 1001, 1001);
    symlinkSync('/nonexistent/target with space', o('/opt/app/absolute-link'));
    sh('mkfifo', ['-m', '620', o('/opt/app/fifo')]);
    sh('mknod', ['-m', '640', o('/opt/app/null'), 'c', '1', '3']);
    writeFileSync(o('/opt/app/big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a));
    setAttributeSync(o('/opt/app/conf'), 'user.binary', BINARY_XATTR);
    setAttributeSync(o('/opt/app/conf'), 'trusted.note', 'trusted value');
    sh('setfattr', ['-n', 'security.selinux', '-v', 'system_u:object_r:etc_t:s0', o('/opt/app/conf')]);
    sh('setfattr', ['-h', '-n', 'security.selinux', '-v', 'system_u:object_r:lnk_t:s0', o('/opt/app/relative-link')]);
    sh('setfacl', ['-m', 'u:1002:r,g:1001:rw', o('/etc/a/x')]);
    sh('setfacl', ['-d', '-m', 'u:1001:rwx', o('/opt/app/shared')]);
    // Nanosecond mtimes Node cannot set itself (they go through touch -h), and one it can.
    sh('touch', ['-h', '-d', '@1700000000.123456789', o('/opt/app/relative-link')]);
    sh('touch', ['-d', '@1600000000.000000001', o('/opt/app/conf')]);
    sh('touch', ['-d', '@1500000000', o('/etc/machine-id')]);
    sh('touch', ['-d', '@1700000001.987654321', o('/opt/app')]);
    socketServer = createServer();
    await new Promise<void>((resolve) => socketServer?.listen(o('/opt/app/control.sock'), resolve));

    // The new root: other ids for the same names, an old key to replace, no /opt yet.
    mkdirSync(`${newRoot}/etc/ssh`, { recursive: true });
    writeFileSync(`${newRoot}/etc/passwd`, NEW_PASSWD);
    writeFileSync(`${newRoot}/etc/group`, NEW_GROUP);
    writeFileSync(`${newRoot}/etc/ssh/ssh_host_ed25519_key`, 'PRIVATE KEY of the fresh image\n', { mode: 0o600 });

    capture = await captureBundle({ root: oldRoot, requests: parseRetainList(LIST, 'test.list'), bundlePath, log });
    restore = await restoreBundle({ root: newRoot, bundlePath, owners: 'by-name', log });
    verify = await verifyBundle({ root: newRoot, bundlePath, owners: 'by-name' });
  });

  after(() => {
    socketServer?.close();
    try {
      if (bundlePath !== '') rmSync(bundlePath, { force: true });
    } finally {
      try {
        oldFs?.cleanup();
      } finally {
        newFs?.cleanup();
      }
    }
  });

  it('verify finds no difference after a by-name restore', () => {
    assert.deepEqual(verify.differences, []);
    assert.equal(verify.ok, true);
    assert.equal(verify.entriesChecked, capture.entries);
    assert.equal(restore.entriesRestored, capture.entries);
  });

  it('reports the missing optional path, the skipped socket and the created parent', () => {
    assert.deepEqual(capture.missingOptional, ['/etc/not-there']);
    assert.deepEqual(
      capture.skipped.map((s) => s.path),
      ['/opt/app/control.sock'],
    );
    assert.deepEqual(restore.createdParents, ['/etc/a', '/etc/b', '/opt']);
    assert.equal(meta(`${newRoot}/opt`), '755 0 0 directory');
    assert.ok(
      restore.warnings.some((w) => w.includes('"ssl-cert" (id 1003)')),
      restore.warnings.join('\n'),
    );
  });

  it('creates the bundle with mode 0600 and GNU tar lists it with its xattrs', () => {
    assert.equal(sh('stat', ['-c', '%a', bundlePath]).trim(), '600');
    const listing = sh('tar', ['--xattrs', '-tvf', bundlePath]);
    assert.match(listing, /opt\/app\/conf\n/);
    assert.match(listing, /reimage-retain-manifest\.json/);
    const names = sh('tar', ['-tf', bundlePath]);
    assert.ok(names.includes('etc/key dir/'), names);
  });

  it('regression: a retained path containing a space survives', () => {
    assert.equal(readFileSync(`${newRoot}/etc/key dir/tls key.pem`, 'utf8'), 'TLS KEY\n');
    // ssl-cert has no account in the new root: the number is kept.
    assert.equal(meta(`${newRoot}/etc/key dir/tls key.pem`), '640 0 1003 regular file');
    assert.equal(readFileSync(`${newRoot}/etc/key dir/${WEIRD_NAME}`, 'utf8'), 'weird\n');
  });

  it('regression: two retained files with the same basename do not clobber each other', () => {
    assert.equal(readFileSync(`${newRoot}/etc/a/x`, 'utf8'), 'first x\n');
    assert.equal(readFileSync(`${newRoot}/etc/b/x`, 'utf8'), 'second x\n');
  });

  it('regression: owners are mapped by name through the new root, not kept by name only', () => {
    assert.equal(meta(`${newRoot}/opt/app/conf`), '640 2002 2001 regular file');
    assert.equal(sh('stat', ['-c', '%u %g', `${newRoot}/opt/app/relative-link`]).trim(), '2001 2001');
  });

  it('regression: the contents of retained directories keep their own owners and modes', () => {
    const expectations: Array<[string, string]> = [
      ['/opt/app', '750 2001 2001 directory'],
      ['/opt/app/spool', '1777 0 0 directory'],
      ['/opt/app/shared', '2775 2001 2002 directory'],
      ['/opt/app/bin/tool', '4750 0 2001 regular file'],
      ['/opt/app/fifo', '620 0 0 fifo'],
      ['/opt/app/null', '640 0 0 character special file'],
      ['/etc/machine-id', '444 0 0 regular file'],
      ['/etc/ssh/ssh_host_ed25519_key', '600 0 0 regular file'],
    ];
    for (const [path, expected] of expectations) assert.equal(meta(`${newRoot}${path}`), expected, path);
    assert.equal(sh('stat', ['-c', '%t,%T', `${newRoot}/opt/app/null`]).trim(), '1,3');
  });

  it('replaces an existing key with the retained one', () => {
    assert.equal(readFileSync(`${newRoot}/etc/ssh/ssh_host_ed25519_key`, 'utf8'), 'PRIVATE KEY old machine\n');
  });

  it('leaves no temporary names behind, for new entries (built in place) or replaced ones', () => {
    const leftovers = sh('find', [newRoot, '-name', '.reimage-*']).trim();
    assert.equal(leftovers, '');
  });

  it('keeps mtimes to the nanosecond, directories included', () => {
    for (const path of [
      '/opt/app',
      '/opt/app/conf',
      '/opt/app/relative-link',
      '/etc/machine-id',
      '/opt/app/bin',
      '/etc/key dir',
    ]) {
      assert.equal(
        sh('stat', ['-c', '%.9Y', `${newRoot}${path}`]),
        sh('stat', ['-c', '%.9Y', `${oldRoot}${path}`]),
        path,
      );
    }
    assert.equal(sh('stat', ['-c', '%.9Y', `${newRoot}/opt/app/relative-link`]).trim(), '1700000000.123456789');
  });

  it('regression: symlinks stay links with their exact targets, hard links stay links', () => {
    assert.equal(sh('readlink', [`${newRoot}/opt/app/relative-link`]).trim(), '../../etc/machine-id');
    assert.equal(sh('readlink', [`${newRoot}/opt/app/absolute-link`]).trim(), '/nonexistent/target with space');
    const inode = (path: string): string => sh('stat', ['-c', '%i %h', `${newRoot}${path}`]).trim();
    assert.equal(inode('/opt/app/conf'), inode('/opt/app/conf-hard'));
    assert.equal(inode('/opt/app/conf').split(' ')[1], '2');
  });

  it('regression: xattrs and SELinux labels survive, binary values byte for byte', () => {
    const dump = xattrDump(`${newRoot}/opt/app/conf`);
    assert.match(dump, new RegExp(`user.binary=0x${BINARY_XATTR.toString('hex')}`));
    assert.match(dump, /trusted.note=0x7472757374656420/);
    assert.match(dump, /security.selinux=0x73797374656d5f753a6f626a6563745f723a6574635f743a7330$/m);
    assert.match(xattrDump(`${newRoot}/opt/app/relative-link`), /security.selinux=/);
  });

  it('regression: POSIX ACLs survive, named entries remapped by name', () => {
    const acl = sh('getfacl', ['-n', '-p', `${newRoot}/etc/a/x`]);
    assert.match(acl, /^user:2002:r--$/m);
    assert.match(acl, /^group:2001:rw-$/m);
    const defaults = sh('getfacl', ['-n', '-p', '-d', `${newRoot}/opt/app/shared`]);
    assert.match(defaults, /^user:2001:rwx$/m);
  });

  it('file capabilities survive (set after chown, which clears them)', () => {
    assert.match(sh('getcap', [`${newRoot}/opt/app/bin/pinger`]), /cap_net_raw=ep/);
  });

  it('streams a file larger than one chunk intact', () => {
    assert.equal(
      sh('sha256sum', [`${newRoot}/opt/app/big.bin`]).split(' ')[0],
      sh('sha256sum', [`${oldRoot}/opt/app/big.bin`]).split(' ')[0],
    );
  });

  it('the manifest records host, request list and names with numbers', async () => {
    const manifest = await inspectBundle(bundlePath);
    assert.equal(manifest.sourceHost, 'kiosk-17');
    assert.equal(manifest.requests.length, 7);
    const conf = manifest.entries.find((e) => e.path === '/opt/app/conf');
    assert.equal(conf?.user, 'svc');
    assert.equal(conf?.uid, 1002);
    assert.equal(conf?.group, 'kiosk');
    assert.deepEqual(conf?.xattrs, ['security.selinux', 'trusted.note', 'user.binary']);
  });

  it('verify reports each difference with path, what, expected and actual', async () => {
    // Tampers with a restore of its own, on a filesystem of its own: the shared new root stays
    // as restored, whatever order the tests run in.
    const own = makeExt4();
    try {
      mkdirSync(`${own.dir}/etc`);
      writeFileSync(`${own.dir}/etc/passwd`, NEW_PASSWD);
      writeFileSync(`${own.dir}/etc/group`, NEW_GROUP);
      await restoreBundle({ root: own.dir, bundlePath, owners: 'by-name' });
      chmodSync(`${own.dir}/opt/app/conf`, 0o600);
      writeFileSync(`${own.dir}/etc/a/x`, 'tampered\n');
      const result = await verifyBundle({ root: own.dir, bundlePath });
      assert.equal(result.ok, false);
      assert.ok(
        result.differences.some(
          (d) => d.path === '/opt/app/conf' && d.what === 'mode' && d.expected === '0640' && d.actual === '0600',
        ),
      );
      assert.ok(result.differences.some((d) => d.path === '/etc/a/x' && d.what === 'sha256'));
      // by-id comparison of a by-name restore sees the remapped owners as differences.
      const byId = await verifyBundle({ root: own.dir, bundlePath, owners: 'by-id' });
      assert.ok(byId.differences.some((d) => d.what === 'uid'));
    } finally {
      own.cleanup();
    }
  });
});
