import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readGrubBootImage } from '../../../src/boot/recovery-core.ts';
import { ReimageError } from '../../../src/core/reimage-error.ts';

describe('readGrubBootImage', () => {
  it('reads boot.img from the GRUB directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'grub-dir-'));
    try {
      await writeFile(join(dir, 'boot.img'), Buffer.alloc(512, 7));
      assert.deepEqual(await readGrubBootImage(dir), Buffer.alloc(512, 7));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names the missing file and the package to install, instead of an internal error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'grub-dir-'));
    try {
      await assert.rejects(readGrubBootImage(dir), (error: unknown) => {
        assert.ok(error instanceof ReimageError);
        assert.equal(error.code, 'REIMAGE_TOOL_MISSING');
        assert.match(error.message, /boot\.img is missing/);
        assert.match(error.message, /grub-pc-bin/);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
