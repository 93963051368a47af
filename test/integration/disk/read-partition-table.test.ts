import assert from 'node:assert/strict';
import { mkdtemp, open, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../../../src/core/run-command.ts';
import { readPartitionTable } from '../../../src/disk/index.ts';

// Logical partitions of an msdos extended partition, read from the image's own bytes, against
// what sfdisk itself reports for the same file.

interface SfdiskPartition {
  readonly node: string;
  readonly start: number;
  readonly size: number;
  readonly type: string;
}

async function sfdiskPartitions(path: string): Promise<SfdiskPartition[]> {
  const { stdout } = await runCommand('sfdisk', ['--json', path]);
  return (JSON.parse(stdout) as { partitiontable: { partitions: SfdiskPartition[] } }).partitiontable.partitions;
}

async function tableOf(path: string) {
  const file = await open(path, 'r');
  try {
    return await readPartitionTable(file, (await file.stat()).size);
  } finally {
    await file.close();
  }
}

describe('readPartitionTable', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reimage-ptable-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function disk(name: string, script: string, sizeMiB = 64): Promise<string> {
    const path = join(dir, name);
    await truncate(path, 0).catch(() => undefined);
    await runCommand('truncate', ['-s', `${sizeMiB}M`, path]);
    await runCommand('sfdisk', ['--quiet', path], { input: script });
    return path;
  }

  it('follows the extended boot records: logical partitions numbered from 5, as sfdisk sees them', async () => {
    const path = await disk('logical.img', 'label: dos\n,4M,83\n,,5\n,8M,83\n,6M,82\n,,83\n');
    const table = await tableOf(path);
    const expected = await sfdiskPartitions(path);
    assert.deepEqual(
      table.partitions.map((p) => ({
        number: p.number,
        start: p.startBytes / 512,
        size: p.sizeBytes / 512,
        type: p.type,
      })),
      expected.map((p) => ({
        number: Number(/(\d+)$/.exec(p.node)?.[1]),
        start: p.start,
        size: p.size,
        type: p.type.padStart(2, '0'),
      })),
    );
    assert.equal(table.extendedRecords?.length, 3, 'one record per logical partition');
  });

  it('reads an extended partition without logical partitions as an empty container', async () => {
    const path = await disk('empty-extended.img', 'label: dos\n,4M,83\n,,5\n');
    const table = await tableOf(path);
    assert.deepEqual(
      table.partitions.map((p) => p.number),
      [1, 2],
    );
  });

  it('refuses a chain whose record lost its signature, and one that loops', async () => {
    const path = await disk('broken.img', 'label: dos\n,4M,83\n,,5\n,8M,83\n,8M,83\n');
    const [, extended] = await sfdiskPartitions(path);
    assert.ok(extended !== undefined);
    const file = await open(path, 'r+');
    try {
      // The first record points at the second; make the second point back at the first.
      const first = Buffer.alloc(512);
      await file.read(first, 0, 512, extended.start * 512);
      const nextRelative = first.readUInt32LE(446 + 16 + 8);
      const second = Buffer.alloc(512);
      await file.read(second, 0, 512, (extended.start + nextRelative) * 512);
      second.writeUInt8(0x05, 446 + 16 + 4);
      second.writeUInt32LE(0, 446 + 16 + 8);
      second.writeUInt32LE(1, 446 + 16 + 12);
      await file.write(second, 0, 512, (extended.start + nextRelative) * 512);
    } finally {
      await file.close();
    }
    await assert.rejects(tableOf(path), /loops or is too long/);
    const unsigned = await disk('unsigned.img', 'label: dos\n,4M,83\n,,5\n,8M,83\n,8M,83\n');
    const [, ext] = await sfdiskPartitions(unsigned);
    assert.ok(ext !== undefined);
    const handle = await open(unsigned, 'r+');
    try {
      await handle.write(Buffer.alloc(2), 0, 2, ext.start * 512 + 510);
    } finally {
      await handle.close();
    }
    await assert.rejects(tableOf(unsigned), /no 55 aa signature/);
  });
});
