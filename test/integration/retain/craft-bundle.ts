import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { ManifestEntry } from '../../../src/retain/manifest.ts';
import { archiveName, MANIFEST_MEMBER_NAME, TYPE_FLAGS, xattrDigest } from '../../../src/retain/manifest.ts';
import { encodeMemberHeader, endOfArchive, memberPadding } from '../../../src/retain/tar-writer.ts';

/** One member of a hand-made (possibly hostile) bundle. */
export interface CraftMember {
  readonly entry: ManifestEntry;
  readonly content?: Buffer;
  /** Tar name to use instead of the entry's own. */
  readonly memberName?: string;
  /** false: written into the tar but left out of the manifest. */
  readonly inManifest?: boolean;
  /** false: listed in the manifest but not written into the tar. */
  readonly inTar?: boolean;
  readonly xattrs?: ReadonlyMap<string, Buffer>;
}

export function craftEntry(
  path: string,
  type: ManifestEntry['type'],
  extra: Partial<ManifestEntry> & { content?: Buffer } = {},
): CraftMember {
  const { content, ...rest } = extra;
  const body = type === 'file' ? (content ?? Buffer.from(`content of ${path}\n`)) : undefined;
  const entry: ManifestEntry = {
    path,
    type,
    mode: type === 'directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    sizeBytes: body?.length ?? 0,
    mtimeNs: '1700000000000000000',
    ...(body === undefined ? {} : { sha256: createHash('sha256').update(body).digest('hex') }),
    xattrs: [],
    xattrSha256: xattrDigest(new Map()),
    ...rest,
  };
  return body === undefined ? { entry } : { entry, content: body };
}

/** Writes a bundle the way capture would, except for whatever the members make hostile. */
export function craftBundle(bundlePath: string, members: readonly CraftMember[]): void {
  const parts: Buffer[] = [];
  for (const member of members) {
    if (member.inTar === false) continue;
    const { entry } = member;
    const content = member.content ?? Buffer.alloc(0);
    parts.push(
      encodeMemberHeader({
        name: member.memberName ?? archiveName(entry),
        typeFlag: TYPE_FLAGS[entry.type],
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        userName: entry.user ?? '',
        groupName: entry.group ?? '',
        sizeBytes: content.length,
        mtimeNs: BigInt(entry.mtimeNs),
        linkName: entry.type === 'hardlink' ? (entry.linkTarget ?? '').slice(1) : (entry.linkTarget ?? ''),
        devMajor: 0,
        devMinor: 0,
        xattrs: member.xattrs ?? new Map(),
      }),
      content,
      memberPadding(content.length),
    );
  }
  const manifest = {
    format: 'reimage-retain-bundle',
    version: 1,
    capturedAt: '2026-01-01T00:00:00.000Z',
    sourceHost: 'crafted',
    requests: [],
    missingOptional: [],
    skipped: [],
    entries: members.filter((m) => m.inManifest !== false).map((m) => m.entry),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  parts.push(
    encodeMemberHeader({
      name: MANIFEST_MEMBER_NAME,
      typeFlag: '0',
      mode: 0o600,
      uid: 0,
      gid: 0,
      userName: 'root',
      groupName: 'root',
      sizeBytes: manifestBytes.length,
      mtimeNs: 0n,
      linkName: '',
      devMajor: 0,
      devMinor: 0,
      xattrs: new Map(),
    }),
    manifestBytes,
    memberPadding(manifestBytes.length),
    endOfArchive(),
  );
  writeFileSync(bundlePath, Buffer.concat(parts), { mode: 0o600 });
}
