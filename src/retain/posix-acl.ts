/**
 * POSIX ACL xattr values (`system.posix_acl_access` / `_default`): a little-endian u32 version (2)
 * then 8-byte entries {u16 tag, u16 perm, u32 id}. Named-user and named-group entries carry ids,
 * which must be remapped like file owners when accounts have different ids in the new root.
 */
export const ACL_XATTR_NAMES: ReadonlySet<string> = new Set(['system.posix_acl_access', 'system.posix_acl_default']);

const ACL_VERSION = 2;
const TAG_USER = 0x02;
const TAG_GROUP = 0x08;

export interface AclQualifiers {
  readonly uids: number[];
  readonly gids: number[];
}

function isWellFormed(value: Buffer): boolean {
  return value.length >= 4 && (value.length - 4) % 8 === 0 && value.readUInt32LE(0) === ACL_VERSION;
}

export function aclQualifiers(value: Buffer): AclQualifiers {
  const uids: number[] = [];
  const gids: number[] = [];
  if (!isWellFormed(value)) return { uids, gids };
  for (let offset = 4; offset < value.length; offset += 8) {
    const tag = value.readUInt16LE(offset);
    const id = value.readUInt32LE(offset + 4);
    if (tag === TAG_USER) uids.push(id);
    if (tag === TAG_GROUP) gids.push(id);
  }
  return { uids, gids };
}

/** A copy of the ACL with named-user and named-group ids passed through the maps (unmapped ids stay). */
export function remapAcl(
  value: Buffer,
  uidMap: ReadonlyMap<number, number>,
  gidMap: ReadonlyMap<number, number>,
): Buffer {
  if (!isWellFormed(value)) return value;
  const entries: Array<{ tag: number; perm: number; id: number }> = [];
  for (let offset = 4; offset < value.length; offset += 8) {
    const tag = value.readUInt16LE(offset);
    const id = value.readUInt32LE(offset + 4);
    const mapped = tag === TAG_USER ? uidMap.get(id) : tag === TAG_GROUP ? gidMap.get(id) : undefined;
    entries.push({ tag, perm: value.readUInt16LE(offset + 2), id: mapped ?? id });
  }
  // The kernel refuses an ACL whose entries are not sorted by tag, then id; remapping can reorder them.
  entries.sort((a, b) => a.tag - b.tag || a.id - b.id);
  const copy = Buffer.alloc(value.length);
  copy.writeUInt32LE(ACL_VERSION, 0);
  entries.forEach((entry, index) => {
    copy.writeUInt16LE(entry.tag, 4 + index * 8);
    copy.writeUInt16LE(entry.perm, 6 + index * 8);
    copy.writeUInt32LE(entry.id, 8 + index * 8);
  });
  return copy;
}
