import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isReimageError, type ReimageError } from '../../../src/core/reimage-error.ts';

/** The system tools these tests run, with the Debian package that provides each. */
const TOOLS: Readonly<Record<string, string>> = {
  gzip: 'gzip',
  bzip2: 'bzip2',
  lbzip2: 'lbzip2',
  xz: 'xz-utils',
  zstd: 'zstd',
  bmaptool: 'bmap-tools',
  losetup: 'mount',
  partx: 'util-linux',
  sfdisk: 'fdisk',
  'mkfs.ext4': 'e2fsprogs',
  fallocate: 'util-linux',
  blockdev: 'util-linux',
};

/** Fails (never skips) when a tool is missing, naming the package to install. */
export function requireTools(): void {
  const missing = Object.entries(TOOLS).filter(
    ([tool]) => spawnSync('sh', ['-c', 'command -v "$0"', tool]).status !== 0,
  );
  if (missing.length > 0) {
    throw new Error(`missing tools: ${missing.map(([tool, pkg]) => `${tool} (apt-get install ${pkg})`).join(', ')}`);
  }
  if (process.getuid?.() !== 0) throw new Error('these tests need root (loop devices, mounts)');
}

export const MIB = 1024 * 1024;

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function run(command: string, args: readonly string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface ImageSet {
  readonly dir: string;
  /** Raw image: 12 MiB + 1536 bytes (whole sectors, not whole 4 KiB blocks), sparse, with long zero runs. */
  readonly raw: string;
  /** Same bytes compressed by the real tools. */
  readonly gzip: string;
  readonly bzip2: string;
  readonly xz: string;
  readonly zstd: string;
  /** bmaptool create on `raw`. */
  readonly bmap: string;
  /** An image whose size is not a multiple of 512 (compressed only: 3 MiB + 1001 bytes). */
  readonly oddZstd: string;
  readonly oddRaw: string;
  readonly rawBytes: Buffer;
}

/** Writes bytes into a file at an offset (the file keeps its size where the bytes fit). */
export function writeAtPath(path: string, data: Uint8Array, positionBytes: number): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, positionBytes);
  } finally {
    closeSync(fd);
  }
}

export function compressAll(raw: string): void {
  run('gzip', ['-k', '-f', raw]);
  run('bzip2', ['-k', '-f', raw]);
  run('xz', ['-k', '-f', '-T2', raw]);
  run('zstd', ['-q', '-f', raw, '-o', `${raw}.zst`]);
}

/**
 * Builds the test images: random data regions, explicit zero runs longer than the 1 MiB kernel
 * zeroing threshold, holes (unmapped for bmaptool), and a non-zero last partial block.
 */
export function buildImageSet(): ImageSet {
  const dir = mkdtempSync(join(tmpdir(), 'reimage-image-'));
  const raw = join(dir, 'disk.img');
  const sizeBytes = 12 * MIB + 1536;
  run('truncate', ['-s', String(sizeBytes), raw]);
  writeAtPath(raw, randomBytes(64 * 1024), 0);
  writeAtPath(raw, randomBytes(300 * 1024 + 512), 1 * MIB);
  // Written zeros (mapped, but all zero): the writer should hand these to the kernel.
  writeAtPath(raw, Buffer.alloc(3 * MIB), 2 * MIB);
  writeAtPath(raw, randomBytes(5000), 5 * MIB + 4096);
  // 5.x MiB to 11 MiB stays a hole: unmapped.
  writeAtPath(raw, randomBytes(512 * 1024), 11 * MIB);
  writeAtPath(raw, randomBytes(1536), 12 * MIB);
  compressAll(raw);
  const bmap = join(dir, 'disk.bmap');
  run('bmaptool', ['create', '-o', bmap, raw]);

  const oddRaw = join(dir, 'odd.img');
  run('truncate', ['-s', String(3 * MIB + 1001), oddRaw]);
  writeAtPath(oddRaw, randomBytes(1000), 0);
  writeAtPath(oddRaw, randomBytes(1001), 3 * MIB);
  run('zstd', ['-q', '-f', oddRaw, '-o', `${oddRaw}.zst`]);

  return {
    dir,
    raw,
    gzip: `${raw}.gz`,
    bzip2: `${raw}.bz2`,
    xz: `${raw}.xz`,
    zstd: `${raw}.zst`,
    bmap,
    oddRaw,
    oddZstd: `${oddRaw}.zst`,
    rawBytes: readFileSync(raw),
  };
}

/** A regular-file target of `sizeBytes`, filled with 0xA5 so skipped zeros would show. */
export function dirtyFile(dir: string, name: string, sizeBytes: number): string {
  const path = join(dir, name);
  const fd = openSync(path, 'w');
  try {
    const chunk = Buffer.alloc(MIB, 0xa5);
    for (let at = 0; at < sizeBytes; at += MIB) writeSync(fd, chunk, 0, Math.min(MIB, sizeBytes - at), at);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Fills a block device (or file) with 0xA5 again, in place. */
export function redirty(path: string, sizeBytes: number): void {
  const fd = openSync(path, 'r+');
  try {
    const chunk = Buffer.alloc(MIB, 0xa5);
    for (let at = 0; at < sizeBytes; at += MIB) writeSync(fd, chunk, 0, Math.min(MIB, sizeBytes - at), at);
  } finally {
    closeSync(fd);
  }
}

export function readRange(path: string, offsetBytes: number, lengthBytes: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(lengthBytes);
    let got = 0;
    while (got < lengthBytes) {
      const n = readSync(fd, buffer, got, lengthBytes - got, offsetBytes + got);
      if (n === 0) break;
      got += n;
    }
    return buffer.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

export function attachLoop(backingFile: string): string {
  return run('losetup', ['-f', '--show', backingFile]).trim();
}

export function detachLoop(device: string): void {
  spawnSync('partx', ['-d', device]);
  spawnSync('losetup', ['-d', device]);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Awaits work that must fail with a ReimageError of `code`, and returns that error. */
export async function expectError(work: Promise<unknown>, code: string): Promise<ReimageError> {
  try {
    await work;
  } catch (e) {
    assert.ok(isReimageError(e), `expected a ReimageError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}
