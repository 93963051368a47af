import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAccountDb } from '../retain/index.ts';

/** The text of a root's /etc/passwd and /etc/group. */
export interface AccountFiles {
  readonly passwd: string;
  readonly group: string;
}

/** How ids move from an old root to a new one when owners follow names: old id → new id, where they differ. */
export interface AccountIdRemap {
  readonly uid: ReadonlyMap<number, number>;
  readonly gid: ReadonlyMap<number, number>;
}

/** Each old id whose name (as restore reads it: the first name for an id) has another id in the new root. */
function remap(oldNames: ReadonlyMap<number, string>, newIds: ReadonlyMap<string, number>): Map<number, number> {
  const moved = new Map<number, number>();
  for (const [oldId, name] of oldNames) {
    const newId = newIds.get(name);
    if (newId !== undefined && newId !== oldId) moved.set(oldId, newId);
  }
  return moved;
}

/**
 * The id remap the demo's two account databases imply: each account name of the old root that
 * the new root has under another id. Tests derive the owners they expect from it, instead of a
 * table of ids written down by hand that would go stale when the demo's accounts change.
 */
export function accountIdRemap(oldRoot: AccountFiles, newRoot: AccountFiles): AccountIdRemap {
  // The same parser restore uses (src/retain/account-db.ts), so the expected owners follow its rules.
  const before = parseAccountDb(oldRoot.passwd, oldRoot.group);
  const after = parseAccountDb(newRoot.passwd, newRoot.group);
  return {
    uid: remap(before.userNameById, after.userIdByName),
    gid: remap(before.groupNameById, after.groupIdByName),
  };
}

export async function readAccountFiles(root: string): Promise<AccountFiles> {
  return {
    passwd: await readFile(join(root, 'etc', 'passwd'), 'utf8'),
    group: await readFile(join(root, 'etc', 'group'), 'utf8'),
  };
}
