import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

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

/** name → id from `name:password:id:…` lines (the first line for a name wins, as in glibc). */
function idsByName(text: string): Map<string, number> {
  const ids = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name = '', , id = ''] = line.split(':');
    if (name === '' || !/^[0-9]+$/.test(id) || ids.has(name)) continue;
    ids.set(name, Number(id));
  }
  return ids;
}

function remap(oldText: string, newText: string): Map<number, number> {
  const newIds = idsByName(newText);
  const moved = new Map<number, number>();
  for (const [name, oldId] of idsByName(oldText)) {
    const newId = newIds.get(name);
    if (newId !== undefined && newId !== oldId && !moved.has(oldId)) moved.set(oldId, newId);
  }
  return moved;
}

/**
 * The id remap the demo's two account databases imply: each account name of the old root that
 * the new root has under another id. Tests derive the owners they expect from it, instead of a
 * table of ids written down by hand that would go stale when the demo's accounts change.
 */
export function accountIdRemap(oldRoot: AccountFiles, newRoot: AccountFiles): AccountIdRemap {
  return { uid: remap(oldRoot.passwd, newRoot.passwd), gid: remap(oldRoot.group, newRoot.group) };
}

export async function readAccountFiles(root: string): Promise<AccountFiles> {
  return {
    passwd: await readFile(join(root, 'etc', 'passwd'), 'utf8'),
    group: await readFile(join(root, 'etc', 'group'), 'utf8'),
  };
}
