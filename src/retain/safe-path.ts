import type { Stats } from 'node:fs';
import { lstatSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';

/**
 * The components of a bundle path, or an error if the path could reach outside the root: it must
 * be absolute and normalised, with no `.`, `..`, empty component or NUL. (node-tar's CVEs came
 * from accepting such names and "fixing" them; we refuse instead.)
 */
export function safeComponents(path: string): string[] {
  const components = path.split('/').slice(1);
  const bad =
    !path.startsWith('/') ||
    path.includes('\0') ||
    components.length === 0 ||
    components.some((c) => c === '' || c === '.' || c === '..');
  if (bad) {
    throw new ReimageError(
      'REIMAGE_RETAIN_UNSAFE_PATH',
      `The bundle names the unsafe path ${JSON.stringify(path)} (absolute and normalised paths only, no ".."). The bundle is hostile or damaged; nothing was restored.`,
      { evidence: { path } },
    );
  }
  return components;
}

export function joinUnder(root: string, components: readonly string[]): string {
  return `${root === '/' ? '' : root}/${components.join('/')}`;
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (e) {
    if (isSystemError(e) && e.code === 'ENOENT') return null;
    throw e;
  }
}

export interface RootPlaceState {
  /** Ancestors (absolute, as bundle paths) that do not exist yet. */
  readonly missingAncestors: string[];
  /** The entry's own path in the root, when something is already there. */
  readonly existing: Stats | null;
}

/**
 * Looks at an entry's place in the root without following any symlink: every ancestor that
 * exists must be a real directory. A symlink there (planted, or the old OS's own) could carry
 * the write anywhere on the host, so it is refused rather than followed.
 */
export async function inspectRootPlace(root: string, components: readonly string[]): Promise<RootPlaceState> {
  const missingAncestors: string[] = [];
  for (let depth = 1; depth < components.length; depth += 1) {
    const prefix = components.slice(0, depth);
    if (missingAncestors.length > 0) {
      missingAncestors.push(`/${prefix.join('/')}`);
      continue;
    }
    const stats = await lstatOrNull(joinUnder(root, prefix));
    if (stats === null) {
      missingAncestors.push(`/${prefix.join('/')}`);
    } else if (!stats.isDirectory()) {
      throw new ReimageError(
        'REIMAGE_RETAIN_UNSAFE_ROOT_PATH',
        `/${prefix.join('/')} in the root is ${stats.isSymbolicLink() ? 'a symlink' : 'not a directory'}, so /${components.join('/')} cannot be restored under it without following it. Replace it with a directory in the new image, or drop the path from the retention list.`,
        {
          evidence: {
            path: `/${prefix.join('/')}`,
            expected: 'directory',
            actual: stats.isSymbolicLink() ? 'symlink' : 'file',
          },
        },
      );
    }
  }
  const existing = missingAncestors.length > 0 ? null : await lstatOrNull(joinUnder(root, components));
  return { missingAncestors, existing };
}

function lstatSyncOrNull(path: string): Stats | null {
  return lstatSync(path, { throwIfNoEntry: false }) ?? null;
}

/**
 * inspectRootPlace, synchronously, remembering ancestors already seen to be real directories
 * (`knownDirs`, bundle paths) so that 10,000 entries in one directory cost one lstat each.
 */
export function inspectRootPlaceSync(
  root: string,
  components: readonly string[],
  knownDirs: Set<string>,
): RootPlaceState {
  const missingAncestors: string[] = [];
  for (let depth = 1; depth < components.length; depth += 1) {
    const ancestor = `/${components.slice(0, depth).join('/')}`;
    if (missingAncestors.length > 0) {
      missingAncestors.push(ancestor);
      continue;
    }
    if (knownDirs.has(ancestor)) continue;
    const stats = lstatSyncOrNull(joinUnder(root, components.slice(0, depth)));
    if (stats === null) {
      missingAncestors.push(ancestor);
    } else if (!stats.isDirectory()) {
      throw unsafeAncestor(ancestor, components, stats);
    } else {
      knownDirs.add(ancestor);
    }
  }
  const existing = missingAncestors.length > 0 ? null : lstatSyncOrNull(joinUnder(root, components));
  return { missingAncestors, existing };
}

function unsafeAncestor(ancestor: string, components: readonly string[], stats: Stats): ReimageError {
  const kind = stats.isSymbolicLink() ? 'symlink' : 'file';
  return new ReimageError(
    'REIMAGE_RETAIN_UNSAFE_ROOT_PATH',
    `${ancestor} in the root is ${stats.isSymbolicLink() ? 'a symlink' : 'not a directory'}, so /${components.join('/')} cannot be restored under it without following it. Replace it with a directory in the new image, or drop the path from the retention list.`,
    { evidence: { path: ancestor, expected: 'directory', actual: kind } },
  );
}
