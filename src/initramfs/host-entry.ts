import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** A host file, symlink or directory as the planner needs it: what it is, never its bytes. */
export type HostEntry =
  | { readonly kind: 'file'; readonly hostPath: string; readonly mode: number; readonly sizeBytes: number }
  | { readonly kind: 'symlink'; readonly hostPath: string; readonly linkTarget: string }
  | { readonly kind: 'directory'; readonly hostPath: string; readonly mode: number };

/** A host entry found under a directory, with its path relative to that directory ("a/b"). */
export type HostTreeEntry = HostEntry & { readonly relativePath: string };

/** lstat (and readlink) one host path; anything but a file, symlink or directory gives undefined. */
export async function describeHostPath(hostPath: string): Promise<HostEntry | undefined> {
  const stats = await lstat(hostPath);
  if (stats.isSymbolicLink()) return { kind: 'symlink', hostPath, linkTarget: await readlink(hostPath) };
  if (stats.isFile()) return { kind: 'file', hostPath, mode: stats.mode & 0o7777, sizeBytes: stats.size };
  if (stats.isDirectory()) return { kind: 'directory', hostPath, mode: stats.mode & 0o7777 };
  return undefined;
}

export async function describeHostPaths(hostPaths: readonly string[]): Promise<HostEntry[]> {
  const described: HostEntry[] = [];
  for (const hostPath of hostPaths) {
    const entry = await describeHostPath(hostPath);
    if (entry !== undefined) described.push(entry);
  }
  return described;
}

/**
 * Every file, symlink and directory under `hostDir` (symlinks not followed), names sorted, a
 * directory before its contents, skipping the relative paths `skip` names (and what is under them).
 */
export async function listHostTree(
  hostDir: string,
  skip: (relativePath: string) => boolean = () => false,
): Promise<HostTreeEntry[]> {
  const found: HostTreeEntry[] = [];
  const walk = async (relativeDir: string): Promise<void> => {
    const names = (await readdir(join(hostDir, relativeDir))).sort();
    for (const name of names) {
      const relativePath = relativeDir === '' ? name : `${relativeDir}/${name}`;
      if (skip(relativePath)) continue;
      const entry = await describeHostPath(join(hostDir, relativePath));
      if (entry === undefined) continue;
      found.push({ ...entry, relativePath });
      if (entry.kind === 'directory') await walk(relativePath);
    }
  };
  await walk('');
  return found;
}
