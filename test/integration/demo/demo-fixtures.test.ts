import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../../../src/core/run-command.ts';
import { type DemoFixtures, ensureDemoFixtures } from '../../../src/demo/demo-fixtures.ts';
import { kioskDataLabel, newRootLabel, oldRootLabel } from '../../../src/demo/demo-layout.ts';
import { hasGrubBootSector } from '../../../src/demo/grub-bios.ts';
import { sha256File } from '../../../src/image/sha256-file.ts';
import { parsePlan } from '../../../src/plan/index.ts';
import { requireTools, withImageMounted } from './system-tools.ts';

const tools = {
  losetup: 'mount',
  partx: 'util-linux',
  blkid: 'util-linux',
  sfdisk: 'fdisk',
  'mkfs.ext4': 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  'ssh-keygen': 'openssh-client',
  openssl: 'openssl',
  getfacl: 'acl',
  getfattr: 'attr',
  getcap: 'libcap2-bin',
  zstd: 'zstd',
  bmaptool: 'bmap-tools',
  'grub-mkimage': 'grub-common',
  busybox: 'busybox-static',
};

async function blkidLabel(device: string): Promise<string> {
  return (await runCommand('blkid', ['-p', '-o', 'value', '-s', 'LABEL', device])).stdout.trim();
}

describe('demo fixtures', () => {
  let fixtures: DemoFixtures;
  let scratch: string;

  before(async () => {
    requireTools(tools);
    fixtures = await ensureDemoFixtures();
    scratch = await mkdtemp(join(tmpdir(), 'reimage-demo-fixtures-'));
  });

  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  it('reuses a finished build instead of building again', async () => {
    const before = (await stat(join(fixtures.dir, 'fixtures.json'))).mtimeMs;
    const again = await ensureDemoFixtures();
    assert.equal(again.dir, fixtures.dir);
    assert.equal((await stat(join(fixtures.dir, 'fixtures.json'))).mtimeMs, before);
  });

  it('writes a valid plan for the old disk whose digest is the stored image', async () => {
    const { plan, problems } = parsePlan(await readFile(fixtures.planPath, 'utf8'));
    assert.deepEqual(problems, []);
    assert.ok(plan);
    assert.equal(plan.disk, fixtures.oldDiskPath);
    assert.equal(plan.image.sha256, fixtures.newImageSha256);
    assert.equal(await sha256File(fixtures.newImagePath), fixtures.newImageSha256);
  });

  it('makes an old disk with GRUB, the original layout and labels', async () => {
    assert.equal(await hasGrubBootSector(fixtures.oldDiskPath), true);
    const { stdout } = await runCommand('sfdisk', ['--json', fixtures.oldDiskPath]);
    const table = JSON.parse(stdout) as { partitiontable: { label: string; partitions: { node: string }[] } };
    assert.equal(table.partitiontable.label, 'dos');
    assert.deepEqual(
      table.partitiontable.partitions.map((p) => /(\d+)$/.exec(p.node)?.[1]),
      ['1', '2', '3', '5', '6'],
    );
    await withImageMounted(fixtures.oldDiskPath, [], async (_dirs, loop) => {
      assert.equal(await blkidLabel(`${loop}p5`), oldRootLabel);
      assert.equal(await blkidLabel(`${loop}p6`), kioskDataLabel);
    });
  });

  it('gives the old root a real identity, with owners, modes, ACLs, xattrs and capabilities', async () => {
    await withImageMounted(fixtures.oldDiskPath, [5, 6], async ([root = '', data = '']) => {
      const osRelease = await readFile(join(root, 'etc/os-release'), 'utf8');
      assert.match(osRelease, new RegExp(`^VERSION_ID="${fixtures.oldIdentity.osVersion}"$`, 'm'));
      assert.equal((await readFile(join(root, 'etc/machine-id'), 'utf8')).trim(), fixtures.oldIdentity.machineId);
      assert.match(fixtures.oldIdentity.machineId, /^[0-9a-f]{32}$/);

      const keyNames = Object.keys(fixtures.oldIdentity.sshHostKeySha256).sort();
      assert.deepEqual(keyNames, ['ssh_host_ecdsa_key', 'ssh_host_ed25519_key', 'ssh_host_rsa_key']);
      for (const name of keyNames) {
        const printed = (await runCommand('ssh-keygen', ['-l', '-f', join(root, 'etc/ssh', name)])).stdout;
        assert.equal(printed.split(' ')[1], fixtures.oldIdentity.sshHostKeySha256[name]);
        assert.equal((await stat(join(root, 'etc/ssh', name))).mode & 0o777, 0o600);
      }

      for (const path of fixtures.oldIdentity.retainedPaths) await lstat(join(root, path));
      assert.match(await readFile(join(root, 'etc/passwd'), 'utf8'), /^kiosk:x:1001:1001:/m);

      const kioskDir = await stat(join(root, 'etc/kiosk'));
      assert.deepEqual([kioskDir.uid, kioskDir.gid, kioskDir.mode & 0o7777], [1001, 1001, 0o750]);
      const conf = join(root, 'etc/kiosk/kiosk.conf');
      const xattr = await runCommand('getfattr', ['--only-values', '-n', 'user.kiosk.role', conf]);
      assert.equal(xattr.stdout, 'lobby-screen');
      const acl = await runCommand('getfacl', ['-n', '-p', join(root, 'etc/pki/tls/private/kiosk.key')]);
      assert.match(acl.stdout, /^user:1001:r--$/m);
      const cap = await runCommand('getcap', [join(root, 'usr/local/bin/kiosk-agent')]);
      assert.match(cap.stdout, /cap_net_bind_service=ep/);
      await runCommand('openssl', [
        'x509',
        '-noout',
        '-checkend',
        '86400',
        '-in',
        join(root, 'etc/pki/tls/certs/kiosk.crt'),
      ]);

      assert.equal(await readlink(join(root, 'etc/kiosk/current')), 'profiles/default');
      const token = await stat(join(root, 'etc/kiosk/enrolment.token'));
      const tokenLink = await stat(join(root, 'etc/kiosk/secrets/enrolment.token'));
      assert.equal(token.ino, tokenLink.ino, 'a hard link, not a copy');
      assert.equal(token.nlink, 2);
      assert.ok((await stat(join(root, 'etc/kiosk/screen layout.conf'))).isFile());
      assert.notEqual(
        await readFile(join(root, 'etc/kiosk/a/settings.conf'), 'utf8'),
        await readFile(join(root, 'etc/kiosk/b/settings.conf'), 'utf8'),
      );

      assert.equal(await sha256File(join(root, 'new-os.img.zst')), fixtures.newImageSha256);
      assert.deepEqual(await readFile(join(root, 'new-os.img.bmap')), await readFile(fixtures.newImageBmapPath));
      for (const file of ['boot/vmlinuz', 'boot/initrd.img', 'boot/grub/grub.cfg', 'sbin/init', 'bin/busybox']) {
        await stat(join(root, file));
      }
      assert.ok((await stat(join(data, 'media/playlist.m3u'))).isFile());
    });
  });

  it('makes a smaller new image with its own GRUB, root, data partition and account database', async () => {
    const rawPath = join(scratch, 'new-os.img');
    await runCommand('zstd', ['-q', '-d', '-f', fixtures.newImagePath, '-o', rawPath]);
    assert.equal(await sha256File(rawPath), fixtures.newImageRawSha256);
    assert.equal((await stat(rawPath)).size, fixtures.newImageRawSizeBytes);
    assert.ok(fixtures.newImageRawSizeBytes < (await stat(fixtures.oldDiskPath)).size);
    const bmap = await readFile(fixtures.newImageBmapPath, 'utf8');
    assert.match(bmap, new RegExp(`<ImageSize>\\s*${fixtures.newImageRawSizeBytes}\\s*</ImageSize>`));
    assert.equal(await hasGrubBootSector(rawPath), true);

    await withImageMounted(rawPath, [2, 6], async ([root = '', data = ''], loop) => {
      assert.equal(await blkidLabel(`${loop}p2`), newRootLabel);
      assert.equal(await blkidLabel(`${loop}p6`), kioskDataLabel);
      const osRelease = await readFile(join(root, 'etc/os-release'), 'utf8');
      assert.match(osRelease, new RegExp(`^VERSION_ID="${fixtures.newOsVersion}"$`, 'm'));
      assert.notEqual(fixtures.newOsVersion, fixtures.oldIdentity.osVersion);
      assert.equal((await readFile(join(root, 'etc/machine-id'), 'utf8')).trim(), fixtures.newImageMachineId);
      assert.notEqual(fixtures.newImageMachineId, fixtures.oldIdentity.machineId);
      assert.match(await readFile(join(root, 'etc/passwd'), 'utf8'), /^kiosk:x:2001:2001:/m);
      assert.match(await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8'), /console=ttyS0/);
      assert.equal((await readFile(join(root, 'boot/vmlinuz'))).length, (await stat(fixtures.kernel.vmlinuzPath)).size);
      assert.ok(((await stat(join(root, 'sbin/init'))).mode & 0o111) !== 0);
      await assert.rejects(lstat(join(root, 'etc/kiosk')), 'the kiosk config arrives by restore, not in the image');
      assert.ok((await stat(join(root, 'kiosk'))).isDirectory());
      assert.ok((await stat(join(data, 'README'))).isFile());
    });
  });
  it('gives clean filesystems when written by its block map over the dirty old disk', async () => {
    // The writer skips unmapped ranges, which keep the old OS's bytes: the image must not need zeros there.
    const diskPath = join(scratch, 'dirty-disk.img');
    await runCommand('cp', ['--sparse=always', fixtures.oldDiskPath, diskPath]);
    await runCommand('bmaptool', ['-q', 'copy', '--bmap', fixtures.newImageBmapPath, fixtures.newImagePath, diskPath]);
    await withImageMounted(diskPath, [], async (_dirs, loop) => {
      for (const partition of [fixtures.partitions.newRoot, fixtures.partitions.kioskData]) {
        const check = await runCommand('e2fsck', ['-f', '-n', `${loop}p${partition}`], { allowFailure: true });
        assert.equal(check.exitCode, 0, `e2fsck p${partition}:\n${check.stdout}${check.stderr}`);
      }
      assert.equal(await blkidLabel(`${loop}p${fixtures.partitions.newRoot}`), newRootLabel);
    });
  });
});
