import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../../../src/core/run-command.ts';
import { putDir } from '../../../src/demo/demo-root.ts';
import { createPartitionedImage, extentOf, formatExt4InImage } from '../../../src/demo/disk-image.ts';
import {
  checkRetainedBytes,
  describeStrayBytes,
  findRetainedBytes,
  type RetainedSecret,
  readRetainedSecrets,
} from '../../../src/demo/retained-bytes.ts';
import type { ByteRange } from '../../../src/disk/index.ts';
import { requireTools } from './system-tools.ts';

// A 32 MiB disk: p1 is the "new root" holding the restored keys, p2 the "old root" with the
// originals. The new image's map covers p1 only, so the old copies in p2 are allowed; any other
// copy on the raw disk is not.
const keyPaths = ['/etc/ssh/ssh_host_ed25519_key', '/etc/ssh/ssh_host_ecdsa_key'] as const;
const MiB = 1024 * 1024;

describe('retained bytes on a raw disk', () => {
  let scratch: string;
  let pristine: string;
  let keys: Map<string, Buffer>;
  let partitions: { number: number; startBytes: number; sizeBytes: number }[];

  before(async () => {
    requireTools({ 'ssh-keygen': 'openssh-client', 'mkfs.ext4': 'e2fsprogs', debugfs: 'e2fsprogs', sfdisk: 'fdisk' });
    scratch = await mkdtemp(join(tmpdir(), 'reimage-retained-bytes-'));
    const tree = join(scratch, 'tree');
    await putDir(tree, 'etc/ssh', { mode: 0o755 });
    keys = new Map();
    for (const path of keyPaths) {
      const type = /ssh_host_(\w+)_key/.exec(path)?.[1] ?? 'ed25519';
      await runCommand('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'test', '-f', join(tree, path)]);
      keys.set(path, await readFile(join(tree, path)));
    }
    pristine = join(scratch, 'pristine.img');
    const extents = await createPartitionedImage(pristine, {
      sizeMiB: 32,
      partitions: [
        { number: 1, sizeMiB: 12, type: '83' },
        { number: 2, type: '83' },
      ],
    });
    for (const number of [1, 2]) {
      await formatExt4InImage(pristine, extentOf(extents, number, pristine), { label: `P${number}`, sourceDir: tree });
    }
    partitions = extents.map((e) => ({ number: e.number, startBytes: e.offsetBytes, sizeBytes: e.sizeBytes }));
  });
  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  const newMap = (): { partitions: typeof partitions; ranges: ByteRange[] } => {
    const p1 = partitions.find((p) => p.number === 1);
    assert.ok(p1);
    return { partitions, ranges: [{ offsetBytes: 0, lengthBytes: p1.startBytes + p1.sizeBytes }] };
  };

  async function diskCopy(name: string): Promise<string> {
    const path = join(scratch, name);
    await runCommand('cp', ['--sparse=always', pristine, path]);
    return path;
  }

  async function writeAt(path: string, offsetBytes: number, bytes: Buffer): Promise<void> {
    const file = await open(path, 'r+');
    try {
      await file.write(bytes, 0, bytes.length, offsetBytes);
    } finally {
      await file.close();
    }
  }

  it('reads each key and the place of its old copy from the old filesystem', async () => {
    const secrets = await readRetainedSecrets(pristine, 2, keyPaths);
    const p2 = partitions.find((p) => p.number === 2);
    assert.ok(p2);
    for (const secret of secrets) {
      assert.ok(secret.bytes.equals(keys.get(secret.path) ?? Buffer.alloc(0)), `${secret.path}'s bytes`);
      assert.equal(secret.oldCopy.length, 1);
      const [range] = secret.oldCopy;
      assert.ok(range && range.offsetBytes >= p2.startBytes && range.offsetBytes < p2.startBytes + p2.sizeBytes);
      // The raw disk holds the key exactly where the old copy is said to be.
      const file = await open(pristine, 'r');
      try {
        const raw = Buffer.alloc(secret.bytes.length);
        await file.read(raw, 0, raw.length, range.offsetBytes);
        assert.ok(raw.equals(secret.bytes));
      } finally {
        await file.close();
      }
    }
  });

  it('allows the restored file and the old copy the new image does not map, and nothing else', async () => {
    const secrets = await readRetainedSecrets(pristine, 2, keyPaths);
    const clean = await checkRetainedBytes({ diskPath: pristine, secrets, map: newMap(), newRootPartition: 1 });
    assert.ok(clean.allowed, describeStrayBytes(clean));
    assert.deepEqual(
      clean.occurrences.map((o) => `${o.path} ${o.place}`).sort(),
      keyPaths.flatMap((path) => [`${path} old-copy`, `${path} restored`]).sort(),
    );

    // A copy left behind (a bundle, a scratch file): found at its exact byte, and refused.
    const dirty = await diskCopy('stray.img');
    const strayAt = 31 * MiB + 123;
    const ed25519 = secrets.find((s) => s.path === keyPaths[0]);
    assert.ok(ed25519);
    await writeAt(dirty, strayAt, ed25519.bytes);
    const verdict = await checkRetainedBytes({ diskPath: dirty, secrets, map: newMap(), newRootPartition: 1 });
    assert.equal(verdict.allowed, false);
    assert.deepEqual(
      verdict.occurrences.filter((o) => o.place === 'stray').map((o) => [o.path, o.offsetBytes]),
      [[keyPaths[0], strayAt]],
    );
    assert.match(describeStrayBytes(verdict), new RegExp(`ssh_host_ed25519_key at byte ${strayAt}`));
  });

  it('refuses a key the old filesystem does not hold, naming it', async () => {
    await assert.rejects(readRetainedSecrets(pristine, 2, ['/etc/ssh/ssh_host_dsa_key']), {
      code: 'REIMAGE_DEMO_RETAINED_BYTES_UNREADABLE',
      message: /ssh_host_dsa_key/,
    });
  });

  it('refuses an old copy inside a range the new image maps (a write that was skipped)', async () => {
    const secrets = await readRetainedSecrets(pristine, 2, keyPaths);
    const map = newMap();
    const mapped = { ...map, ranges: [...map.ranges, ...secrets.flatMap((s: RetainedSecret) => s.oldCopy)] };
    const verdict = await checkRetainedBytes({ diskPath: pristine, secrets, map: mapped, newRootPartition: 1 });
    assert.equal(verdict.allowed, false);
    assert.deepEqual(
      verdict.occurrences
        .filter((o) => o.place === 'stray')
        .map((o) => o.path)
        .sort(),
      [...keyPaths].sort(),
    );
  });

  it('finds a copy across a read window’s end exactly once', async () => {
    const secret = { path: 'k', bytes: keys.get(keyPaths[0]) ?? Buffer.alloc(0) };
    const disk = await diskCopy('straddle.img');
    const chunkBytes = 1 * MiB;
    const across = 30 * MiB - 7;
    const atStart = 29 * MiB;
    await writeAt(disk, across, secret.bytes);
    await writeAt(disk, atStart, secret.bytes);
    const found = await findRetainedBytes(disk, [secret], { chunkBytes });
    const offsets = found.map((o) => o.offsetBytes);
    assert.deepEqual(
      offsets.filter((o) => o >= 29 * MiB),
      [atStart, across],
    );
    assert.deepEqual(
      offsets,
      (await findRetainedBytes(disk, [secret])).map((o) => o.offsetBytes),
    );
  });
});
