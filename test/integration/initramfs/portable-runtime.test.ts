import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PORTABLE_RUNTIME_TOOLS } from '../../../src/arm/index.ts';
import { GRUB_I386_PC_DIR } from '../../../src/boot/index.ts';
import { ensureDebianKernel } from '../../../src/demo/debian-kernel.ts';
import { listHostTree } from '../../../src/initramfs/host-entry.ts';
import {
  buildInitramfs,
  buildPortableRuntime,
  findPortableRuntime,
  RUNTIME_MANIFEST,
  type RuntimeManifest,
} from '../../../src/initramfs/index.ts';
import { RECOVERY_INITRAMFS_TOOLS } from '../../../src/runner/runtime-tools.ts';

const projectDir = join(import.meta.dirname, '..', '..', '..');

const planText = `version: 1
disk: /dev/vda
image: { partition: 1, path: /new.img.zst, sha256: "${'0'.repeat(64)}" }
retain: { partition: 1, paths: [/etc/machine-id] }
restore: { mounts: [{ partition: 1, at: / }], logs: /var/log/reimage }
finish: poweroff
`;

/** The shared objects a process has mapped, from its /proc/self/maps text. */
function mappedObjects(maps: string): string[] {
  const paths = maps
    .split('\n')
    .map((line) => line.split(/\s+/).slice(5).join(' '))
    .filter((path) => /\.so(\.|$)/.test(path));
  return [...new Set(paths)];
}

// The runtime runs with an empty environment (no PATH, no HOME: nothing of the host's set-up),
// and every program it starts maps only the runtime's loader and libraries.
describe('the portable runtime', () => {
  let workDir = '';
  let runtimeDir = '';
  let manifest: RuntimeManifest;
  const run = (command: string, args: readonly string[], env: Record<string, string> = {}) =>
    spawnSync(join(runtimeDir, 'bin', command), args, { env, encoding: 'utf8' });

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'reimage-runtime-test-'));
    runtimeDir = join(workDir, 'runtime');
    const summary = await buildPortableRuntime({
      outDir: runtimeDir,
      tools: PORTABLE_RUNTIME_TOOLS,
      initramfsTools: RECOVERY_INITRAMFS_TOOLS,
      projectDir,
      grubDir: GRUB_I386_PC_DIR,
    });
    manifest = summary.manifest;
  });
  after(async () => {
    await rm(workDir, { recursive: true, force: true });
  });

  it('runs reimage on its own Node, and a tool, with an empty environment', () => {
    const version = run('reimage', ['--version']);
    assert.equal(version.status, 0, version.stderr);
    assert.match(version.stdout, /^reimage \S+ \(node v24\./);
    const fallocate = run('fallocate', ['--help']);
    assert.equal(fallocate.status, 0, fallocate.stderr);
    assert.match(fallocate.stdout, /fallocate \[options\]/);
  });

  it("a tool maps the runtime's loader and libc, never the host's", async () => {
    const real = await realpath(runtimeDir);
    const perl = run('perl', ['-e', 'open(my $f, "<", "/proc/self/maps") or die; print <$f>;']);
    assert.equal(perl.status, 0, perl.stderr);
    const objects = await Promise.all(mappedObjects(perl.stdout).map((path) => realpath(path)));
    assert.ok(
      objects.some((path) => path.endsWith('/libc.so.6')),
      objects.join('\n'),
    );
    assert.ok(
      objects.some((path) => path.includes('ld-linux')),
      objects.join('\n'),
    );
    for (const path of objects) assert.ok(path.startsWith(`${real}/`), `${path} is the runtime's own`);
  });

  it("Node maps the runtime's loader and libraries, and reimage's wrappers come first on PATH", async () => {
    const real = await realpath(runtimeDir);
    const probe = join(workDir, 'probe.mjs');
    await writeFile(
      probe,
      `import { readFileSync } from 'node:fs';
process.stderr.write(JSON.stringify({ maps: readFileSync('/proc/self/maps', 'utf8'), path: process.env.PATH }));
process.exit(0);
`,
    );
    const node = run('reimage', ['--version'], { NODE_OPTIONS: `--import=${probe}` });
    assert.equal(node.status, 0, node.stderr);
    const seen = JSON.parse(node.stderr) as { maps: string; path: string };
    const objects = await Promise.all(mappedObjects(seen.maps).map((path) => realpath(path)));
    assert.ok(objects.some((path) => path.endsWith('/libc.so.6')));
    for (const path of objects) assert.ok(path.startsWith(`${real}/`), `${path} is the runtime's own`);
    assert.equal(seen.path.split(':')[0], `${runtimeDir}/bin/../bin`);
  });

  it('has no symlink that leaves the tree (an absolute target would name the host’s file)', async () => {
    const real = await realpath(runtimeDir);
    for (const entry of await listHostTree(runtimeDir)) {
      if (entry.kind !== 'symlink') continue;
      assert.ok(!(await readlink(entry.hostPath)).startsWith('/'), `${entry.relativePath} is relative`);
      assert.ok((await realpath(entry.hostPath)).startsWith(`${real}/`), `${entry.relativePath} stays inside`);
    }
  });

  it('builds the same initramfs from its own files as the build host would (arm-only tools left out)', async () => {
    const kernel = await ensureDebianKernel();
    const planPath = join(workDir, 'plan.yaml');
    await writeFile(planPath, planText);
    const found = await findPortableRuntime(join(runtimeDir, 'reimage'));
    assert.ok(found, `${RUNTIME_MANIFEST} is found from the project inside the runtime`);
    assert.deepEqual(found.manifest, manifest);
    const common = { planPath, modulesDir: kernel.modulesDir, tools: RECOVERY_INITRAMFS_TOOLS, projectDir };
    const fromHost = await buildInitramfs({ ...common, outPath: join(workDir, 'host.img') });
    const fromRuntime = await buildInitramfs({
      ...common,
      outPath: join(workDir, 'runtime.img'),
      portableRuntime: found,
    });
    const shape = (entries: typeof fromHost.entries) => entries.map((e) => `${e.part} ${e.path} ${e.sizeBytes}`);
    assert.deepEqual(shape(fromRuntime.entries), shape(fromHost.entries));
    assert.ok(
      (await readFile(join(workDir, 'runtime.img'))).equals(await readFile(join(workDir, 'host.img'))),
      'the same bytes',
    );
  });

  it('refuses a runtime whose file was cut short', async () => {
    const found = await findPortableRuntime(join(runtimeDir, 'reimage'));
    assert.ok(found);
    const planPath = join(workDir, 'plan.yaml');
    await writeFile(planPath, planText);
    const kernel = await ensureDebianKernel();
    const busybox = join(runtimeDir, 'usr/bin/busybox');
    const saved = await readFile(busybox);
    await writeFile(busybox, saved.subarray(0, 1000));
    try {
      await assert.rejects(
        buildInitramfs({
          planPath,
          modulesDir: kernel.modulesDir,
          outPath: join(workDir, 'cut.img'),
          tools: [],
          projectDir,
          portableRuntime: found,
        }),
        { code: 'REIMAGE_RUNTIME_DAMAGED' },
      );
    } finally {
      await writeFile(busybox, saved);
    }
  });
});
