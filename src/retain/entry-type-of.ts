import type { BigIntStats } from 'node:fs';
import { deviceNumbers } from '../core/device-number.ts';
import type { EntryType } from './manifest.ts';

/** What kind of entry an lstat describes, in the manifest's words (sockets are never retained). */
export function entryTypeOf(stats: BigIntStats): Exclude<EntryType, 'hardlink'> | 'socket' | 'unknown' {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symlink';
  if (stats.isFIFO()) return 'fifo';
  if (stats.isCharacterDevice()) return 'char-device';
  if (stats.isBlockDevice()) return 'block-device';
  return stats.isSocket() ? 'socket' : 'unknown';
}

/** A device node's numbers, as the manifest records them. */
export function devicePair(rdev: bigint): { devMajor: number; devMinor: number } {
  const { major, minor } = deviceNumbers(rdev);
  return { devMajor: major, devMinor: minor };
}
