import { z } from 'zod';

/**
 * The plan file, version 1: the user's interface. Field names are a promise to users; change
 * them only with a new `version`. Every object is strict, so a misspelt key is an error that
 * names it instead of being silently ignored.
 */

const sha256Hex = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, { error: (issue) => `expected 64 hex digits, got ${JSON.stringify(issue.input)}` })
  .transform((hex) => hex.toLowerCase());

/**
 * An absolute path with no `.` or `..` components: paths in a plan name places inside a mounted
 * filesystem, and `..` would reach outside it (a mount point or the logs outside the new root).
 */
const absolutePath = z
  .string()
  .refine((value) => value.startsWith('/'), { error: 'must be an absolute path' })
  .refine((value) => !value.split('/').some((part) => part === '.' || part === '..'), {
    error: 'must not contain "." or ".." components; write the path in full from /',
  });

/** A partition: its number on `disk`, or its filesystem label, or its filesystem UUID. */
export const partitionRefSchema = z.union(
  [
    z.int().min(1).max(4096),
    z.strictObject({ label: z.string().min(1) }),
    z.strictObject({ uuid: z.string().regex(/^[0-9a-fA-F-]{4,36}$/, { error: 'expected a filesystem UUID' }) }),
  ],
  { error: 'expected a partition number (1, 2, …), { label: NAME } or { uuid: UUID }' },
);

const retainPathSchema = z.union(
  [absolutePath, z.strictObject({ path: absolutePath, optional: z.boolean().default(false) })],
  { error: 'expected an absolute path or { path: /abs/path, optional: true }' },
);

const mountSchema = z.strictObject({ partition: partitionRefSchema, at: absolutePath });

export const planSchema = z.strictObject({
  version: z.literal(1, { error: 'expected 1 (the only plan version this reimage knows)' }),
  disk: absolutePath,
  image: z.strictObject({
    partition: partitionRefSchema,
    path: absolutePath,
    sha256: sha256Hex,
    bmap: absolutePath.optional(),
    /**
     * The decoded size in bytes (`reimage image inspect IMAGE` prints it). gzip and bzip2 do not
     * record it, and without it the write decodes the image once more only to prove it fits.
     */
    size: z
      .int({ error: 'expected the decoded size in bytes, a whole number (reimage image inspect IMAGE prints it)' })
      .positive({ error: 'expected the decoded size in bytes, more than 0' })
      .optional(),
  }),
  retain: z.strictObject({
    partition: partitionRefSchema,
    paths: z.array(retainPathSchema),
    owners: z.enum(['by-name', 'by-id'], { error: 'expected by-name or by-id' }).default('by-name'),
  }),
  restore: z.strictObject({
    mounts: z
      .array(mountSchema)
      .min(1, { error: 'list at least the new root: { partition: N, at: / }' })
      .refine((mounts) => mounts[0]?.at === '/', { error: 'the first mount must be the new root (at: /)' }),
    logs: absolutePath,
    after: z.array(z.string().min(1)).default([]),
  }),
  /**
   * Where `reimage arm` keeps its refuge (the image, the recovery kernel and initramfs, the
   * journal): an old partition. Default: the one with the most room the new image leaves alone.
   */
  refuge: z.strictObject({ partition: partitionRefSchema }).optional(),
  finish: z.enum(['reboot', 'poweroff'], { error: 'expected reboot or poweroff' }).default('reboot'),
});

export type PartitionRef = z.infer<typeof partitionRefSchema>;
export type Plan = z.infer<typeof planSchema>;
