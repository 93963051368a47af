import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { isReimageError, isSystemError } from '../core/reimage-error.ts';
import { inspectRootPlace, joinUnder } from './safe-path.ts';

/**
 * The account database of a root filesystem, read from ITS /etc/passwd and /etc/group — never
 * the host's (getpwnam would answer for the machine running reimage, not the one being restored).
 */
export interface AccountDb {
  readonly userIdByName: ReadonlyMap<string, number>;
  readonly userNameById: ReadonlyMap<number, string>;
  readonly groupIdByName: ReadonlyMap<string, number>;
  readonly groupNameById: ReadonlyMap<number, string>;
}

export const emptyAccountDb: AccountDb = {
  userIdByName: new Map(),
  userNameById: new Map(),
  groupIdByName: new Map(),
  groupNameById: new Map(),
};

/** Parses `name:password:id:...` lines; malformed lines and NIS `+`/`-` lines are ignored, first name wins. */
function parseIdFile(text: string): { byName: Map<string, number>; byId: Map<number, string> } {
  const byName = new Map<string, number>();
  const byId = new Map<number, string>();
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    const name = fields[0] ?? '';
    const idText = fields[2] ?? '';
    if (name === '' || name.startsWith('#') || name.startsWith('+') || name.startsWith('-')) continue;
    if (!/^[0-9]{1,10}$/.test(idText)) continue;
    const id = Number(idText);
    if (!byName.has(name)) byName.set(name, id);
    if (!byId.has(id)) byId.set(id, name);
  }
  return { byName, byId };
}

export function parseAccountDb(passwdText: string, groupText: string): AccountDb {
  const users = parseIdFile(passwdText);
  const groups = parseIdFile(groupText);
  return {
    userIdByName: users.byName,
    userNameById: users.byId,
    groupIdByName: groups.byName,
    groupNameById: groups.byId,
  };
}

/**
 * Reads a root's account database without following symlinks out of it: /etc/passwd as a
 * symlink could point at the host's own file, whose ids mean nothing for the new root.
 */
export async function readRootAccounts(root: string): Promise<{ accounts: AccountDb; warnings: string[] }> {
  const warnings: string[] = [];
  const readSafely = async (name: string): Promise<string> => {
    const path = joinUnder(root, ['etc', name]);
    try {
      await inspectRootPlace(root, ['etc', name]);
      const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        return await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (e) {
      warnings.push(
        `cannot read /etc/${name} of the root (${isSystemError(e) || isReimageError(e) ? e.code : String(e)}); owners keep their numeric ids`,
      );
      return '';
    }
  };
  const passwd = await readSafely('passwd');
  const group = await readSafely('group');
  return { accounts: passwd === '' && group === '' ? emptyAccountDb : parseAccountDb(passwd, group), warnings };
}
