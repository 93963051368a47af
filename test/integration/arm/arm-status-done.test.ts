import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { armStatus, formatArmStatus } from '../../../src/arm/arm-status.ts';
import { ARMED_REPORT_PATH, partitionTableSha256 } from '../../../src/runner/index.ts';
import { runReimage } from '../../helpers/run-cli.ts';
import { MIB, makeRefugeDisk, readRaw } from '../boot/refuge-disk.ts';

// The new OS of a finished armed run: LBA 0 is the new image's (no refuge behind it), and the
// armed run's report copy sits at ARMED_REPORT_PATH in the new root. `status` says "done" from
// it, only while LBA 0 holds the partition table that run's commit wrote.
const IMAGE = { format: 'zstd', sha256: 'b'.repeat(64), sizeBytes: 402_653_184 };

async function writeSector(path: string, offsetBytes: number, bytes: Buffer): Promise<void> {
  const file = await open(path, 'r+');
  try {
    await file.write(bytes, 0, bytes.length, offsetBytes);
  } finally {
    await file.close();
  }
}

describe('reimage status on the new OS of a finished armed run', () => {
  let dir = '';
  let imagePath = '';

  before(() => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root (loop devices, mounts)');
    dir = mkdtempSync(join(tmpdir(), 'reimage-status-done-'));
    const disk = makeRefugeDisk(dir, 'new', 'dos', 64 * MIB, [
      { startSector: 2048, sectors: 100_000, mkfs: ['mkfs.ext4', '-q'] },
    ]);
    imagePath = disk.imagePath;
    try {
      const root = disk.mount(1);
      const report = {
        result: 'ok',
        mode: 'armed',
        startedAt: '2026-12-02T01:00:00.000Z',
        finishedAt: '2026-12-02T01:02:03.000Z',
        attempt: 2,
        image: IMAGE,
        partitionTableSha256: partitionTableSha256(readRaw(imagePath, 0, 512)),
      };
      mkdirSync(dirname(join(root, ARMED_REPORT_PATH)), { recursive: true });
      writeFileSync(join(root, ARMED_REPORT_PATH), JSON.stringify(report));
    } finally {
      disk.close();
    }
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('says done, when, the image and where the report is; in the versioned JSON too', async () => {
    const status = await armStatus(imagePath);
    assert.equal(status.state, 'done', JSON.stringify(status));
    assert.deepEqual(status.done, {
      partition: 1,
      reportPath: `/${ARMED_REPORT_PATH}`,
      finishedAt: '2026-12-02T01:02:03.000Z',
      attempt: 2,
      image: IMAGE,
    });
    assert.match(formatArmStatus(status).join('\n'), /: done\n {2}finished: {2}2026-12-02T01:02:03.000Z \(attempt 2\)/);

    const cli = runReimage(['status', '--disk', imagePath, '--json']);
    assert.equal(cli.exitCode, 0, cli.stderr);
    const json = JSON.parse(cli.stdout) as Record<string, unknown>;
    assert.equal(json.format, 'reimage-status');
    assert.equal(json.version, 1, 'fields were added within version 1');
    assert.equal(json.state, 'done');
    assert.equal((json.done as { image: { sha256: string } }).image.sha256, IMAGE.sha256);
  });

  it('still says done after the new OS installed its own boot code (bytes 0–439 change, the table stays)', async () => {
    const lba0 = readRaw(imagePath, 0, 512);
    await writeSector(imagePath, 0, Buffer.alloc(440, 0xeb));
    try {
      assert.equal((await armStatus(imagePath)).state, 'done');
    } finally {
      await writeSector(imagePath, 0, lba0);
    }
  });

  it('says not-armed, and why, when LBA 0 no longer holds the table that commit wrote', async () => {
    const lba0 = readRaw(imagePath, 0, 512);
    const changed = Buffer.from(lba0);
    changed[440] = (changed[440] ?? 0) ^ 0xff; // the disk signature
    await writeSector(imagePath, 0, changed);
    try {
      const status = await armStatus(imagePath);
      assert.equal(status.state, 'not-armed');
      assert.match(
        status.why ?? '',
        /partition 1: \/var\/lib\/reimage\/armed-report\.json: LBA 0's partition table is not the one/,
      );
    } finally {
      await writeSector(imagePath, 0, lba0);
    }
  });
});
