import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { captureBundle, inspectBundle, parseRetainList } from '../../../src/retain/index.ts';

describe('retain capture refuses before writing anything', () => {
  let base = '';
  let root = '';
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'reimage-capture-'));
    root = join(base, 'root');
    mkdirSync(join(root, 'etc', 'real'), { recursive: true });
    writeFileSync(join(root, 'etc', 'real', 'key'), 'k\n');
    symlinkSync('/etc/real', join(root, 'etc', 'linked'));
  });
  after(() => {
    if (base !== '') rmSync(base, { recursive: true, force: true });
  });

  it('names every missing required path and creates no bundle', async () => {
    const bundlePath = join(base, 'missing.tar');
    const requests = parseRetainList('/etc/real/key\n/etc/nope\n/etc/real/*.pem\n?/etc/maybe\n', 'list');
    await assert.rejects(captureBundle({ root, requests, bundlePath }), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'REIMAGE_RETAIN_REQUIRED_MISSING');
      assert.match(String((e as Error).message), /\/etc\/nope, \/etc\/real\/\*\.pem/);
      return true;
    });
    assert.equal(existsSync(bundlePath), false);
    assert.equal(existsSync(`${bundlePath}.partial`), false);
  });

  it('refuses a path through a symlink of the old root, which would resolve on the host', async () => {
    const bundlePath = join(base, 'through.tar');
    await assert.rejects(captureBundle({ root, requests: parseRetainList('/etc/linked/key\n', 'list'), bundlePath }), {
      code: 'REIMAGE_RETAIN_PATH_THROUGH_SYMLINK',
    });
    assert.equal(existsSync(bundlePath), false);
  });

  it('keeps a symlink named as the last component as a link', async () => {
    const bundlePath = join(base, 'link.tar');
    const summary = await captureBundle({ root, requests: parseRetainList('/etc/linked\n', 'list'), bundlePath });
    assert.equal(summary.entries, 1, 'the link alone: what it points at is not followed');
    const manifest = await inspectBundle(bundlePath);
    assert.deepEqual(
      manifest.entries.map((e) => [e.path, e.type, e.linkTarget, e.sizeBytes]),
      [['/etc/linked', 'symlink', '/etc/real', 0]],
    );
    // GNU tar agrees: a symbolic link member with that target, not a directory or a copy.
    const listing = execFileSync('tar', ['-tvf', bundlePath], { encoding: 'utf8' }).split('\n');
    assert.ok(
      listing.some((line) => line.startsWith('l') && line.endsWith('etc/linked -> /etc/real')),
      listing.join('\n'),
    );
  });
});
