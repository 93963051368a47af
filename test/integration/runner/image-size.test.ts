import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../../src/core/logger.ts';
import { runCommand } from '../../../src/core/run-command.ts';
import { type DemoWorkspace, prepareDemo, writeDemoPlan } from '../../../src/demo/demo-session.ts';
import { sha256OfFile } from '../../helpers/mounted-disk.ts';
import { runReimage } from '../../helpers/run-cli.ts';

/** What the writer logs when it must decode the image once only to learn its size (decoded-size.ts). */
const COUNTING_PASS = /decoding it once to measure it/;

function sh(line: string, ...args: string[]): string {
  return execFileSync('sh', ['-c', line, 'sh', ...args], { encoding: 'utf8' }).trim();
}

function firstSector(path: string): string {
  return sh('head -c 512 "$1" | sha256sum | cut -d" " -f1', path);
}

// `reimage run` with a gzip image (which does not record its decoded size) and the size given
// in the plan as image.size: the demo's old disk, with a gzip copy of the new image put on the
// old root next to the zstd one, through loop devices as a user runs it.
describe('reimage run with image.size (a gzip image)', () => {
  let workspace: DemoWorkspace;
  let pristinePath = '';
  let pristineDigest = '';
  let gzipSha256 = '';
  let decodedBytes = 0;
  let diskBytes = 0;

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-image-size');
    const gzip = join(workspace.dir, 'new-os.img.gz');
    sh('zstd -dc "$1" | gzip -1 -n > "$2"', workspace.fixtures.newImagePath, gzip);
    gzipSha256 = sh('sha256sum "$1" | cut -d" " -f1', gzip);
    decodedBytes = Number(sh('gzip -dc "$1" | wc -c', gzip));
    diskBytes = (await stat(workspace.diskPath)).size;
    // Partition 5 (the old root, which holds the image) by its extent, so no partition node is awaited.
    const table = JSON.parse(sh('sfdisk --json "$1"', workspace.diskPath)) as {
      partitiontable: { partitions: { node: string; start: number; size: number }[] };
    };
    const oldRoot = table.partitiontable.partitions.find((p) => p.node.endsWith('5'));
    assert.ok(oldRoot !== undefined);
    const [start, sectors] = [String(oldRoot.start), String(oldRoot.size)];
    const mountDir = join(workspace.dir, 'old-root');
    sh(
      'mkdir -p "$3" && loop=$(losetup --find --show --offset $(($4 * 512)) --sizelimit $(($5 * 512)) "$1") && ' +
        'mount "$loop" "$3" && cp "$2" "$3/new-os.img.gz" && umount "$3"; rc=$?; losetup -d "$loop"; exit $rc',
      workspace.diskPath,
      gzip,
      mountDir,
      start,
      sectors,
    );
    pristinePath = join(workspace.dir, 'pristine-disk.img');
    await runCommand('cp', ['--sparse=always', workspace.diskPath, pristinePath]);
    pristineDigest = await sha256OfFile(pristinePath);
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  /** A plan for the gzip copy, with no block map and the given image.size; the disk reset to pristine. */
  async function planWithSize(name: string, sizeBytes: number): Promise<string> {
    await runCommand('cp', ['--sparse=always', pristinePath, workspace.diskPath]);
    const file = join(workspace.dir, `${name}.yaml`);
    await writeDemoPlan(workspace, workspace.diskPath, file);
    const text = (await readFile(file, 'utf8'))
      .replace('path: /new-os.img.zst', 'path: /new-os.img.gz')
      .replace(/sha256: [0-9a-f]{64}/, `sha256: ${gzipSha256}`)
      .replace(/^ {2}bmap: .*$/m, `  size: ${sizeBytes}`);
    assert.match(text, /size: \d+/);
    assert.doesNotMatch(text, /bmap:/);
    await writeFile(file, text);
    return file;
  }

  it('writes the gzip image with no counting pass when the plan gives its size', async () => {
    const plan = await planWithSize('right-size', decodedBytes);
    const workDir = join(workspace.dir, 'work-right');
    const result = runReimage(['run', '--plan', plan, '--work-dir', workDir], { timeoutMs: 600_000 });
    assert.equal(result.exitCode, 0, result.stderr);
    const log = await readFile(join(workDir, 'reimage.log'), 'utf8');
    assert.match(log, /stage 3\/3 restore/);
    assert.match(log, new RegExp(`gzip image of ${decodedBytes} bytes`));
    assert.doesNotMatch(log, COUNTING_PASS, 'the size came from the plan: no decode only to measure it');
    assert.notEqual(await sha256OfFile(workspace.diskPath), pristineDigest);
  });

  it('refuses an image.size larger than the disk before anything changes (exit 3)', async () => {
    const plan = await planWithSize('too-big', diskBytes + 512);
    const workDir = join(workspace.dir, 'work-too-big');
    const result = runReimage(['run', '--plan', plan, '--work-dir', workDir], { timeoutMs: 600_000 });
    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /REIMAGE_TARGET_TOO_SMALL/);
    assert.match(result.stderr, /refused; the target is untouched/);
    const log = await readFile(join(workDir, 'reimage.log'), 'utf8');
    assert.doesNotMatch(log, /stage 2\/3/, 'refused in the capture stage, before the write starts');
    assert.equal(await sha256OfFile(workspace.diskPath), pristineDigest);
  });

  it('fails the write when the image decodes to another size than image.size, with LBA 0 kept', async () => {
    const sector0 = firstSector(pristinePath);
    const plan = await planWithSize('wrong-size', decodedBytes + 512);
    const workDir = join(workspace.dir, 'work-wrong');
    const result = runReimage(['run', '--plan', plan, '--work-dir', workDir], { timeoutMs: 600_000 });
    assert.equal(result.exitCode, 4, result.stderr);
    assert.match(result.stderr, /REIMAGE_IMAGE_SIZE_MISMATCH/);
    assert.match(result.stderr, new RegExp(`decoded to ${decodedBytes} bytes, not the ${decodedBytes + 512} expected`));
    // Everything but the first logical block was written: the old partition table is still there.
    assert.equal(firstSector(workspace.diskPath), sector0);
    assert.doesNotMatch(await readFile(join(workDir, 'reimage.log'), 'utf8'), COUNTING_PASS);
  });

  it('refuses an image.size that disagrees with the block map before anything changes (exit 3)', async () => {
    // The demo's own plan: the zstd image and its block map, which the writer trusts over image.size.
    await runCommand('cp', ['--sparse=always', pristinePath, workspace.diskPath]);
    const file = join(workspace.dir, 'bmap-disagrees.yaml');
    await writeDemoPlan(workspace, workspace.diskPath, file);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^ {2}bmap: /m);
    await writeFile(file, text.replace(/^( {2}bmap: .*)$/m, `$1\n  size: ${decodedBytes - 4096}`));
    const workDir = join(workspace.dir, 'work-bmap');
    const result = runReimage(['run', '--plan', file, '--work-dir', workDir], { timeoutMs: 600_000 });
    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /REIMAGE_IMAGE_SIZE_MISMATCH/);
    assert.match(result.stderr, /image\.size \(\d+ bytes\) and the block map's image size \(\d+ bytes\) differ/);
    assert.equal(await sha256OfFile(workspace.diskPath), pristineDigest);
  });
});
