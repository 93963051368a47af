// Helpers for the armed write's tests: an image with real zeros inside the map and data in the
// gaps, a hand-made map, and the target the map must leave behind.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ByteRange } from '../../../src/disk/index.ts';
import { MIB, run, writeAtPath } from './image-fixture.ts';

export const MAPPED_IMAGE_BYTES = 16 * MIB;

/**
 * The map: LBA 0 and more, a sub-MiB range, a range holding 1 MiB of real zeros (4-5 MiB), a few
 * sectors that are not whole 4 KiB units, a long range, and the image's last 8 KiB. Every gap
 * holds random image bytes, so a write outside the map shows on a 0xA5 target.
 */
export const HAND_MAP: readonly ByteRange[] = [
  { offsetBytes: 0, lengthBytes: 64 * 1024 },
  { offsetBytes: 1 * MIB, lengthBytes: 300 * 1024 },
  { offsetBytes: 3 * MIB, lengthBytes: 3 * MIB },
  { offsetBytes: 6 * MIB + 3 * 4096 + 512, lengthBytes: 7 * 512 },
  { offsetBytes: 8 * MIB, lengthBytes: 6 * MIB },
  { offsetBytes: MAPPED_IMAGE_BYTES - 8192, lengthBytes: 8192 },
];

export const ZERO_RANGE: ByteRange = { offsetBytes: 4 * MIB, lengthBytes: MIB };

export interface MappedImage {
  readonly raw: string;
  readonly zstd: string;
  readonly gzip: string;
  readonly bzip2: string;
  readonly bytes: Buffer;
}

/** Random bytes everywhere but ZERO_RANGE (real zeros, inside the map), compressed by the real tools. */
export function buildMappedImage(dir: string): MappedImage {
  const raw = join(dir, 'mapped.img');
  run('truncate', ['-s', String(MAPPED_IMAGE_BYTES), raw]);
  for (let at = 0; at < MAPPED_IMAGE_BYTES; at += MIB) writeAtPath(raw, randomBytes(MIB), at);
  writeAtPath(raw, Buffer.alloc(ZERO_RANGE.lengthBytes), ZERO_RANGE.offsetBytes);
  run('zstd', ['-q', '-f', raw, '-o', `${raw}.zst`]);
  run('gzip', ['-k', '-f', raw]);
  run('bzip2', ['-k', '-f', raw]);
  return { raw, zstd: `${raw}.zst`, gzip: `${raw}.gz`, bzip2: `${raw}.bz2`, bytes: readFileSync(raw) };
}

/**
 * What the target must hold after the armed write: 0xA5 (its old bytes) everywhere, the image's
 * bytes inside the ranges, and the old bytes again in the first `firstBlockBytes` (held back).
 */
export function expectedTarget(
  image: Buffer,
  ranges: readonly ByteRange[],
  targetBytes: number,
  firstBlockBytes: number,
): Buffer {
  const expected = Buffer.alloc(targetBytes, 0xa5);
  for (const range of ranges)
    image.copy(expected, range.offsetBytes, range.offsetBytes, range.offsetBytes + range.lengthBytes);
  expected.fill(0xa5, 0, firstBlockBytes);
  return expected;
}

/** The disk offset just after mapped byte `mappedBytes` (bytes of the ranges counted in order). */
export function diskOffsetOfMapped(ranges: readonly ByteRange[], mappedBytes: number): number {
  let before = 0;
  for (const range of ranges) {
    if (mappedBytes <= before + range.lengthBytes) return range.offsetBytes + (mappedBytes - before);
    before += range.lengthBytes;
  }
  throw new Error(`mapped byte ${mappedBytes} is past the map`);
}

/** The ranges cut to their first `mappedBytes` bytes (in map order). */
export function mappedPrefix(ranges: readonly ByteRange[], mappedBytes: number): ByteRange[] {
  const prefix: ByteRange[] = [];
  let left = mappedBytes;
  for (const range of ranges) {
    if (left <= 0) break;
    prefix.push({ offsetBytes: range.offsetBytes, lengthBytes: Math.min(left, range.lengthBytes) });
    left -= range.lengthBytes;
  }
  return prefix;
}

/** The first byte where two buffers differ, for a readable failure; -1 when equal. */
export function firstDifference(a: Buffer, b: Buffer): number {
  const length = Math.min(a.length, b.length);
  for (let at = 0; at < length; at += 4096) {
    const end = Math.min(length, at + 4096);
    if (!a.subarray(at, end).equals(b.subarray(at, end))) {
      for (let i = at; i < end; i++) if (a[i] !== b[i]) return i;
    }
  }
  return a.length === b.length ? -1 : length;
}

/** Flush requests the block device has completed (/sys/block/NAME/stat, field 16). */
export function flushCount(device: string): number {
  const name = device.split('/').at(-1) ?? '';
  const fields = readFileSync(`/sys/block/${name}/stat`, 'utf8').trim().split(/\s+/);
  const value = fields[15];
  if (value === undefined) throw new Error(`no flush counter in /sys/block/${name}/stat`);
  return Number(value);
}
