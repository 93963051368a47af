import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isReimageError } from '../../../src/core/reimage-error.ts';
import { restoreBundle } from '../../../src/retain/index.ts';
import { readTarMembers } from '../../../src/retain/tar-reader.ts';
import type { CraftMember } from './craft-bundle.ts';
import { craftBundle, craftEntry } from './craft-bundle.ts';
import { requireTools } from './ext4-loop.ts';

/** Everything about a tree that restore could change: names, types, modes, owners, sizes, times, links, contents. */
function snapshot(dir: string): string {
  const lines: string[] = [];
  const walk = (path: string): void => {
    const stats = lstatSync(path, { bigint: true });
    const extra = stats.isSymbolicLink()
      ? readlinkSync(path)
      : stats.isFile()
        ? createHash('sha256').update(readFileSync(path)).digest('hex')
        : '';
    lines.push([path, stats.mode, stats.uid, stats.gid, stats.size, stats.mtimeNs, stats.ino, extra].join('|'));
    if (stats.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name));
  };
  walk(dir);
  return lines.join('\n');
}

describe('retain: hostile and damaged bundles are refused and leave the target untouched', () => {
  let base = '';
  let root = '';
  let outside = '';
  let bundle = '';
  let before_ = '';

  before(() => {
    requireTools();
    base = mkdtempSync(join(tmpdir(), 'reimage-hostile-'));
  });
  beforeEach(() => {
    rmSync(join(base, 'root'), { recursive: true, force: true });
    rmSync(join(base, 'outside'), { recursive: true, force: true });
    root = join(base, 'root');
    outside = join(base, 'outside');
    bundle = join(base, 'bundle.tar');
    mkdirSync(join(root, 'etc'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    writeFileSync(join(root, 'etc', 'existing'), 'keep me\n');
    writeFileSync(join(outside, 'victim'), 'outside the root\n');
    before_ = snapshot(root) + snapshot(outside);
  });
  after(() => {
    if (base !== '') rmSync(base, { recursive: true, force: true });
  });

  async function refused(code: string, members?: readonly CraftMember[]): Promise<void> {
    if (members !== undefined) craftBundle(bundle, members);
    const bundleBytes = readFileSync(bundle);
    await assert.rejects(restoreBundle({ root, bundlePath: bundle, owners: 'by-name' }), (e: unknown) => {
      assert.ok(isReimageError(e), String(e));
      assert.equal(e.code, code, e.message);
      assert.equal(e.targetTouched, false);
      return true;
    });
    assert.equal(snapshot(root) + snapshot(outside), before_, 'the target (and everything around it) is unchanged');
    assert.deepEqual(readFileSync(bundle), bundleBytes);
  }

  it('a well-formed crafted bundle restores (the harness itself is sound)', async () => {
    craftBundle(bundle, [craftEntry('/etc/new', 'file')]);
    await restoreBundle({ root, bundlePath: bundle, owners: 'by-id' });
    assert.equal(readFileSync(join(root, 'etc', 'new'), 'utf8'), 'content of /etc/new\n');
  });

  it('refuses path traversal with ".."', async () => {
    await refused('REIMAGE_RETAIN_UNSAFE_PATH', [craftEntry('/etc/../../outside/victim', 'file')]);
  });

  it('refuses a relative manifest path', async () => {
    await refused('REIMAGE_RETAIN_UNSAFE_PATH', [craftEntry('etc/x', 'file')]);
  });

  it('refuses an absolute member name that differs from the manifest', async () => {
    await refused('REIMAGE_RETAIN_BUNDLE_MISMATCH', [
      { ...craftEntry('/etc/x', 'file'), memberName: join(outside, 'victim') },
    ]);
  });

  it('refuses symlink-then-write inside the bundle', async () => {
    await refused('REIMAGE_RETAIN_UNSAFE_PATH', [
      craftEntry('/etc/link', 'symlink', { linkTarget: outside }),
      craftEntry('/etc/link/victim', 'file', { content: Buffer.from('pwned\n') }),
    ]);
  });

  it('refuses to write through a symlink planted in the root', async () => {
    rmSync(join(root, 'etc'), { recursive: true });
    symlinkSync(outside, join(root, 'etc'));
    before_ = snapshot(root) + snapshot(outside);
    await refused('REIMAGE_RETAIN_UNSAFE_ROOT_PATH', [
      craftEntry('/etc/victim', 'file', { content: Buffer.from('pwned\n') }),
    ]);
  });

  it('replaces a symlink planted at the final name instead of writing through it', async () => {
    symlinkSync(join(outside, 'victim'), join(root, 'etc', 'key'));
    craftBundle(bundle, [craftEntry('/etc/key', 'file', { content: Buffer.from('real key\n') })]);
    await restoreBundle({ root, bundlePath: bundle, owners: 'by-id' });
    assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'outside the root\n');
    assert.equal(readFileSync(join(root, 'etc', 'key'), 'utf8'), 'real key\n');
  });

  it('refuses a directory where the root has a file, before writing anything', async () => {
    await refused('REIMAGE_RETAIN_ROOT_CONFLICT', [
      craftEntry('/etc/first', 'file'),
      craftEntry('/etc/existing', 'directory'),
    ]);
  });

  it('refuses a hard link to a path the bundle does not hold', async () => {
    await refused('REIMAGE_RETAIN_BUNDLE_MISMATCH', [craftEntry('/etc/hl', 'hardlink', { linkTarget: '/etc/passwd' })]);
  });

  it('refuses a member missing from the manifest', async () => {
    await refused('REIMAGE_RETAIN_BUNDLE_MISMATCH', [
      craftEntry('/etc/listed', 'file'),
      { ...craftEntry('/etc/smuggled', 'file'), inManifest: false },
    ]);
  });

  it('refuses a manifest entry without a member', async () => {
    await refused('REIMAGE_RETAIN_BUNDLE_MISMATCH', [
      craftEntry('/etc/a', 'file'),
      { ...craftEntry('/etc/b', 'file'), inTar: false },
    ]);
  });

  it('refuses a flipped byte in a member content', async () => {
    craftBundle(bundle, [craftEntry('/etc/ssh_host_key', 'file', { content: Buffer.from('PRIVATE KEY\n') })]);
    const offset = await dataOffset(bundle, 'etc/ssh_host_key');
    flipByte(bundle, offset + 3);
    await refused('REIMAGE_RETAIN_DIGEST_MISMATCH');
  });

  it('refuses a flipped byte in a header', async () => {
    craftBundle(bundle, [craftEntry('/etc/ssh_host_key', 'file')]);
    const offset = await dataOffset(bundle, 'etc/ssh_host_key');
    flipByte(bundle, offset - 512 + 101); // inside the ustar mode field
    await refused('REIMAGE_RETAIN_BUNDLE_CORRUPT');
  });

  it('refuses a flipped byte in an xattr value', async () => {
    const member = craftEntry('/etc/labelled', 'file');
    const xattrs = new Map([['user.label', Buffer.from('AAAA')]]);
    const { xattrDigest } = await import('../../../src/retain/manifest.ts');
    craftBundle(bundle, [
      { ...member, xattrs, entry: { ...member.entry, xattrs: ['user.label'], xattrSha256: xattrDigest(xattrs) } },
    ]);
    const bytes = readFileSync(bundle);
    const at = bytes.indexOf('AAAA');
    flipByte(bundle, at);
    await refused('REIMAGE_RETAIN_BUNDLE_MISMATCH');
  });

  it('refuses a truncated bundle', async () => {
    craftBundle(bundle, [craftEntry('/etc/a', 'file'), craftEntry('/etc/b', 'file')]);
    const bytes = readFileSync(bundle);
    writeFileSync(bundle, bytes.subarray(0, bytes.length - 2048));
    await refused('REIMAGE_RETAIN_BUNDLE_CORRUPT');
  });

  it('refuses a bundle whose manifest is not JSON', async () => {
    writeFileSync(bundle, Buffer.alloc(1024));
    await refused('REIMAGE_RETAIN_MANIFEST_INVALID');
  });
});

function flipByte(path: string, offset: number): void {
  const bytes = readFileSync(path);
  bytes[offset] = (bytes[offset] ?? 0) ^ 0x01;
  writeFileSync(path, bytes);
}

async function dataOffset(bundle: string, name: string): Promise<number> {
  const handle = await open(bundle, 'r');
  try {
    const { size } = await handle.stat();
    for (const member of readTarMembers(handle.fd, size)) if (member.name === name) return member.dataOffsetBytes;
  } finally {
    await handle.close();
  }
  throw new Error(`no member ${name}`);
}
