import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMemberBatch } from '../../../src/retain/member-batch.ts';
import type { TarMemberSpec } from '../../../src/retain/tar-writer.ts';
import { encodeMemberHeader, prepareMemberHeader } from '../../../src/retain/tar-writer.ts';

const spec: TarMemberSpec = {
  name: 'etc/ssh/ssh_host_ed25519_key',
  typeFlag: '0',
  mode: 0o600,
  uid: 0,
  gid: 0,
  userName: 'root',
  groupName: 'root',
  sizeBytes: 5,
  mtimeNs: 1_700_000_000_123_456_789n,
  linkName: '',
  devMajor: 0,
  devMinor: 0,
  xattrs: new Map([['user.origin', Buffer.from([0, 1, 2])]]),
};

describe('member batch', () => {
  it('packs header, content and zero padding exactly as the standalone encoder and padding would', () => {
    const batch = createMemberBatch(64 * 1024);
    const header = prepareMemberHeader(spec);
    batch.addHeader(header);
    const kept = batch.addContent(6, 512, (target, offset) => target.write('hello', offset, 'ascii'));
    assert.equal(kept.toString('ascii'), 'hello');
    const out = batch.take();
    const expected = Buffer.concat([encodeMemberHeader(spec), Buffer.from('hello'), Buffer.alloc(512 - 5)]);
    assert.deepEqual(out, expected);
  });

  it('starts a fresh buffer after take(), leaving the taken one untouched', () => {
    const batch = createMemberBatch(4096);
    batch.addHeader(prepareMemberHeader(spec));
    const first = batch.take();
    const copy = Buffer.from(first);
    assert.equal(batch.usedBytes, 0);
    batch.addHeader(prepareMemberHeader({ ...spec, name: 'etc/other' }));
    assert.deepEqual(first, copy);
  });

  it('refuses content that would overflow the buffer', () => {
    const batch = createMemberBatch(1024);
    assert.throws(() => batch.addContent(2048, 2048, () => 0), RangeError);
  });
});
