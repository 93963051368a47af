import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/core/logger.ts';
import { runCommand } from '../../src/core/run-command.ts';
import { type DemoWorkspace, prepareDemo } from '../../src/demo/demo-session.ts';
import {
  firstSectorWrites,
  measureBrickWindow,
  planCommitKeptOthersLost,
  probeBoot,
  type RecordedRun,
  type ReplayTrialResult,
  recordArmedRun,
  runReplayTrial,
} from '../../src/demo/power-cut-replay.ts';
import { demoRetainedKeysCheck, POWER_CUT_MARKERS, type RetainedKeysCheck } from '../../src/demo/power-cut-trial.ts';
import { applyReplay, planPrefix, type ReplayPlan } from '../../src/demo/write-log-replay.ts';
import { armDemoDisk } from '../helpers/arm-demo.ts';
import { replayPlanAt } from '../helpers/replay-cuts.ts';

// Power cuts as a disk with a volatile write cache sees them, under QEMU: one armed run is
// recorded with blklogwrites; each trial replays the log to a cut point, keeping what a completed
// flush covered, dropping other writes at random and tearing the request in flight, then boots the
// disk by its own BIOS path until the new OS. The brick window is measured by short probe boots
// of the disk replayed to just before and just after the commit's LBA 0 write.
const signal = AbortSignal.timeout(90 * 60_000);

describe('power cuts replayed from a write log (QEMU blklogwrites)', () => {
  let workspace: DemoWorkspace;
  let recorded: RecordedRun;
  let commitIndex = -1;
  let retainedKeys: RetainedKeysCheck;

  before(async () => {
    workspace = await prepareDemo(silentLogger, 'test-arm-replay');
    const armed = await armDemoDisk(workspace);
    assert.equal(armed.exitCode, 0, armed.stderr);
    const armedDiskPath = join(workspace.dir, 'armed.img');
    await runCommand('cp', ['--sparse=always', workspace.diskPath, armedDiskPath]);
    retainedKeys = await demoRetainedKeysCheck(workspace.fixtures, armedDiskPath);
    recorded = await recordArmedRun({
      armedDiskPath,
      recordedDiskPath: join(workspace.dir, 'recorded.img'),
      logPath: join(workspace.dir, 'writes.log'),
      signal,
    });
    const commitMarker = POWER_CUT_MARKERS.find((marker) => marker.includes('commit')) ?? 'commit';
    assert.ok(
      recorded.serialLog.includes(commitMarker),
      `the recorded run committed\n${recorded.serialLog.slice(-3000)}`,
    );
    // The demo plan's finish is a power-off; either way the run ended by itself.
    assert.ok(recorded.ending === 'poweroff' || recorded.ending === 'reboot', recorded.serialLog.slice(-3000));
    // Arm wrote its own LBA 0 offline; the only LBA 0 write of the armed run is the commit.
    const commits = firstSectorWrites(recorded.log);
    assert.equal(commits.length, 1, `one LBA 0 write in the run: ${JSON.stringify(commits)}`);
    commitIndex = commits[0]?.index ?? -1;
  });
  after(async () => {
    await runCommand('rm', ['-rf', workspace.dir]);
  });

  it('replays the whole log onto the armed disk into the very disk QEMU left (the oracle)', async () => {
    const diskPath = join(workspace.dir, 'whole.img');
    await applyReplay({
      baseDiskPath: recorded.baseDiskPath,
      logPath: recorded.logPath,
      log: recorded.log,
      plan: planPrefix(recorded.log, recorded.log.entries.length),
      diskPath,
    });
    const same = await runCommand('cmp', [diskPath, recorded.recordedDiskPath], { allowFailure: true });
    assert.equal(same.exitCode, 0, `cmp: ${same.stdout}${same.stderr}`);
    await runCommand('rm', ['-f', diskPath]);
  });

  const check = (what: string, result: ReplayTrialResult): void => {
    const logs = result.serialLogs.map((log, index) => `--- boot ${index + 1} ---\n${log.slice(-2500)}`).join('\n');
    const plan = `cut ${result.plan.cutIndex}, last flush ${result.plan.lastFlushIndex}, ${result.plan.droppedIndexes.length} writes lost, torn ${JSON.stringify(result.plan.torn)}`;
    assert.equal(
      result.bricked,
      false,
      `${what} (${plan}): no boot may reach nothing: ${result.boots.join(', ')}\n${logs}`,
    );
    assert.ok(
      result.identity !== undefined,
      `${what} (${plan}): the new OS came up: ${result.boots.join(', ')}\n${logs}`,
    );
    assert.equal(result.identityKept, true, `${what} (${plan}): machine-id and SSH host keys kept\n${logs}`);
    assert.equal(result.bundleLeft, false, `${what}: no retention bundle (private keys) left on the raw disk`);
    assert.equal(
      result.strayKeyBytes,
      '',
      `${what}: the old keys' bytes only where they may be:\n${result.strayKeyBytes}`,
    );
  };

  const trial = async (name: string, plan: () => ReplayPlan): Promise<void> => {
    const diskPath = join(workspace.dir, `${name}.img`);
    const result = await runReplayTrial({
      recorded,
      plan: plan(),
      diskPath,
      fixtures: workspace.fixtures,
      retainedKeys,
      signal,
    });
    try {
      check(name, result);
    } finally {
      await runCommand('rm', ['-f', diskPath]);
    }
  };

  it('a cut in the middle of the image write (seed 21) resumes and ends in the new OS with the old identity', async () => {
    // The image write is the run of big requests (≥ 512 KiB) before the commit; cut at its middle one.
    const imageWrites = recorded.log.entries.filter((entry) => entry.index < commitIndex && entry.sectorCount >= 1024);
    const cutIndex = imageWrites[Math.floor(imageWrites.length / 2)]?.index ?? Math.floor(commitIndex / 2);
    await trial('mid-write', () => replayPlanAt(recorded.log, cutIndex, 21));
  });

  it('a cut with the commit in flight (seed 22: torn LBA 0, unflushed writes lost at random) ends in the new OS', async () => {
    await trial('commit-in-flight', () => replayPlanAt(recorded.log, commitIndex, 22));
  });

  it('a cut just after the commit, the commit kept and every unflushed write lost, ends in the new OS', async () => {
    await trial('commit-kept', () => planCommitKeptOthersLost(recorded.log, commitIndex));
  });

  it('the brick window is the commit alone: one sector between the last recovery boot and the first new-OS boot', async () => {
    const window = await measureBrickWindow({
      recorded,
      fixtures: workspace.fixtures,
      diskPath: join(workspace.dir, 'probe.img'),
      // The armed disk itself, the middle of the run, and the end.
      extraPrefixes: [0, Math.floor(commitIndex / 2), recorded.log.entries.length],
      signal,
    });
    const probes = window.probes.map((probe) => `${probe.prefix}:${probe.kind}`).join(' ');
    assert.deepEqual(window.brickedPrefixes, [], `no probe bricks: ${probes}`);
    assert.equal(window.outOfOrder, false, probes);
    assert.equal(window.lastOldPrefix, commitIndex, `the recovery path boots up to the commit: ${probes}`);
    assert.equal(window.firstNewPrefix, commitIndex + 1, `the new OS boots from the commit on: ${probes}`);
    assert.equal(window.windowSectors, 1, probes);
    for (const probe of window.probes) {
      assert.equal(probe.kind, probe.prefix <= commitIndex ? 'recovery' : 'new-os', probes);
    }
  });

  it('the probe tells a zeroed LBA 0 as a brick', async () => {
    const diskPath = join(workspace.dir, 'zeroed.img');
    await runCommand('cp', ['--sparse=always', recorded.recordedDiskPath, diskPath]);
    const disk = await open(diskPath, 'r+');
    await disk.write(Buffer.alloc(512), 0, 512, 0);
    await disk.close();
    assert.equal(await probeBoot({ diskPath, fixtures: workspace.fixtures, signal }), 'nothing');
    await runCommand('rm', ['-f', diskPath]);
  });
});
