import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../../src/core/logger.ts';
import { runCommand } from '../../../src/core/run-command.ts';
import { type AccountIdRemap, accountIdRemap, readAccountFiles } from '../../../src/demo/account-id-remap.ts';
import { type DemoWorkspace, prepareDemo, writeDemoPlan } from '../../../src/demo/demo-session.ts';
import { aclDump, capabilityDump, sha256OfFile, withMountedPartitions, xattrDump } from '../../helpers/mounted-disk.ts';
import { runReimage } from '../../helpers/run-cli.ts';

/** What a run may leave in its work dir: never the image copy or the bundle (private keys). */
function scratchLeft(workDir: string): string[] {
  return ['image', 'image.bmap', 'retain.tar'].filter((name) => existsSync(join(workDir, name)));
}

// `reimage run` against the demo's old disk image through loop devices, as a user runs it.
// The disk images are real (ext4, an msdos table, a zstd image with a bmaptool block map).
/** A getfacl dump with its numeric owners and qualifiers moved as a by-name restore moves them. */
function remapIds(dump: string, remap: AccountIdRemap): string {
  return dump.replace(/^(# owner: |# group: |user:|group:)([0-9]+)\b/gm, (_all, prefix: string, id: string) => {
    const ids = prefix === '# owner: ' || prefix === 'user:' ? remap.uid : remap.gid;
    return `${prefix}${ids.get(Number(id)) ?? id}`;
  });
}

describe('reimage run on a disk image file (loop devices)', () => {
  let workspace: DemoWorkspace;
  let pristineDigest = '';

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-run-plan');
    pristineDigest = await sha256OfFile(workspace.diskPath);
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  async function planWith(name: string, edit: (text: string) => string): Promise<string> {
    const file = join(workspace.dir, `${name}.yaml`);
    await writeDemoPlan(workspace, workspace.diskPath, file);
    await writeFile(file, edit(await readFile(file, 'utf8')));
    return file;
  }

  it('refuses an image whose digest does not match, leaving the disk bit-for-bit unchanged (exit 3)', async () => {
    const plan = await planWith('wrong-digest', (text) =>
      text.replace(/sha256: [0-9a-f]{64}/, `sha256: ${'0'.repeat(64)}`),
    );
    const workDir = join(workspace.dir, 'work-digest');
    const result = runReimage(['run', '--plan', plan, '--work-dir', workDir]);
    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /REIMAGE_IMAGE_DIGEST_MISMATCH/);
    assert.match(result.stderr, /expected: 0{64}/);
    assert.match(result.stderr, /refused; the target is untouched: nothing was changed\. \(exit 3\)/);
    assert.equal(await sha256OfFile(workspace.diskPath), pristineDigest);
    // The image had been copied into the work dir before its digest was checked.
    assert.deepEqual(scratchLeft(workDir), []);
    assert.ok(existsSync(join(workDir, 'reimage.log')), 'the log stays for the operator');
  });

  it('refuses a missing required retained path, leaving the disk bit-for-bit unchanged (exit 3)', async () => {
    const plan = await planWith('missing-path', (text) =>
      text.replace('- /etc/hostname', '- /etc/no-such-identity-file'),
    );
    const workDir = join(workspace.dir, 'work-missing');
    const result = runReimage(['run', '--plan', plan, '--work-dir', workDir, '--keep-work-files']);
    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /\/etc\/no-such-identity-file/);
    assert.equal(await sha256OfFile(workspace.diskPath), pristineDigest);
    // Asked to keep them: the image and its map loaded before the capture failed are still there.
    assert.deepEqual(scratchLeft(workDir), ['image', 'image.bmap']);
  });

  it('refuses a disk that does not exist as invalid input (exit 2)', async () => {
    const plan = await planWith('no-disk', (text) => text.replace(/^disk: .*$/m, 'disk: /dev/no-such-disk'));
    const result = runReimage(['run', '--plan', plan, '--work-dir', join(workspace.dir, 'work-nodisk')]);
    assert.equal(result.exitCode, 2, result.stderr);
    assert.match(result.stderr, /REIMAGE_DISK_NOT_FOUND/);
  });

  it('reimages the disk and keeps the identity, owners by name, modes, xattrs, ACLs and capabilities', async () => {
    const attributePaths = ['etc/kiosk', 'var/lib/kiosk', 'usr/local/bin', 'etc/ssh', 'etc/pki'];
    const old = await withMountedPartitions(workspace.fixtures.oldDiskPath, [5], async ([root = '']) => ({
      machineId: await readFile(join(root, 'etc/machine-id'), 'utf8'),
      hostKey: await readFile(join(root, 'etc/ssh/ssh_host_ed25519_key')),
      xattrs: await xattrDump(root, attributePaths),
      acls: await aclDump(root, attributePaths),
      capabilities: await capabilityDump(root, ['usr/local/bin']),
      accounts: await readAccountFiles(root),
      kioskUid: (await stat(join(root, 'etc/kiosk'))).uid,
    }));

    const plan = await planWith('ok', (text) => text);
    const workDir = join(workspace.dir, 'work-ok');
    const result = runReimage(['run', '--plan', plan, '--work-dir', workDir], {
      timeoutMs: 600_000,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /reimage run: done/);
    assert.deepEqual(scratchLeft(workDir), [], 'no image copy or bundle (private keys) left after a success');
    assert.notEqual(await sha256OfFile(workspace.diskPath), pristineDigest);

    await withMountedPartitions(workspace.diskPath, [2, 6], async ([root = '', kiosk = '']) => {
      assert.match(await readFile(join(root, 'etc/os-release'), 'utf8'), /VERSION_ID="?2\.0/);
      assert.equal(await readFile(join(root, 'etc/machine-id'), 'utf8'), old.machineId);
      assert.deepEqual(await readFile(join(root, 'etc/ssh/ssh_host_ed25519_key')), old.hostKey);
      const key = await stat(join(root, 'etc/ssh/ssh_host_ed25519_key'));
      assert.equal(key.mode & 0o7777, 0o600);
      // The demo's accounts have other ids in the new root (from both account databases): owners follow the name.
      const remap = accountIdRemap(old.accounts, await readAccountFiles(root));
      const kioskUid = remap.uid.get(old.kioskUid);
      assert.ok(kioskUid !== undefined, 'the owner of /etc/kiosk has another id in the new root');
      assert.equal((await stat(join(root, 'etc/kiosk'))).uid, kioskUid);
      assert.equal(await xattrDump(root, attributePaths), old.xattrs);
      assert.equal(await capabilityDump(root, ['usr/local/bin']), old.capabilities);
      // ACLs and owners name accounts by number: a by-name restore maps them like the owners.
      assert.equal(await aclDump(root, attributePaths), remapIds(old.acls, remap));
      const report = JSON.parse(await readFile(join(kiosk, 'log/report.json'), 'utf8')) as {
        result: string;
        entriesVerified: number;
        bytesSkipped: number;
      };
      assert.equal(report.result, 'ok');
      assert.ok(report.entriesVerified > 10);
      assert.ok(report.bytesSkipped > 0, 'the block map made the writer skip unmapped ranges');
      assert.match(await readFile(join(kiosk, 'log/reimage.log'), 'utf8'), /stage 3\/3 restore/);
    });
  });

  it('runs the after-hooks chrooted in the new root, and a failing hook is a failure of a changed disk (exit 4)', async () => {
    const plan = await planWith('after-hooks', (text) =>
      text.replace(/after: \[\]/, 'after:\n    - echo hooked > /etc/after-hook-ran\n    - exit 7'),
    );
    // The test before reimaged the disk: start again from the pristine old disk.
    await runCommand('cp', ['--sparse=always', workspace.fixtures.oldDiskPath, workspace.diskPath]);
    const workDir = join(workspace.dir, 'work-hooks');
    const result = runReimage(['run', '--plan', plan, '--work-dir', workDir], { timeoutMs: 600_000 });
    assert.equal(result.exitCode, 4, result.stderr);
    assert.match(result.stderr, /REIMAGE_RUN_AFTER_HOOK_FAILED/);
    assert.match(result.stderr, /restore\.after\[1\]/);
    assert.match(result.stderr, /failed; the target was changed\. \(exit 4\)/);
    assert.deepEqual(scratchLeft(workDir), [], 'no image copy or bundle (private keys) left after a failure');
    const journal = (await readFile(join(workDir, 'journal.jsonl'), 'utf8')).trim().split('\n');
    assert.ok(journal.some((line) => line.includes('"stage":"restore","event":"done"')));
    await withMountedPartitions(workspace.diskPath, [2], async ([root = '']) => {
      assert.equal(await readFile(join(root, 'etc/after-hook-ran'), 'utf8'), 'hooked\n');
    });
  });
});
