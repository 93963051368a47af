import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isGptHeader, wipeStaleGptHeaders } from '../../../src/boot/stale-gpt.ts';
import { runCommand } from '../../../src/core/run-command.ts';

// An msdos image's first MiB written over a GPT disk (what the armed write does with an msdos new
// image on a GPT old disk): the old backup GPT survives at the disk's end until it is wiped.
const MiB = 1024 * 1024;
const diskSizeBytes = 64 * MiB;
const mapped = [{ offsetBytes: 0, lengthBytes: MiB }];

describe('wipeStaleGptHeaders on a disk image file', () => {
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'reimage-stale-gpt-'));
  });
  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  async function gptDiskUnderMsdosImage(name: string): Promise<string> {
    const disk = join(scratch, `${name}.img`);
    const image = join(scratch, `${name}-new.img`);
    for (const [path, sizeBytes, script] of [
      [disk, diskSizeBytes, 'label: gpt\nsize=8MiB\nsize=16MiB\n'],
      [image, 32 * MiB, 'label: dos\nsize=8MiB\n'],
    ] as const) {
      await runCommand('truncate', ['-s', String(sizeBytes), path]);
      await runCommand('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', path], { input: script });
    }
    await runCommand('dd', [`if=${image}`, `of=${disk}`, 'bs=1M', 'count=1', 'conv=notrunc', 'status=none']);
    return disk;
  }

  async function signatures(path: string): Promise<string[]> {
    const { stdout } = await runCommand('wipefs', ['--no-act', '--json', path]);
    const parsed = JSON.parse(stdout === '' ? '{"signatures":[]}' : stdout) as { signatures: { type: string }[] };
    return parsed.signatures.map((s) => s.type).sort();
  }

  it('zeroes the old backup header the new image left, once; sfdisk and wipefs then see one msdos table', async () => {
    const disk = await gptDiskUnderMsdosImage('wipe');
    assert.deepEqual(await signatures(disk), ['dos', 'gpt'], 'the stale backup GPT is visible before');
    const handle = await open(disk, 'r+');
    try {
      const wiped = await wipeStaleGptHeaders(handle, { diskSizeBytes, mapped, keep: [] });
      assert.deepEqual(wiped, [diskSizeBytes - 512]);
      assert.deepEqual(await wipeStaleGptHeaders(handle, { diskSizeBytes, mapped, keep: [] }), [], 'idempotent');
    } finally {
      await handle.close();
    }
    assert.deepEqual(await signatures(disk), ['dos']);
    const { stdout } = await runCommand('sfdisk', ['--json', disk]);
    assert.equal((JSON.parse(stdout) as { partitiontable: { label: string } }).partitiontable.label, 'dos');
  });

  it('leaves the sector alone when the refuge holds it or the new image writes it', async () => {
    const disk = await gptDiskUnderMsdosImage('keep');
    const last = { offsetBytes: diskSizeBytes - 512, lengthBytes: 512 };
    const handle = await open(disk, 'r+');
    try {
      assert.deepEqual(await wipeStaleGptHeaders(handle, { diskSizeBytes, mapped, keep: [last] }), []);
      assert.deepEqual(await wipeStaleGptHeaders(handle, { diskSizeBytes, mapped: [...mapped, last], keep: [] }), []);
      const sector = Buffer.alloc(512);
      await handle.read(sector, 0, 512, last.offsetBytes);
      assert.equal(isGptHeader(sector), true);
    } finally {
      await handle.close();
    }
  });
});
