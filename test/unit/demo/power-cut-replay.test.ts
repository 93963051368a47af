import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  brickWindowFromProbes,
  firstSectorWrites,
  planCommitKeptOthersLost,
  probeLines,
  probeVerdict,
  sectorsWritten,
} from '../../../src/demo/power-cut-replay.ts';
import { WRITE_LOG_FLAGS } from '../../../src/demo/write-log.ts';
import { buildWriteLog, readWriteLogBuffer, sectors } from '../../helpers/write-logs.ts';

const { flush } = WRITE_LOG_FLAGS;
// 0: restore write (s100, 8), 1: flush, 2: restore write (s200, 2), 3: commit (LBA 0), 4: flush, 5: release (s300, 1)
const log = readWriteLogBuffer(
  buildWriteLog(
    [
      { sector: 100, data: sectors(8, 1) },
      { sector: 0, flags: flush },
      { sector: 200, data: sectors(2, 2) },
      { sector: 0, data: sectors(1, 3) },
      { sector: 0, flags: flush },
      { sector: 300, data: sectors(1, 4) },
    ],
    6,
  ),
);

describe('firstSectorWrites', () => {
  it('finds the writes of LBA 0, not the flushes', () => {
    assert.deepEqual(
      firstSectorWrites(log).map((entry) => entry.index),
      [3],
    );
  });
});

describe('brickWindowFromProbes', () => {
  it('counts the sectors between the last old-path prefix and the first new-OS one', () => {
    const window = brickWindowFromProbes(log, [
      { prefix: 4, kind: 'new-os' },
      { prefix: 0, kind: 'recovery' },
      { prefix: 3, kind: 'recovery' },
      { prefix: 6, kind: 'new-os' },
    ]);
    assert.equal(window.lastOldPrefix, 3);
    assert.equal(window.firstNewPrefix, 4);
    assert.equal(window.windowSectors, 1);
    assert.equal(window.outOfOrder, false);
    assert.deepEqual(window.brickedPrefixes, []);
  });

  it('widens the window when the prefixes around the commit were not both probed, and reports bricks and disorder', () => {
    const wide = brickWindowFromProbes(log, [
      { prefix: 2, kind: 'recovery' },
      { prefix: 3, kind: 'nothing' },
      { prefix: 6, kind: 'new-os' },
      { prefix: 5, kind: 'recovery' },
    ]);
    assert.deepEqual(wide.brickedPrefixes, [3]);
    assert.equal(wide.lastOldPrefix, 5);
    assert.equal(wide.windowSectors, 1, 'entry 5: one sector');
    const disorder = brickWindowFromProbes(log, [
      { prefix: 1, kind: 'new-os' },
      { prefix: 4, kind: 'recovery' },
    ]);
    assert.equal(disorder.outOfOrder, true);
    assert.equal(disorder.windowSectors, undefined);
  });

  it('has no window without a new-OS probe', () => {
    assert.equal(brickWindowFromProbes(log, [{ prefix: 0, kind: 'recovery' }]).windowSectors, undefined);
  });
});

describe('sectorsWritten', () => {
  it('adds up the data sectors of a range of entries', () => {
    assert.equal(sectorsWritten(log, 0, 6), 12);
    assert.equal(sectorsWritten(log, 1, 3), 2);
  });
});

describe('planCommitKeptOthersLost', () => {
  it('keeps the commit and what a completed flush covered, loses every other unflushed write', () => {
    const plan = planCommitKeptOthersLost(log, 3);
    assert.deepEqual(plan.writes, [
      { entryIndex: 0, keptBytes: 4096 },
      { entryIndex: 3, keptBytes: 512 },
    ]);
    assert.deepEqual(plan.droppedIndexes, [2]);
  });
});

describe('probeLines and probeVerdict', () => {
  const fixtures = { newOsVersion: '2.0', oldIdentity: { osVersion: '1.0' } };
  it("tells the recovery path, the new OS's and the old OS's GRUB entries apart", () => {
    const lines = probeLines(fixtures);
    assert.deepEqual(
      lines.map((line) => line.kind),
      ['recovery', 'new-os', 'old-os'],
    );
    assert.equal(new Set(lines.map((line) => line.chosen)).size, 3);
    assert.ok(!lines[2]?.chosen.includes('2.0'));
  });

  it('counts a path only once it started, not when its bootloader chose it', () => {
    const recovery = ['SeaBIOS', 'reimage: recovery boot path', 'Linux version 6.1'];
    assert.equal(probeVerdict(recovery, fixtures), undefined, 'chosen, not started yet');
    assert.equal(probeVerdict([...recovery, 'reimage-init [3.1]: hello'], fixtures), 'recovery');
    assert.equal(probeVerdict([...recovery, 'Kernel panic - not syncing: VFS'], fixtures), 'nothing');
    assert.equal(probeVerdict(['reimage-init [1.0]: out of order'], fixtures), undefined, 'started before chosen');
    const newOs = ['Loading Demo Kiosk OS 2.0 ...', '=== REIMAGE-DEMO IDENTITY BEGIN ==='];
    assert.equal(probeVerdict(newOs, fixtures), 'new-os');
    assert.equal(probeVerdict(['Loading Demo Kiosk OS 1.0 ...', newOs[1] ?? ''], fixtures), 'old-os');
    assert.equal(probeVerdict(['Boot failed: not a bootable disk'], fixtures), 'nothing');
  });
});
