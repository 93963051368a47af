import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * True when `command` is an executable in PATH or in /usr/sbin and /sbin (a non-root PATH often
 * lacks the sbin directories, where losetup, partx and mkfs live).
 */
export function onPath(command: string): boolean {
  const searchPath = `${process.env.PATH ?? ''}${delimiter}/usr/sbin${delimiter}/sbin`;
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}
