import { createHash } from 'node:crypto';
import type { ManifestEntry } from '../../src/retain/manifest.ts';
import { archiveName, MANIFEST_MEMBER_NAME, TYPE_FLAGS, xattrDigest } from '../../src/retain/manifest.ts';
import { encodeMemberHeader, endOfArchive, memberPadding } from '../../src/retain/tar-writer.ts';

interface SeedMember {
  readonly entry: ManifestEntry;
  readonly content?: Buffer;
  readonly xattrs?: ReadonlyMap<string, Buffer>;
}

function member(
  path: string,
  type: ManifestEntry['type'],
  extra: Partial<ManifestEntry> & { content?: Buffer; xattrMap?: ReadonlyMap<string, Buffer> } = {},
): SeedMember {
  const { content, xattrMap, ...rest } = extra;
  const xattrs = xattrMap ?? new Map<string, Buffer>();
  const entry: ManifestEntry = {
    path,
    type,
    mode: type === 'directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    user: 'root',
    group: 'root',
    sizeBytes: content?.length ?? 0,
    mtimeNs: '1700000000123456789',
    ...(content === undefined ? {} : { sha256: createHash('sha256').update(content).digest('hex') }),
    xattrs: [...xattrs.keys()],
    xattrSha256: xattrDigest(xattrs),
    ...rest,
  };
  return { entry, ...(content === undefined ? {} : { content }), xattrs };
}

/** A retention bundle laid out exactly as capture writes it: members through the tar writer, then the manifest. */
export function buildRetainBundle(members: readonly SeedMember[]): Buffer {
  const parts: Buffer[] = [];
  const add = (spec: Parameters<typeof encodeMemberHeader>[0], content: Buffer): void => {
    parts.push(encodeMemberHeader(spec), content, memberPadding(content.length));
  };
  for (const { entry, content, xattrs } of members) {
    add(
      {
        name: archiveName(entry),
        typeFlag: TYPE_FLAGS[entry.type],
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        userName: entry.user ?? '',
        groupName: entry.group ?? '',
        sizeBytes: content?.length ?? 0,
        mtimeNs: BigInt(entry.mtimeNs),
        linkName: entry.type === 'hardlink' ? (entry.linkTarget ?? '').slice(1) : (entry.linkTarget ?? ''),
        devMajor: entry.devMajor ?? 0,
        devMinor: entry.devMinor ?? 0,
        xattrs: xattrs ?? new Map(),
      },
      content ?? Buffer.alloc(0),
    );
  }
  const manifest = {
    format: 'reimage-retain-bundle',
    version: 1,
    capturedAt: '2026-01-01T00:00:00.000Z',
    sourceHost: 'fuzz-seed',
    requests: [{ pattern: '/etc', optional: false }],
    missingOptional: [],
    skipped: [],
    entries: members.map((m) => m.entry),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  add(
    {
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
    },
    manifestBytes,
  );
  parts.push(endOfArchive());
  return Buffer.concat(parts);
}

/** Valid bundles covering every member kind and every pax record the writer emits. */
export function retainBundleSeeds(): Buffer[] {
  const longName = `/etc/${'deep/'.repeat(25)}key.pem`;
  const binaryXattrs = new Map<string, Buffer>([
    ['user.bin', Buffer.from([0, 10, 0x3d, 0x20, 0xff, 0])],
    ['security.selinux', Buffer.from('system_u:object_r:etc_t:s0\0')],
  ]);
  return [
    buildRetainBundle([
      member('/etc', 'directory'),
      member('/etc/hostname', 'file', { content: Buffer.from('kiosk-17\n') }),
      member('/etc/hostname-link', 'hardlink', { linkTarget: '/etc/hostname' }),
      member('/etc/localtime', 'symlink', { linkTarget: '/usr/share/zoneinfo/Europe/Berlin' }),
      member(longName, 'file', { content: Buffer.alloc(1500, 0x61), uid: 3_000_000, gid: 70_000, user: null }),
      member('/etc/secret', 'file', { content: Buffer.from('s'), xattrMap: binaryXattrs, mode: 0o4600 }),
      member('/etc/fifo', 'fifo', { mtimeNs: '-1500000000' }),
      member('/etc/console', 'char-device', { devMajor: 5, devMinor: 1 }),
    ]),
    buildRetainBundle([]),
    buildRetainBundle([member('/var', 'directory'), member('/var/empty', 'file', { content: Buffer.alloc(0) })]),
  ];
}
