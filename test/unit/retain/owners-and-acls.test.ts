import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAccountDb } from '../../../src/retain/account-db.ts';
import type { ManifestEntry } from '../../../src/retain/manifest.ts';
import { planOwners } from '../../../src/retain/owner-plan.ts';
import { aclQualifiers, remapAcl } from '../../../src/retain/posix-acl.ts';

function entry(
  uid: number,
  user: string | null,
  gid: number,
  group: string | null,
  extra: Partial<ManifestEntry> = {},
): ManifestEntry {
  return {
    path: '/etc/x',
    type: 'file',
    mode: 0o644,
    uid,
    gid,
    user,
    group,
    sizeBytes: 0,
    mtimeNs: '0',
    xattrs: [],
    xattrSha256: '0'.repeat(64),
    ...extra,
  };
}

const NEW_ROOT = parseAccountDb(
  'root:x:0:0::/root:/bin/sh\nkiosk:x:2001:2001::/:/bin/sh\n+nis\nbroken line\nsvc:x:2002:2002::/:/bin/false\n',
  'root:x:0:\nkiosk:x:2001:\nsvc:x:2002:\n',
);

describe('planOwners', () => {
  it('maps by name through the new root and keeps unknown names with a warning', () => {
    const plan = planOwners(
      [entry(1001, 'kiosk', 1001, 'kiosk'), entry(1003, 'gone', 1003, null), entry(0, 'root', 0, 'root')],
      NEW_ROOT,
      'by-name',
    );
    assert.deepEqual(
      [...plan.uidMap],
      [
        [0, 0],
        [1001, 2001],
      ],
    );
    assert.deepEqual(
      [...plan.gidMap],
      [
        [0, 0],
        [1001, 2001],
      ],
    );
    assert.deepEqual(plan.warnings, [
      'user "gone" (id 1003) does not exist in the new root\'s /etc/passwd; keeping user id 1003',
      'group id 1003 had no name in the old root; keeping group id 1003',
    ]);
  });

  it('maps ids that only ACL entries name', () => {
    const plan = planOwners(
      [entry(0, 'root', 0, 'root', { aclUsers: { '1002': 'svc' }, aclGroups: { '1001': 'kiosk' } })],
      NEW_ROOT,
      'by-name',
    );
    assert.equal(plan.uidMap.get(1002), 2002);
    assert.equal(plan.gidMap.get(1001), 2001);
  });

  it('by-id keeps every number and warns about nothing', () => {
    const plan = planOwners([entry(1001, 'kiosk', 1001, 'kiosk')], NEW_ROOT, 'by-id');
    assert.equal(plan.uidMap.size + plan.gidMap.size + plan.warnings.length, 0);
  });
});

function acl(entries: Array<[number, number, number]>): Buffer {
  const value = Buffer.alloc(4 + entries.length * 8);
  value.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], index) => {
    value.writeUInt16LE(tag, 4 + index * 8);
    value.writeUInt16LE(perm, 6 + index * 8);
    value.writeUInt32LE(id, 8 + index * 8);
  });
  return value;
}

const UNDEFINED_ID = 0xffffffff;

describe('POSIX ACL remapping', () => {
  const original = acl([
    [0x01, 6, UNDEFINED_ID],
    [0x02, 4, 1001],
    [0x02, 4, 1002],
    [0x04, 4, UNDEFINED_ID],
    [0x08, 6, 1001],
    [0x10, 6, UNDEFINED_ID],
    [0x20, 4, UNDEFINED_ID],
  ]);

  it('lists the named ids', () => {
    assert.deepEqual(aclQualifiers(original), { uids: [1001, 1002], gids: [1001] });
  });

  it('remaps named users and groups and keeps entries sorted as the kernel requires', () => {
    const remapped = remapAcl(
      original,
      new Map([
        [1001, 3000],
        [1002, 500],
      ]),
      new Map([[1001, 2001]]),
    );
    assert.deepEqual(
      remapped,
      acl([
        [0x01, 6, UNDEFINED_ID],
        [0x02, 4, 500],
        [0x02, 4, 3000],
        [0x04, 4, UNDEFINED_ID],
        [0x08, 6, 2001],
        [0x10, 6, UNDEFINED_ID],
        [0x20, 4, UNDEFINED_ID],
      ]),
    );
  });

  it('leaves a value it does not understand alone', () => {
    const junk = Buffer.from([1, 2, 3]);
    assert.equal(remapAcl(junk, new Map([[1, 2]]), new Map()), junk);
  });
});
