import { lstat, readlink } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';

/** One link of the chain that leads to a host file: a symlink (with its target text) or the file. */
export type HostPathLink =
  | { readonly kind: 'symlink'; readonly path: string; readonly linkTarget: string }
  | { readonly kind: 'file'; readonly path: string; readonly mode: number };

const maxSymlinkHops = 40;

/**
 * Every symlink met on the way to `path`, and the file it ends at, each with a parent directory
 * that has no symlink in it. Copying all of them into an archive makes `path` resolve there as it
 * does on the host: on a merged-/usr Debian, /lib64/ld-linux-x86-64.so.2 gives the symlinks
 * /lib64 and /usr/lib64/ld-linux-x86-64.so.2, the symlink /lib, and the file under /usr/lib.
 */
export async function hostPathChain(path: string): Promise<HostPathLink[]> {
  if (!isAbsolute(path)) {
    throw new ReimageError('REIMAGE_INITRAMFS_SOURCE_UNREADABLE', `"${path}" is not an absolute path.`, {
      evidence: { path },
    });
  }
  const links: HostPathLink[] = [];
  const seen = new Set<string>();
  let hops = 0;

  /** Walks `target` component by component from `/`, recording symlinks; returns the real path. */
  const walk = async (target: string): Promise<{ realPath: string; mode: number; isDirectory: boolean }> => {
    const components = target.split('/').filter((c) => c !== '' && c !== '.');
    let current = '/';
    let mode = 0o755;
    let isDirectory = true;
    for (const component of components) {
      if (component === '..') {
        current = resolve(current, '..');
        continue;
      }
      const candidate = current === '/' ? `/${component}` : `${current}/${component}`;
      let stats: Awaited<ReturnType<typeof lstat>>;
      try {
        stats = await lstat(candidate);
      } catch (e) {
        throw new ReimageError(
          'REIMAGE_INITRAMFS_SOURCE_UNREADABLE',
          `"${path}" cannot be found on this machine (${isSystemError(e) ? e.code : String(e)} at "${candidate}").`,
          { evidence: { path, actual: candidate }, cause: e },
        );
      }
      if (stats.isSymbolicLink()) {
        hops += 1;
        if (hops > maxSymlinkHops) {
          throw new ReimageError('REIMAGE_INITRAMFS_SOURCE_UNREADABLE', `Too many symlinks on the way to "${path}".`, {
            evidence: { path },
          });
        }
        const linkTarget = await readlink(candidate);
        if (!seen.has(candidate)) {
          seen.add(candidate);
          links.push({ kind: 'symlink', path: candidate, linkTarget });
        }
        const followed = await walk(resolve(current, linkTarget));
        current = followed.realPath;
        mode = followed.mode;
        isDirectory = followed.isDirectory;
      } else {
        current = candidate;
        mode = stats.mode & 0o7777;
        isDirectory = stats.isDirectory();
      }
    }
    return { realPath: current, mode, isDirectory };
  };

  const end = await walk(path);
  if (end.isDirectory) {
    throw new ReimageError('REIMAGE_INITRAMFS_SOURCE_UNREADABLE', `"${path}" is a directory, not a file.`, {
      evidence: { path, actual: end.realPath },
    });
  }
  links.push({ kind: 'file', path: end.realPath, mode: end.mode });
  return links;
}
