import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, lutimes, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { type ArchiveEntry, writeInitramfsArchive } from '../../../src/initramfs/newc-archive.ts';

function requireTool(tool: string, debianPackage: string): void {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  assert.ok(found, `${tool} is missing: install the Debian package ${debianPackage}`);
}

/** The same tree as entries and on disk, so cpio can archive the disk copy and we compare bytes. */
const entries: ArchiveEntry[] = [
  { path: 'bin/sh', kind: 'file', mode: 0o755, data: Buffer.from('#!/bin/busybox sh\n') },
  { path: 'etc/reimage/plan.yaml', kind: 'file', mode: 0o600, data: Buffer.from('disk: /dev/vda\n') },
  { path: 'etc/empty', kind: 'file', mode: 0o644, data: new Uint8Array(0) },
  { path: 'etc/odd', kind: 'file', mode: 0o4755, data: Buffer.from('abc') },
  { path: 'usr/bin/sh', kind: 'symlink', mode: 0o777, linkTarget: '../../bin/sh' },
  { path: 'lib/ünïcode näme', kind: 'file', mode: 0o644, data: Buffer.from('é') },
  { path: 'dev/console', kind: 'char-device', mode: 0o600, deviceMajor: 5, deviceMinor: 1 },
  { path: 'dev/loop0', kind: 'block-device', mode: 0o660, deviceMajor: 7, deviceMinor: 0 },
  { path: 'tmp', kind: 'directory', mode: 0o1777 },
  { path: 'a-b', kind: 'directory', mode: 0o755 },
  { path: 'a/x', kind: 'file', mode: 0o644, data: Buffer.from('x') },
];

describe('writeInitramfsArchive', () => {
  let workDir = '';
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'reimage-newc-'));
  });
  after(async () => {
    await rm(workDir, { recursive: true, force: true });
  });

  it('writes the same bytes as cpio -o -H newc --reproducible', async () => {
    requireTool('cpio', 'cpio');
    assert.equal(process.getuid?.(), 0, 'this test needs root (it creates device nodes)');
    const tree = join(workDir, 'tree');
    const paths: string[] = [];
    for (const entry of entries) {
      const target = join(tree, entry.path);
      await mkdir(join(target, '..'), { recursive: true });
      if (entry.kind === 'file') await writeFile(target, entry.data ?? new Uint8Array(0));
      if (entry.kind === 'directory') await mkdir(target, { recursive: true });
      if (entry.kind === 'symlink') await symlink(entry.linkTarget ?? '', target);
      if (entry.kind === 'char-device' || entry.kind === 'block-device') {
        const type = entry.kind === 'char-device' ? 'c' : 'b';
        const made = spawnSync('mknod', [target, type, String(entry.deviceMajor), String(entry.deviceMinor)]);
        assert.equal(made.status, 0, made.stderr.toString());
      }
      if (entry.kind !== 'symlink') await chmod(target, entry.mode);
    }
    const listed = spawnSync('find', ['.', '-mindepth', '1'], { cwd: tree, encoding: 'utf8' });
    for (const path of listed.stdout.split('\n').filter((p) => p !== '')) paths.push(path.slice(2));
    for (const path of paths) await lutimes(join(tree, path), 0, 0);
    await utimes(tree, 0, 0);
    paths.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const cpio = spawnSync('cpio', ['-o', '-H', 'newc', '--reproducible', '--owner=0:0', '--quiet'], {
      cwd: tree,
      input: `${paths.join('\n')}\n`,
    });
    assert.equal(cpio.status, 0, cpio.stderr.toString());

    const outPath = join(workDir, 'ours.cpio');
    const { sizeBytes } = await writeInitramfsArchive(entries, outPath, { compression: 'none' });
    const ours = await readFile(outPath);
    assert.equal(sizeBytes, ours.length);
    assert.equal(ours.length, cpio.stdout.length);
    assert.ok(ours.equals(cpio.stdout), 'our newc bytes differ from GNU cpio');

    const listedBack = spawnSync('cpio', ['-it', '--quiet'], { input: ours, encoding: 'utf8' });
    assert.equal(listedBack.status, 0, listedBack.stderr);
    assert.deepEqual(
      listedBack.stdout.split('\n').filter((p) => p !== ''),
      paths,
    );
  });

  it('is reproducible and the compressed forms decode to the same archive', async () => {
    const plain = join(workDir, 'plain.cpio');
    const zstd1 = join(workDir, 'one.cpio.zst');
    const zstd2 = join(workDir, 'two.cpio.zst');
    const gzip = join(workDir, 'archive.cpio.gz');
    await writeInitramfsArchive(entries, plain, { compression: 'none' });
    await writeInitramfsArchive(entries, zstd1);
    await writeInitramfsArchive([...entries].reverse(), zstd2, { compression: 'zstd' });
    await writeInitramfsArchive(entries, gzip, { compression: 'gzip' });
    const raw = await readFile(plain);
    assert.ok((await readFile(zstd1)).equals(await readFile(zstd2)), 'the order of the input must not matter');
    assert.ok(zstdDecompressSync(await readFile(zstd1)).equals(raw));
    assert.ok(gunzipSync(await readFile(gzip)).equals(raw));
  });

  it('rejects absolute, dotted and duplicate paths and files under non-directories', async () => {
    const outPath = join(workDir, 'bad.cpio');
    const cases: ArchiveEntry[][] = [
      [{ path: '/etc/x', kind: 'file', mode: 0o644 }],
      [{ path: 'etc/../x', kind: 'file', mode: 0o644 }],
      [{ path: 'etc//x', kind: 'file', mode: 0o644 }],
      [
        { path: 'x', kind: 'file', mode: 0o644 },
        { path: 'x', kind: 'file', mode: 0o644 },
      ],
      [
        { path: 'x', kind: 'file', mode: 0o644 },
        { path: 'x/y', kind: 'file', mode: 0o644 },
      ],
      [{ path: 'l', kind: 'symlink', mode: 0o777 }],
    ];
    for (const bad of cases) {
      await assert.rejects(writeInitramfsArchive(bad, outPath, { compression: 'none' }), (e: unknown) => {
        assert.ok(e instanceof Error && 'code' in e);
        assert.match(String(e.code), /^REIMAGE_INITRAMFS_ENTRY_(INVALID|DUPLICATE)$/);
        return true;
      });
    }
  });
});
