import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { quoteInput } from '../core/quote-input.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import type { BundleManifest, ManifestEntry } from './manifest.ts';
import { archiveName, MANIFEST_MEMBER_NAME, parseManifest, TYPE_FLAGS, xattrDigest } from './manifest.ts';
import { safeComponents } from './safe-path.ts';
import { createSha256 } from './sha256.ts';
import type { TarMember } from './tar-reader.ts';
import { readTarMembers } from './tar-reader.ts';
import type { WindowReader } from './window-reader.ts';
import { createWindowReader } from './window-reader.ts';
import { YIELD_EVERY, yieldToEventLoop } from './yield-to-event-loop.ts';

/** A bundle whose every member matched its manifest entry and every digest checked out. */
export interface CheckedBundle {
  readonly manifest: BundleManifest;
  /** Members in manifest order: members[i] belongs to manifest.entries[i]. */
  readonly members: readonly TarMember[];
}

/** Manifests hold metadata only; one this large is hostile. */
const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
const HASH_CHUNK_BYTES = 1024 * 1024;

function mismatch(path: string, field: string, expected: string | number, actual: string | number): ReimageError {
  return new ReimageError(
    'REIMAGE_RETAIN_BUNDLE_MISMATCH',
    `The bundle member for ${quoteInput(path)} does not match its manifest entry (${field}). The bundle is damaged or was tampered with; nothing was restored. Capture it again.`,
    { evidence: { path, field, expected, actual } },
  );
}

export async function openBundle(bundlePath: string): Promise<FileHandle> {
  try {
    return await open(bundlePath, 'r');
  } catch (e) {
    if (isSystemError(e) && (e.code === 'ENOENT' || e.code === 'EISDIR' || e.code === 'EACCES')) {
      throw new ReimageError(
        'REIMAGE_RETAIN_BUNDLE_UNREADABLE',
        `Cannot read the bundle ${bundlePath} (${e.code}). Check the path.`,
        {
          evidence: { path: bundlePath },
          cause: e,
        },
      );
    }
    throw e;
  }
}

export function hashRange(reader: WindowReader, offsetBytes: number, sizeBytes: number): string {
  const hash = createSha256(sizeBytes);
  let done = 0;
  while (done < sizeBytes) {
    const view = reader.read(offsetBytes + done, Math.min(HASH_CHUNK_BYTES, sizeBytes - done));
    if (view.length === 0) break;
    hash.update(view);
    done += view.length;
  }
  return hash.hex();
}

/** Checks that the manifest itself could not make restore write outside the root. */
export function checkManifestPaths(entries: readonly ManifestEntry[]): void {
  const typeByPath = new Map<string, ManifestEntry['type']>();
  for (const entry of entries) {
    const components = safeComponents(entry.path);
    if (typeByPath.has(entry.path)) throw mismatch(entry.path, 'path listed twice', 'once', 'twice');
    // An entry below a symlink entry would be written through that link ("symlink then write").
    for (let depth = 1; depth < components.length; depth += 1) {
      const ancestor = `/${components.slice(0, depth).join('/')}`;
      const ancestorType = typeByPath.get(ancestor);
      if (ancestorType !== undefined && ancestorType !== 'directory') {
        throw new ReimageError(
          'REIMAGE_RETAIN_UNSAFE_PATH',
          `The bundle puts ${quoteInput(entry.path)} below ${quoteInput(ancestor)}, which it restores as a ${ancestorType}: writing it would go through that entry. The bundle is hostile or damaged; nothing was restored.`,
          { evidence: { path: entry.path, field: 'path', expected: 'directory ancestor', actual: ancestorType } },
        );
      }
    }
    if (entry.type === 'hardlink') {
      const target = entry.linkTarget ?? '';
      const targetType = typeByPath.get(target);
      if (targetType === undefined || targetType === 'directory' || targetType === 'hardlink') {
        throw mismatch(entry.path, 'hard link target is not an earlier non-directory entry', 'earlier entry', target);
      }
    }
    if (entry.type === 'symlink' && entry.linkTarget === undefined)
      throw mismatch(entry.path, 'linkTarget', 'present', 'absent');
    if (entry.type === 'file' && entry.sha256 === undefined) throw mismatch(entry.path, 'sha256', 'present', 'absent');
    typeByPath.set(entry.path, entry.type);
  }
}

function checkMember(entry: ManifestEntry, member: TarMember): void {
  const name = archiveName(entry);
  if (member.name !== name) throw mismatch(entry.path, 'member name', name, member.name);
  const flag = TYPE_FLAGS[entry.type];
  if (member.typeFlag !== flag) throw mismatch(entry.path, 'type', flag, member.typeFlag);
  if ((member.mode & 0o7777) !== entry.mode) throw mismatch(entry.path, 'mode', entry.mode, member.mode & 0o7777);
  if (member.uid !== entry.uid) throw mismatch(entry.path, 'uid', entry.uid, member.uid);
  if (member.gid !== entry.gid) throw mismatch(entry.path, 'gid', entry.gid, member.gid);
  if (member.sizeBytes !== entry.sizeBytes) throw mismatch(entry.path, 'size', entry.sizeBytes, member.sizeBytes);
  if (member.mtimeNs.toString() !== entry.mtimeNs)
    throw mismatch(entry.path, 'mtime', entry.mtimeNs, member.mtimeNs.toString());
  const linkName = entry.type === 'hardlink' ? (entry.linkTarget ?? '').slice(1) : (entry.linkTarget ?? '');
  if (member.linkName !== linkName) throw mismatch(entry.path, 'link target', linkName, member.linkName);
  if (member.devMajor !== (entry.devMajor ?? 0) || member.devMinor !== (entry.devMinor ?? 0)) {
    throw mismatch(
      entry.path,
      'device numbers',
      `${entry.devMajor},${entry.devMinor}`,
      `${member.devMajor},${member.devMinor}`,
    );
  }
  const names = [...member.xattrs.keys()].sort().join(',');
  if (names !== [...entry.xattrs].sort().join(','))
    throw mismatch(entry.path, 'xattr names', entry.xattrs.join(','), names);
  const digest = xattrDigest(member.xattrs);
  if (digest !== entry.xattrSha256) throw mismatch(entry.path, 'xattr values', entry.xattrSha256, digest);
}

/**
 * Reads and checks a whole bundle before anything acts on it: tar structure, the manifest, each
 * member against its entry (one to one, in order, nothing extra), every path's safety and every
 * file's SHA-256. A bundle is untrusted input: anything off is an error, never a repair.
 */
export async function checkBundle(
  bundlePath: string,
  options: { readonly signal?: AbortSignal; readonly digests?: boolean } = {},
): Promise<CheckedBundle> {
  const handle = await openBundle(bundlePath);
  const fd = handle.fd;
  try {
    const { size } = await handle.stat();
    const members: TarMember[] = [];
    for (const member of readTarMembers(fd, size)) {
      if (members.length % YIELD_EVERY === 0) await yieldToEventLoop(options.signal);
      members.push(member);
    }
    const manifestMember = members.pop();
    if (
      manifestMember === undefined ||
      manifestMember.name !== MANIFEST_MEMBER_NAME ||
      manifestMember.typeFlag !== '0'
    ) {
      throw new ReimageError(
        'REIMAGE_RETAIN_MANIFEST_INVALID',
        `The bundle has no manifest as its last member (${MANIFEST_MEMBER_NAME}). It is not a retention bundle or it is truncated; capture it again.`,
        { evidence: { path: bundlePath, expected: MANIFEST_MEMBER_NAME, actual: manifestMember?.name } },
      );
    }
    if (manifestMember.sizeBytes > MAX_MANIFEST_BYTES) {
      throw new ReimageError(
        'REIMAGE_RETAIN_MANIFEST_INVALID',
        'The bundle manifest is implausibly large. The bundle is hostile or damaged.',
        {
          evidence: { path: bundlePath, actual: manifestMember.sizeBytes },
        },
      );
    }
    const manifestBytes = Buffer.alloc(manifestMember.sizeBytes);
    readSync(fd, manifestBytes, 0, manifestMember.sizeBytes, manifestMember.dataOffsetBytes);
    const manifest = parseManifest(manifestBytes.toString('utf8'));
    checkManifestPaths(manifest.entries);
    const extra = members.length - manifest.entries.length;
    if (extra !== 0) {
      const first = members.find(
        (member, index) => member.name !== archiveName(manifest.entries[index] ?? { path: '/', type: 'file' }),
      );
      throw new ReimageError(
        'REIMAGE_RETAIN_BUNDLE_MISMATCH',
        `The bundle has ${members.length} members but its manifest lists ${manifest.entries.length} entries${first === undefined ? '' : ` (first difference at ${quoteInput(first.name)})`}. The bundle is damaged or was tampered with; nothing was restored.`,
        {
          evidence: { path: bundlePath, expected: manifest.entries.length, actual: members.length, field: first?.name },
        },
      );
    }
    manifest.entries.forEach((entry, index) => {
      const member = members[index];
      if (member !== undefined) checkMember(entry, member);
    });
    if (options.digests !== false) {
      const reader = createWindowReader(fd);
      for (const [index, entry] of manifest.entries.entries()) {
        const member = members[index];
        if (entry.type !== 'file' || member === undefined) continue;
        if (index % YIELD_EVERY === 0) await yieldToEventLoop(options.signal);
        const actual = hashRange(reader, member.dataOffsetBytes, member.sizeBytes);
        if (actual !== entry.sha256) {
          throw new ReimageError(
            'REIMAGE_RETAIN_DIGEST_MISMATCH',
            `The content of ${quoteInput(entry.path)} in the bundle does not match its SHA-256. The bundle is damaged; nothing was restored. Capture it again.`,
            { evidence: { path: entry.path, field: 'sha256', expected: entry.sha256, actual } },
          );
        }
      }
    }
    return { manifest, members };
  } finally {
    await handle.close();
  }
}
