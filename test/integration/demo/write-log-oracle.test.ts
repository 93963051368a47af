import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../../../src/core/run-command.ts';
import { applyReplay, planPrefix, readWriteLogFile } from '../../../src/demo/write-log-replay.ts';
import { SeededRandom } from '../../fuzz/seeded-random.ts';
import { requireTools } from './system-tools.ts';

// The oracle for the write-log reader and the replay: QEMU's own block layer (qemu-io, the same
// blklogwrites driver the VM uses) writes through a log onto a disk; replaying the whole log onto
// the disk as it was before must give, byte for byte, the disk QEMU left.
describe('blklogwrites log replayed whole (oracle: qemu-io)', () => {
  let dir = '';
  const diskBytes = 4 * 1024 * 1024;

  before(async () => {
    requireTools({ 'qemu-io': 'qemu-utils' });
    dir = await mkdtemp(join(tmpdir(), 'write-log-oracle-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function record(commands: readonly string[]): Promise<{ basePath: string; diskPath: string; logPath: string }> {
    const basePath = join(dir, 'base.img');
    const diskPath = join(dir, 'disk.img');
    const logPath = join(dir, 'writes.log');
    const random = new SeededRandom(7);
    const start = Buffer.alloc(diskBytes);
    for (let i = 0; i < diskBytes; i += 4) start.writeUInt32LE(random.uint32(), i);
    await writeFile(basePath, start);
    await writeFile(diskPath, start);
    await writeFile(logPath, '');
    const options = `driver=blklogwrites,file.driver=file,file.filename=${diskPath},log.driver=file,log.filename=${logPath},log-sector-size=512`;
    await runCommand('qemu-io', ['--image-opts', options, ...commands.flatMap((command) => ['-c', command])]);
    return { basePath, diskPath, logPath };
  }

  it('gives the disk QEMU left: overlapping writes, concurrent requests, flushes, FUA, write-zeroes', async () => {
    const random = new SeededRandom(11);
    const commands: string[] = [];
    for (let i = 0; i < 60; i++) {
      const offset = random.below(diskBytes / 512 - 64) * 512;
      const length = (1 + random.below(64)) * 512;
      const pattern = `-P 0x${(1 + random.below(254)).toString(16)}`;
      const kind = random.below(10);
      if (kind < 4) commands.push(`aio_write ${pattern} ${offset} ${length}`);
      else if (kind < 6) commands.push(`write ${pattern} ${offset} ${length}`);
      else if (kind === 6) commands.push(`write -f ${pattern} ${offset} ${length}`);
      else if (kind === 7) commands.push(`write -z ${offset} ${length}`);
      else commands.push('aio_flush');
    }
    // LBA 0 too, as the commit writes it.
    commands.push('write -P 0x5a 0 512', 'flush');
    const { basePath, diskPath, logPath } = await record(commands);
    const log = await readWriteLogFile(logPath);
    assert.ok(log.entries.length >= 60, `every request logged (${log.entries.length} entries)`);
    assert.ok(log.entries.some((entry) => entry.flush));
    assert.ok(log.entries.some((entry) => entry.sector === 0 && entry.sectorCount === 1 && !entry.flush));
    const replayedPath = join(dir, 'replayed.img');
    await applyReplay({
      baseDiskPath: basePath,
      logPath,
      log,
      plan: planPrefix(log, log.entries.length),
      diskPath: replayedPath,
    });
    const [replayed, left] = await Promise.all([readFile(replayedPath), readFile(diskPath)]);
    assert.ok(replayed.equals(left), 'the replayed disk is the disk QEMU left');
    // And the replay is not trivially right: the log changed the disk.
    assert.ok(!left.equals(await readFile(basePath)));
  });

  it("refuses QEMU's log cut short in an entry's data", async () => {
    const { logPath } = await record(['write -P 0x11 4096 65536', 'flush']);
    const bytes = await readFile(logPath);
    await writeFile(logPath, bytes.subarray(0, 512 + 512 + 4096));
    await assert.rejects(readWriteLogFile(logPath), /REIMAGE_DEMO_WRITE_LOG_DAMAGED|runs past the end/);
  });
});
