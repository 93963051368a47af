import type { AccountDb } from './account-db.ts';
import type { ManifestEntry } from './manifest.ts';

export type OwnerMode = 'by-name' | 'by-id';

/** How old ids become new ids: the same for every entry and every ACL entry that names them. */
export interface OwnerPlan {
  readonly uidMap: ReadonlyMap<number, number>;
  readonly gidMap: ReadonlyMap<number, number>;
  readonly warnings: readonly string[];
}

/**
 * Pure: maps each old id to the id its NAME has in the new root's account files. An id whose
 * name is unknown there (or that had no name) keeps its number, with one warning per id.
 */
export function planOwners(entries: readonly ManifestEntry[], accounts: AccountDb, mode: OwnerMode): OwnerPlan {
  const uidMap = new Map<number, number>();
  const gidMap = new Map<number, number>();
  const warnings: string[] = [];
  if (mode === 'by-id') return { uidMap, gidMap, warnings };
  const userNames = new Map<number, string | null>();
  const groupNames = new Map<number, string | null>();
  for (const entry of entries) {
    if (!userNames.has(entry.uid) || userNames.get(entry.uid) === null) userNames.set(entry.uid, entry.user);
    if (!groupNames.has(entry.gid) || groupNames.get(entry.gid) === null) groupNames.set(entry.gid, entry.group);
    for (const [id, name] of Object.entries(entry.aclUsers ?? {})) userNames.set(Number(id), name);
    for (const [id, name] of Object.entries(entry.aclGroups ?? {})) groupNames.set(Number(id), name);
  }
  const map = (
    names: ReadonlyMap<number, string | null>,
    idByName: ReadonlyMap<string, number>,
    target: Map<number, number>,
    kind: 'user' | 'group',
    file: string,
  ): void => {
    for (const [oldId, name] of [...names].sort((a, b) => a[0] - b[0])) {
      const newId = name === null ? undefined : idByName.get(name);
      if (newId !== undefined) {
        target.set(oldId, newId);
      } else if (name === null) {
        warnings.push(`${kind} id ${oldId} had no name in the old root; keeping ${kind} id ${oldId}`);
      } else {
        warnings.push(
          `${kind} "${name}" (id ${oldId}) does not exist in the new root's ${file}; keeping ${kind} id ${oldId}`,
        );
      }
    }
  };
  map(userNames, accounts.userIdByName, uidMap, 'user', '/etc/passwd');
  map(groupNames, accounts.groupIdByName, gidMap, 'group', '/etc/group');
  return { uidMap, gidMap, warnings };
}
