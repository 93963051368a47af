import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ReimageError } from '../../../src/core/reimage-error.ts';
import { WRITE_LOG_FLAGS } from '../../../src/demo/write-log.ts';
import { applyReplay, planPrefix, planReplay, type RandomSource } from '../../../src/demo/write-log-replay.ts';
import { SeededRandom } from '../../fuzz/seeded-random.ts';
import { buildWriteLog, readWriteLogBuffer, sectors } from '../../helpers/write-logs.ts';

const { flush, fua } = WRITE_LOG_FLAGS;

/** A random source that always answers the same: 0 drops every write it may, the top keeps all. */
const always = (answer: 'lowest' | 'highest'): RandomSource => ({
  below: (bound) => (answer === 'lowest' ? 0 : bound - 1),
});

// 0: write A (s10), 1: flush, 2: write B (s20, 4 sectors), 3: write C FUA (s30), 4: write D (s40),
// 5: flush, 6: write E (s50, 3 sectors), 7: write F (s60)
const bytes = buildWriteLog(
  [
    { sector: 10, data: sectors(1, 0xa) },
    { sector: 0, flags: flush },
    { sector: 20, data: sectors(4, 0xb) },
    { sector: 30, data: sectors(1, 0xc), flags: fua },
    { sector: 40, data: sectors(1, 0xd) },
    { sector: 0, flags: flush },
    { sector: 50, data: sectors(3, 0xe) },
    { sector: 60, data: sectors(1, 0xf) },
  ],
  8,
);
const log = readWriteLogBuffer(bytes);
const kept = (plan: { writes: readonly { entryIndex: number }[] }): number[] => plan.writes.map((w) => w.entryIndex);

describe('planReplay', () => {
  it('keeps every write a completed flush covers, whatever the dice say', () => {
    // Cut while entry 6 is in flight: the flush at 5 completed, so 0, 2, 3, 4 stay.
    const plan = planReplay(log, 6, always('lowest'));
    assert.equal(plan.lastFlushIndex, 5);
    assert.deepEqual(kept(plan), [0, 2, 3, 4]);
    assert.deepEqual(plan.droppedIndexes, []);
    assert.deepEqual(plan.torn, { entryIndex: 6, keptBytes: 0, sizeBytes: 1536 });
  });

  it('may lose each write after the last completed flush; a flush in flight covers nothing', () => {
    // Cut while the flush at 5 is in flight: 2 and 4 are not covered (3 is FUA), so they go.
    const dropAll = planReplay(log, 5, always('lowest'));
    assert.equal(dropAll.lastFlushIndex, 1);
    assert.deepEqual(kept(dropAll), [0, 3]);
    assert.deepEqual(dropAll.droppedIndexes, [2, 4]);
    assert.equal(dropAll.torn, undefined, 'a flush has nothing to tear');
    const keepAll = planReplay(log, 5, always('highest'));
    assert.deepEqual(kept(keepAll), [0, 2, 3, 4]);
  });

  it('keeps a FUA write on its own, flush or not', () => {
    assert.ok(kept(planReplay(log, 4, always('lowest'))).includes(3));
  });

  it('tears the write in flight to a prefix of whole sectors, none to all', () => {
    const none = planReplay(log, 2, always('lowest'));
    assert.deepEqual(none.torn, { entryIndex: 2, keptBytes: 0, sizeBytes: 2048 });
    assert.ok(!kept(none).includes(2));
    const all = planReplay(log, 2, always('highest'));
    assert.deepEqual(all.torn, { entryIndex: 2, keptBytes: 2048, sizeBytes: 2048 });
    assert.deepEqual(all.writes.at(-1), { entryIndex: 2, keptBytes: 2048 });
    const some = planReplay(log, 2, { below: () => 3 });
    assert.deepEqual(some.writes.at(-1), { entryIndex: 2, keptBytes: 1536 });
    // A 64-byte unit tears inside a sector: part old, part new.
    assert.deepEqual(planReplay(log, 2, { below: () => 9 }, 64).torn?.keptBytes, 576);
    // With a 4096-byte unit the same write tears only whole or not at all.
    assert.deepEqual(planReplay(log, 2, always('highest'), 4096).torn?.keptBytes, 2048);
  });

  it('keeps at most the write in flight at cut 0, and everything up to the last flush at the end', () => {
    assert.deepEqual(planReplay(log, 0, always('lowest')).writes, []);
    assert.deepEqual(planReplay(log, 0, always('highest')).writes, [{ entryIndex: 0, keptBytes: 512 }]);
    const end = planReplay(log, log.entries.length, always('lowest'));
    assert.equal(end.torn, undefined);
    assert.deepEqual(kept(end), [0, 2, 3, 4]);
    assert.deepEqual(end.droppedIndexes, [6, 7]);
  });

  it('draws the same plan from the same seed', () => {
    const a = planReplay(log, 8, new SeededRandom(42));
    const b = planReplay(log, 8, new SeededRandom(42));
    assert.deepEqual(a, b);
  });

  it('refuses a cut outside the log', () => {
    for (const cut of [-1, 9, 1.5]) {
      assert.throws(
        () => planReplay(log, cut, always('lowest')),
        (error: unknown) => error instanceof ReimageError && error.code === 'REIMAGE_DEMO_REPLAY_CUT',
      );
    }
  });
});

describe('planPrefix', () => {
  it('keeps every write of the first entries whole and tears nothing', () => {
    const plan = planPrefix(log, 7);
    assert.deepEqual(kept(plan), [0, 2, 3, 4, 6]);
    assert.equal(plan.torn, undefined);
  });
});

describe('applyReplay', () => {
  it("writes the plan's bytes from the log over a copy of the starting disk", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'replay-'));
    try {
      const basePath = join(dir, 'base.img');
      const logPath = join(dir, 'log.bin');
      await writeFile(basePath, Buffer.alloc(64 * 512, 0x55));
      await writeFile(logPath, bytes);
      const diskPath = join(dir, 'out.img');
      await applyReplay({
        baseDiskPath: basePath,
        logPath,
        log,
        plan: planReplay(log, 2, { below: () => 1 }),
        diskPath,
      });
      const disk = await readFile(diskPath);
      const at = (sector: number): number | undefined => disk[sector * 512];
      assert.equal(at(10), 0xa, 'the flushed write');
      assert.deepEqual([at(20), at(21), at(22)], [0xb, 0x55, 0x55], 'one sector of the torn write');
      assert.equal(at(30), 0x55, 'nothing after the cut');
      assert.equal(disk.length, 64 * 512);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a log that writes past the end of the disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'replay-'));
    try {
      const basePath = join(dir, 'base.img');
      const logPath = join(dir, 'log.bin');
      await writeFile(basePath, Buffer.alloc(32 * 512));
      await writeFile(logPath, bytes);
      await assert.rejects(
        applyReplay({ baseDiskPath: basePath, logPath, log, plan: planPrefix(log, 8), diskPath: join(dir, 'out.img') }),
        (error: unknown) => error instanceof ReimageError && error.code === 'REIMAGE_DEMO_WRITE_LOG_DAMAGED',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
