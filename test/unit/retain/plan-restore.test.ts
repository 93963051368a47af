import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EntryType, ManifestEntry } from '../../../src/retain/manifest.ts';
import { type ObservedPlace, planRestore } from '../../../src/retain/plan-restore.ts';

function entry(path: string, type: EntryType, uid = 0, gid = 0): ManifestEntry {
  return {
    path,
    type,
    mode: 0o644,
    uid,
    gid,
    user: null,
    group: null,
    sizeBytes: 0,
    mtimeNs: '0',
    xattrs: [],
    xattrSha256: '0'.repeat(64),
  };
}
const nothing: ObservedPlace = { missingAncestors: [], existing: null };
const noOwners = { uidMap: new Map<number, number>(), gidMap: new Map<number, number>() };

describe('planRestore', () => {
  it('chooses how each entry gets in: [bundle type, what the root has] → how', () => {
    const table: [EntryType, ObservedPlace['existing'], string][] = [
      ['directory', null, 'make-directory'],
      ['directory', 'directory', 'reuse-directory'],
      ['file', null, 'create-beside'],
      ['file', 'other', 'replace'],
      ['file', 'symlink', 'replace'],
      ['symlink', null, 'create-in-place'],
      ['symlink', 'other', 'replace'],
      ['hardlink', null, 'create-in-place'],
      ['hardlink', 'other', 'replace'],
      ['fifo', null, 'create-in-place'],
      ['char-device', null, 'create-in-place'],
      ['block-device', 'symlink', 'replace'],
    ];
    for (const [type, existing, how] of table) {
      const plan = planRestore([entry('/etc/x', type)], [{ missingAncestors: [], existing }], noOwners);
      assert.equal(plan.steps[0]?.how, how, `${type} over ${existing ?? 'nothing'}`);
    }
  });

  it('refuses a directory over a non-directory and the reverse, before any step', () => {
    const table: [EntryType, ObservedPlace['existing'], string][] = [
      ['directory', 'other', 'non-directory'],
      ['directory', 'symlink', 'non-directory'],
      ['file', 'directory', 'directory'],
      ['symlink', 'directory', 'directory'],
    ];
    for (const [type, existing, actual] of table) {
      assert.throws(
        () =>
          planRestore(
            [entry('/etc/ok', 'file'), entry('/etc/x', type)],
            [nothing, { missingAncestors: [], existing }],
            noOwners,
          ),
        (e: unknown) => {
          assert.ok(e instanceof Error);
          assert.equal(Reflect.get(e, 'code'), 'REIMAGE_RETAIN_ROOT_CONFLICT');
          assert.deepEqual(Reflect.get(e, 'evidence'), { path: '/etc/x', expected: type, actual });
          return true;
        },
        `${type} over ${existing}`,
      );
    }
  });

  it('creates each missing ancestor once, parents first, unless the bundle itself holds it', () => {
    const plan = planRestore(
      [
        entry('/srv/a/b/one', 'file'),
        entry('/srv/a/b/two', 'file'),
        entry('/srv/c', 'directory'),
        entry('/srv/c/d', 'file'),
      ],
      [
        { missingAncestors: ['/srv', '/srv/a', '/srv/a/b'], existing: null },
        { missingAncestors: ['/srv', '/srv/a', '/srv/a/b'], existing: null },
        { missingAncestors: ['/srv'], existing: null },
        { missingAncestors: ['/srv', '/srv/c'], existing: null },
      ],
      noOwners,
    );
    assert.deepEqual(plan.createdParents, ['/srv', '/srv/a', '/srv/a/b']);
    assert.deepEqual(
      plan.steps.map((s) => [s.entry.path, s.how]),
      [
        ['/srv/a/b/one', 'create-beside'],
        ['/srv/a/b/two', 'create-beside'],
        ['/srv/c', 'make-directory'],
        ['/srv/c/d', 'create-beside'],
      ],
    );
  });

  it('gives each entry the owner the owner plan maps it to, and the captured one otherwise', () => {
    const owners = { uidMap: new Map([[1001, 2001]]), gidMap: new Map([[1001, 3001]]) };
    const plan = planRestore(
      [entry('/etc/a', 'file', 1001, 1001), entry('/etc/b', 'file', 1003, 0)],
      [nothing, nothing],
      owners,
    );
    assert.deepEqual(
      plan.steps.map((s) => [s.uid, s.gid]),
      [
        [2001, 3001],
        [1003, 0],
      ],
    );
  });
});
