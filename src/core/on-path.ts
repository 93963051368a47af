import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** Searched after PATH: a non-root PATH often lacks the sbin directories (losetup, partx, mkfs). */
const SBIN_DIRS = ['/usr/sbin', '/sbin'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where `command` runs from: an absolute path if it is executable, else the first executable of
 * that name in PATH and then in `extraDirs`; undefined when there is none.
 */
export function findOnPath(command: string, extraDirs: readonly string[] = SBIN_DIRS): string | undefined {
  if (isAbsolute(command)) return executable(command) ? command : undefined;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

/** True when `command` is an executable in PATH or in /usr/sbin and /sbin. */
export function onPath(command: string): boolean {
  return findOnPath(command) !== undefined;
}
