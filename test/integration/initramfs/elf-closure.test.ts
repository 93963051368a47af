import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readElfDynamicInfo, sharedLibraryClosure } from '../../../src/initramfs/elf-closure.ts';
import { hostPathChain } from '../../../src/initramfs/host-path-chain.ts';

const projectDir = join(import.meta.dirname, '..', '..', '..');

/** The libraries ldd reports (it runs the loader), as absolute paths; the vDSO has none. */
function lddPaths(binary: string): string[] {
  const ldd = spawnSync('ldd', [binary], { encoding: 'utf8' });
  assert.equal(ldd.status, 0, `ldd failed (install the Debian package libc-bin): ${ldd.stderr}`);
  const paths: string[] = [];
  for (const line of ldd.stdout.split('\n')) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match?.[1] !== undefined) paths.push(match[1]);
  }
  return paths;
}

describe('sharedLibraryClosure', () => {
  const binaries = [
    join(projectDir, 'node_modules', '.bin', 'node'),
    '/usr/sbin/blkid',
    '/usr/bin/xz',
    '/usr/sbin/sfdisk',
  ];
  for (const binary of binaries) {
    it(`agrees with ldd for ${binary}`, async () => {
      const real = await realpath(binary);
      const closure = await sharedLibraryClosure(real);
      const expected = lddPaths(real);
      assert.ok(expected.length > 0);
      for (const path of expected) {
        // Every symlink on ldd's path and the file it ends at are carried.
        for (const link of await hostPathChain(path)) {
          assert.ok(closure.includes(link.path), `${link.path} (for ${path}) is in the closure`);
        }
      }
      const realClosure = new Set(await Promise.all(closure.map((p) => realpath(p))));
      const realExpected = new Set(await Promise.all(expected.map((p) => realpath(p))));
      const realFiles = [...realClosure].filter(
        (p) => !['/usr/lib', '/usr/lib64', '/usr/bin', '/usr/sbin'].includes(p),
      );
      assert.deepEqual(realFiles.sort(), [...realExpected].sort(), 'the same files as ldd, no more');
    });
  }

  it('gives nothing for the static busybox, and reads the loader of a dynamic binary', async () => {
    assert.deepEqual(await sharedLibraryClosure('/bin/busybox'), [], 'install the Debian package busybox-static');
    const info = await readElfDynamicInfo(await realpath(join(projectDir, 'node_modules', '.bin', 'node')));
    assert.equal(info.interpreter, '/lib64/ld-linux-x86-64.so.2');
    assert.ok(info.needed.includes('libc.so.6'));
  });

  it('refuses a script with a clear code', async () => {
    await assert.rejects(sharedLibraryClosure(join(projectDir, 'bin', 'reimage')), {
      code: 'REIMAGE_INITRAMFS_NOT_ELF',
    });
  });
});
