import { hash } from 'node:crypto';
import { z } from 'zod';
import { ReimageError } from '../core/reimage-error.ts';

export const MANIFEST_FORMAT = 'reimage-retain-bundle';
export const MANIFEST_VERSION = 1;
/** The manifest is the last member, so that capture hashes each file once, while writing it. */
export const MANIFEST_MEMBER_NAME = 'reimage-retain-manifest.json';

export type EntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'fifo' | 'char-device' | 'block-device';

const entrySchema = z.strictObject({
  path: z.string().min(2),
  type: z.enum(['file', 'directory', 'symlink', 'hardlink', 'fifo', 'char-device', 'block-device']),
  /** Permission bits plus setuid (0o4000), setgid (0o2000) and sticky (0o1000). */
  mode: z.number().int().min(0).max(0o7777),
  uid: z.number().int().min(0).max(0xfffffffe),
  gid: z.number().int().min(0).max(0xfffffffe),
  /** Account names in the OLD root's /etc/passwd and /etc/group; null when the id had no name there. */
  user: z.string().nullable(),
  group: z.string().nullable(),
  sizeBytes: z.number().int().min(0),
  /** Nanoseconds since the epoch, as a decimal string (exceeds a double's precision). */
  mtimeNs: z.string().regex(/^-?[0-9]{1,20}$/),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** Symlink target (byte for byte), or for a hard link the absolute path of the entry it links to. */
  linkTarget: z.string().optional(),
  devMajor: z.number().int().min(0).optional(),
  devMinor: z.number().int().min(0).optional(),
  xattrs: z.array(z.string()),
  /** SHA-256 over all xattr names and values (see xattrDigest), so a flipped value byte is caught. */
  xattrSha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Names of the ids that ACL entries name, from the old root, so restore can remap them by name. */
  aclUsers: z.record(z.string(), z.string()).optional(),
  aclGroups: z.record(z.string(), z.string()).optional(),
});

const manifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
  capturedAt: z.string(),
  sourceHost: z.string(),
  requests: z.array(z.strictObject({ pattern: z.string(), optional: z.boolean() })),
  missingOptional: z.array(z.string()),
  skipped: z.array(z.strictObject({ path: z.string(), reason: z.string() })),
  entries: z.array(entrySchema),
});

export type ManifestEntry = z.infer<typeof entrySchema>;
export type BundleManifest = z.infer<typeof manifestSchema>;

export function parseManifest(text: string): BundleManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ReimageError(
      'REIMAGE_RETAIN_MANIFEST_INVALID',
      'The bundle manifest is not valid JSON. The bundle is damaged; capture it again.',
      { cause: e, evidence: { field: MANIFEST_MEMBER_NAME } },
    );
  }
  const result = manifestSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue === undefined ? '' : issue.path.join('.');
    throw new ReimageError(
      'REIMAGE_RETAIN_MANIFEST_INVALID',
      `The bundle manifest is not a version ${MANIFEST_VERSION} retention manifest (${field}: ${issue?.message ?? 'invalid'}). Use a bundle captured by this version of reimage.`,
      { evidence: { field, expected: `${MANIFEST_FORMAT} v${MANIFEST_VERSION}` } },
    );
  }
  return result.data;
}

/** Digest of an xattr set: names sorted, each as name NUL u32-length value. */
export function xattrDigest(xattrs: ReadonlyMap<string, Buffer>): string {
  // All pieces in one buffer and one crypto.hash: this runs for every entry of a bundle, twice.
  const names = [...xattrs.keys()].sort();
  let totalBytes = 0;
  for (const name of names) totalBytes += Buffer.byteLength(name, 'utf8') + 5 + (xattrs.get(name)?.length ?? 0);
  const input = Buffer.allocUnsafe(totalBytes);
  let offset = 0;
  for (const name of names) {
    const value = xattrs.get(name) ?? Buffer.alloc(0);
    offset += input.write(name, offset, 'utf8');
    input[offset] = 0;
    input.writeUInt32BE(value.length, offset + 1);
    offset += 5 + value.copy(input, offset + 5);
  }
  return hash('sha256', input, 'hex');
}

/** The tar member name of an entry: the absolute path without its leading '/', directories with a trailing '/'. */
export function archiveName(entry: Pick<ManifestEntry, 'path' | 'type'>): string {
  const relative = entry.path.slice(1);
  return entry.type === 'directory' ? `${relative}/` : relative;
}

export const TYPE_FLAGS: Readonly<Record<EntryType, '0' | '1' | '2' | '3' | '4' | '5' | '6'>> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  'char-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};
