// `npm run bench:power`: power cuts during an armed reimage, under QEMU (software emulation).
// Arms the demo's old disk offline, then two kinds of trial (`--kind sigkill|replay|both`, default
// both):
// - sigkill: copies the armed disk, boots it by its own BIOS path, kills QEMU (SIGKILL) at a seeded
//   step of the armed run, and boots again until the new OS comes up (every issued write stays);
// - replay: records one armed run with QEMU's blklogwrites, then replays the log to seeded cut
//   points across it (writes a completed flush covered kept, the others kept or lost at random,
//   the request in flight torn) and boots each disk until the new OS; then measures the brick
//   window with probe boots of the disk replayed to just before and just after each LBA 0 write.
// Prints recovered / bricked / identity lost / boots per trial for each kind, the brick window,
// and the refuge's overhead next to the plain run. Needs root. `--trials N` (default 50, per
// kind), `--seed S` (first seed), `--boot-timeout-min M` (default 15: a boot still running then
// hangs, and its trial stops).

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/core/logger.ts';
import { runCommand } from '../src/core/run-command.ts';
import { withPlanDisk } from '../src/demo/demo-plan.ts';
import { prepareDemo } from '../src/demo/demo-session.ts';
import { bootReimageVm, buildDemoInitramfs } from '../src/demo/demo-vm-session.ts';
import {
  firstSectorWrites,
  measureArmWindow,
  measureBrickWindow,
  recordArmedRun,
  runReplayTrial,
} from '../src/demo/power-cut-replay.ts';
import {
  demoRetainedKeysCheck,
  type RetainedKeysCheck,
  runPowerCutTrial,
  type TrialOutcome,
} from '../src/demo/power-cut-trial.ts';
import { runVm } from '../src/demo/qemu-vm.ts';
import { applyReplay, planPrefix } from '../src/demo/write-log-replay.ts';
import { SeededRandom } from '../test/fuzz/seeded-random.ts';
import { armDemoDisk } from '../test/helpers/arm-demo.ts';
import { cutForSeed } from '../test/helpers/power-cuts.ts';
import { replayPlanForSeed } from '../test/helpers/replay-cuts.ts';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '50' },
    seed: { type: 'string', default: '1' },
    kind: { type: 'string', default: 'both' },
    'boot-timeout-min': { type: 'string', default: '15' },
  },
});
const bootTimeoutMs = Number(values['boot-timeout-min']) * 60_000;
const trials = Number(values.trials);
const firstSeed = Number(values.seed);
const kind = values.kind;
if (kind !== 'sigkill' && kind !== 'replay' && kind !== 'both') {
  throw new Error(`--kind ${kind}: say sigkill, replay or both`);
}
const signal = AbortSignal.timeout(12 * 60 * 60_000);

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const out = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/** The tallies every kind prints. */
class Tally {
  recovered = 0;
  bricked = 0;
  stuck = 0;
  hung = 0;
  identityLost = 0;
  bundleLeft = 0;
  keysStray = 0;
  bootCount = 0;
  count = 0;

  add(result: TrialOutcome): void {
    this.count++;
    this.bootCount += result.boots.length;
    if (result.bricked) this.bricked++;
    if (result.stuck) this.stuck++;
    if (result.hung) this.hung++;
    if (result.identity !== undefined && !result.identityKept) this.identityLost++;
    if (result.bundleLeft) this.bundleLeft++;
    if (result.strayKeyBytes !== undefined && result.strayKeyBytes !== '') this.keysStray++;
    if (!result.bricked && result.identityKept) this.recovered++;
  }

  print(): void {
    out(`recovered:         ${this.recovered}`);
    out(`bricked:           ${this.bricked}`);
    out(`stuck:             ${this.stuck} (every boot entered the recovery path, none the new OS)`);
    out(`hung:              ${this.hung} (a boot neither rebooted nor powered off in its time)`);
    out(`identity lost:     ${this.identityLost}`);
    out(`bundle left:       ${this.bundleLeft}`);
    out(
      `keys stray:        ${this.keysStray} (an old SSH host key's bytes elsewhere than the restored file or an unmapped old copy)`,
    );
    out(
      `boots per trial:   ${(this.bootCount / Math.max(1, this.count)).toFixed(2)} (the cut boot or replayed disk, the resumed run, the new OS)`,
    );
  }
}

const verdict = (result: TrialOutcome): string =>
  `boots ${result.boots.join(' → ')}; ${result.identityKept ? 'identity kept' : 'IDENTITY NOT KEPT'}${result.bricked ? '; BRICKED' : ''}${result.stuck ? '; STUCK' : ''}${result.hung ? '; HUNG' : ''}${result.bundleLeft ? '; BUNDLE LEFT' : ''}${result.strayKeyBytes ? '; KEY BYTES STRAY' : ''}`;

interface ArmReport {
  refuge?: { usedBytes: number };
  needBytes: number;
  initramfsSizeBytes: number;
}

async function sigkillTrials(armedDiskPath: string, armMs: number, report: ArmReport): Promise<void> {
  out('== sigkill: QEMU killed at a seeded step of the armed run (every issued write stays) ==');
  // The overhead: one uncut armed boot against one plain run of the same plan (kernel and
  // initramfs handed to QEMU directly, as `reimage demo --vm` does).
  const uncutDiskPath = join(workspace.dir, 'uncut.img');
  await runCommand('cp', ['--sparse=always', armedDiskPath, uncutDiskPath]);
  const uncut = await runVm({ diskPath: uncutDiskPath, memoryMiB: 3072, timeoutMs: 20 * 60_000, signal });
  await runCommand('rm', ['-f', uncutDiskPath]);
  await runCommand('cp', ['--sparse=always', workspace.fixtures.oldDiskPath, workspace.diskPath]);
  const planText = withPlanDisk(await readFile(workspace.fixtures.planPath, 'utf8'), '/dev/vda');
  const initramfs = await buildDemoInitramfs(workspace, planText, silentLogger, signal);
  const plain = await bootReimageVm(workspace, initramfs.path, () => {}, signal);

  const tally = new Tally();
  let cutsHappened = 0;
  const byMarker = new Map<string, number>();
  const started = Date.now();
  for (let seed = firstSeed; seed < firstSeed + trials; seed++) {
    const cut = cutForSeed(seed);
    const result = await runPowerCutTrial({
      armedDiskPath,
      diskPath: join(workspace.dir, 'trial.img'),
      fixtures: workspace.fixtures,
      cut,
      bootTimeoutMs,
      retainedKeys: await retainedKeysFor(armedDiskPath),
      signal,
    });
    tally.add(result);
    if (result.cutHappened) cutsHappened++;
    byMarker.set(cut.marker, (byMarker.get(cut.marker) ?? 0) + 1);
    out(
      `trial seed ${seed}: cut ${cut.delayMs} ms after "${cut.marker}"${result.cutHappened ? '' : ' (ended first)'}: ${verdict(result)} (${seconds(result.durationMs)})`,
    );
  }
  const totalMs = Date.now() - started;
  out('');
  out(`trials:            ${trials} (seeds ${firstSeed}–${firstSeed + trials - 1}; a cut landed in ${cutsHappened})`);
  out(`cuts by step:      ${[...byMarker].map(([marker, count]) => `${marker}: ${count}`).join('; ')}`);
  tally.print();
  out(`time:              ${seconds(totalMs)} in all, ${seconds(totalMs / trials)} per trial`);
  out('brick window:      SIGKILL keeps every issued write: measured by the replay kind (--kind replay).');
  out('');
  out(
    `refuge overhead:   arm ${seconds(armMs)} (offline, initramfs built), refuge needs ${report.needBytes} bytes (initramfs ${report.initramfsSizeBytes})`,
  );
  out(
    `boot to finish:    armed ${seconds(uncut.durationMs)} (BIOS → refuge GRUB → kernel+initramfs by sectors → armed run, ${uncut.ending}) vs plain ${seconds(plain.durationMs)} (QEMU -kernel/-initrd → run, ${plain.ending})`,
  );
  out('');
}

async function replayTrials(armedDiskPath: string): Promise<void> {
  out('== replay: one armed run recorded (blklogwrites), replayed to seeded cut points ==');
  const recorded = await recordArmedRun({
    armedDiskPath,
    recordedDiskPath: join(workspace.dir, 'recorded.img'),
    logPath: join(workspace.dir, 'writes.log'),
    signal,
  });
  const { log } = recorded;
  const flushes = log.entries.filter((entry) => entry.flush).length;
  const lba0 = firstSectorWrites(log).map((entry) => entry.index);
  out(
    `recorded run:      ${seconds(recorded.durationMs)} (${recorded.ending}), ${log.entries.length} log entries, ${flushes} flushes, LBA 0 written at entr${lba0.length === 1 ? 'y' : 'ies'} ${lba0.join(', ') || 'none'}`,
  );
  // The oracle: the whole log onto the armed disk is the disk QEMU left.
  const wholePath = join(workspace.dir, 'whole.img');
  await applyReplay({
    baseDiskPath: armedDiskPath,
    logPath: recorded.logPath,
    log,
    plan: planPrefix(log, log.entries.length),
    diskPath: wholePath,
  });
  const same = await runCommand('cmp', [wholePath, recorded.recordedDiskPath], { allowFailure: true });
  await runCommand('rm', ['-f', wholePath]);
  out(
    `replay oracle:     the whole log replayed ${same.exitCode === 0 ? 'equals' : 'DIFFERS FROM'} the disk QEMU left`,
  );
  const commitIndex = lba0.at(-1) ?? log.entries.length;

  // The brick window first (short probe boots: just before and after each LBA 0 write, and a few
  // seeded prefixes), so it is printed even when the trials are stopped early.
  const random = new SeededRandom(firstSeed);
  const window = await measureBrickWindow({
    recorded,
    fixtures: workspace.fixtures,
    diskPath: join(workspace.dir, 'probe.img'),
    extraPrefixes: [0, random.below(commitIndex), random.below(commitIndex), log.entries.length],
    signal,
  });
  const armWindow = await measureArmWindow({
    oldDiskPath: workspace.fixtures.oldDiskPath,
    armedDiskPath,
    diskPath: join(workspace.dir, 'probe.img'),
    fixtures: workspace.fixtures,
    signal,
  });
  out(`probes:            ${window.probes.map((probe) => `prefix ${probe.prefix} → ${probe.kind}`).join('; ')}`);
  out(
    `brick window:      ${window.windowSectors ?? 'NOT MEASURED'} sector(s) written between the last prefix that boots the recovery path (${window.lastOldPrefix ?? '-'}) and the first that boots the new OS (${window.firstNewPrefix ?? '-'})${window.brickedPrefixes.length > 0 ? `; BRICKED PREFIXES ${window.brickedPrefixes.join(', ')}` : ''}${window.outOfOrder ? '; OUT OF ORDER' : ''}`,
  );
  out(
    `arm's own window:  ${armWindow.windowSectors ?? 'NOT MEASURED'} sector(s), LBA 0 (arm runs on the host: the armed disk with the old LBA 0 back boots ${armWindow.withoutFirstSector}, the armed disk boots ${armWindow.armed})`,
  );

  const tally = new Tally();
  let beforeCommit = 0;
  let torn = 0;
  let lostWrites = 0;
  const started = Date.now();
  for (let seed = firstSeed; seed < firstSeed + trials; seed++) {
    const plan = replayPlanForSeed(log, seed);
    const result = await runReplayTrial({
      recorded,
      plan,
      diskPath: join(workspace.dir, 'trial.img'),
      fixtures: workspace.fixtures,
      bootTimeoutMs,
      retainedKeys: await retainedKeysFor(armedDiskPath),
      signal,
    });
    tally.add(result);
    if (plan.cutIndex <= commitIndex) beforeCommit++;
    if (plan.torn !== undefined && plan.torn.keptBytes > 0 && plan.torn.keptBytes < plan.torn.sizeBytes) torn++;
    lostWrites += plan.droppedIndexes.length;
    const tornText =
      plan.torn === undefined
        ? 'nothing in flight'
        : `entry ${plan.torn.entryIndex} torn at ${plan.torn.keptBytes}/${plan.torn.sizeBytes} bytes`;
    out(
      `trial seed ${seed}: cut at entry ${plan.cutIndex}/${log.entries.length} (${plan.cutIndex <= commitIndex ? 'before' : 'after'} the commit), last flush ${plan.lastFlushIndex}, ${plan.droppedIndexes.length} unflushed writes lost, ${tornText}: ${verdict(result)} (${seconds(result.durationMs)})`,
    );
  }
  const totalMs = Date.now() - started;
  out('');
  out(
    `trials:            ${trials} (seeds ${firstSeed}–${firstSeed + trials - 1}; ${beforeCommit} cut before the commit completed, ${torn} tore a request part-way, ${lostWrites} unflushed writes lost in all)`,
  );
  tally.print();
  out(`time:              ${seconds(totalMs)} in all, ${seconds(totalMs / trials)} per trial`);

  out('');
}

// Its own workspace per process: prepareDemo empties the directory, and two benches may run at once.
const workspace = await prepareDemo(silentLogger, `bench-power-${process.pid}`);
let retainedKeys: RetainedKeysCheck | undefined;
/** The old keys (pristine old disk) and the armed map, read once, before any trial runs. */
async function retainedKeysFor(armedDiskPath: string): Promise<RetainedKeysCheck> {
  retainedKeys ??= await demoRetainedKeysCheck(workspace.fixtures, armedDiskPath);
  return retainedKeys;
}
try {
  const armStarted = Date.now();
  const armed = await armDemoDisk(workspace, ['--json']);
  if (armed.exitCode !== 0) throw new Error(`arm failed: ${armed.stderr}`);
  const armMs = Date.now() - armStarted;
  const report = JSON.parse(armed.stdout) as ArmReport;
  const armedDiskPath = join(workspace.dir, 'armed.img');
  await runCommand('cp', ['--sparse=always', workspace.diskPath, armedDiskPath]);

  if (kind !== 'replay') await sigkillTrials(armedDiskPath, armMs, report);
  if (kind !== 'sigkill') await replayTrials(armedDiskPath);
} finally {
  await runCommand('rm', ['-rf', workspace.dir]);
}
