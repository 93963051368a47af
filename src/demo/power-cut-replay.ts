import { open, rm } from 'node:fs/promises';
import { isAbortError } from '../core/exit-codes.ts';
import { runCommand } from '../core/run-command.ts';
import type { DemoFixtures } from './demo-fixtures.ts';
import { type BootKind, bootUntilNewOs, type RetainedKeysCheck, type TrialOutcome } from './power-cut-trial.ts';
import { runVm, type VmEnding } from './qemu-vm.ts';
import { isDataWrite, type WriteLog, type WriteLogEntry } from './write-log.ts';
import { applyReplay, planPrefix, planReplay, type ReplayPlan, readWriteLogFile } from './write-log-replay.ts';

// The second layer of the power-cut trials (issue 9): SIGKILL of QEMU keeps every write QEMU
// issued, a real power cut also loses what no completed flush covered and tears the request in
// flight. So one armed run is recorded with blklogwrites, and each trial replays the log to a cut
// point by those rules (write-log-replay.ts) and boots the disk that leaves.

/** One armed boot, recorded: the disk it started from and the log of everything it wrote. */
export interface RecordedRun {
  /** The armed disk as the recording began (left unchanged). */
  readonly baseDiskPath: string;
  /** The disk as QEMU left it (the oracle for a whole replay). */
  readonly recordedDiskPath: string;
  readonly logPath: string;
  readonly log: WriteLog;
  readonly ending: VmEnding;
  readonly serialLog: string;
  readonly durationMs: number;
}

/** Boots a copy of the armed disk by its own BIOS path to the end of its armed run, recording its writes. */
export async function recordArmedRun(o: {
  armedDiskPath: string;
  recordedDiskPath: string;
  logPath: string;
  onSerialLine?: (line: string) => void;
  signal: AbortSignal;
}): Promise<RecordedRun> {
  await runCommand('cp', ['--sparse=always', o.armedDiskPath, o.recordedDiskPath]);
  const result = await runVm({
    diskPath: o.recordedDiskPath,
    writeLogPath: o.logPath,
    memoryMiB: 3072,
    timeoutMs: 20 * 60_000,
    ...(o.onSerialLine === undefined ? {} : { onSerialLine: o.onSerialLine }),
    signal: o.signal,
  });
  return {
    baseDiskPath: o.armedDiskPath,
    recordedDiskPath: o.recordedDiskPath,
    logPath: o.logPath,
    log: await readWriteLogFile(o.logPath),
    ending: result.ending,
    serialLog: result.serialLog,
    durationMs: result.durationMs,
  };
}

/** The entries that write LBA 0 (the arm's pointer to the recovery path, the commit's new one). */
export function firstSectorWrites(log: WriteLog): WriteLogEntry[] {
  return log.entries.filter((entry) => isDataWrite(entry) && entry.sector === 0);
}

export interface ReplayTrialResult extends TrialOutcome {
  readonly plan: ReplayPlan;
  readonly durationMs: number;
}

/**
 * The harshest cut just after the commit (pure): the commit's LBA 0 reached the disk, and every
 * other write no completed flush covered was lost. Only a run that flushed everything before it
 * committed boots the new OS whole from this.
 */
export function planCommitKeptOthersLost(log: WriteLog, commitIndex: number): ReplayPlan {
  const plan = planReplay(log, commitIndex + 1, { below: () => 0 });
  const others = plan.writes.filter((write) => write.entryIndex !== commitIndex);
  const commitBytes = (log.entries[commitIndex]?.sectorCount ?? 0) * log.sectorSizeBytes;
  return {
    ...plan,
    writes: [...others, { entryIndex: commitIndex, keptBytes: commitBytes }],
    droppedIndexes: plan.droppedIndexes.filter((index) => index !== commitIndex),
  };
}

/** One replay trial: the disk a power cut could have left (`plan`), booted until the new OS. */
export async function runReplayTrial(o: {
  recorded: RecordedRun;
  plan: ReplayPlan;
  diskPath: string;
  fixtures: DemoFixtures;
  maxBoots?: number;
  /** Each boot's time (default 15 min); a boot still running then hangs, and the trial stops. */
  bootTimeoutMs?: number;
  onSerialLine?: (boot: number, line: string) => void;
  retainedKeys?: RetainedKeysCheck;
  signal: AbortSignal;
}): Promise<ReplayTrialResult> {
  const started = Date.now();
  const plan = o.plan;
  await applyReplay({
    baseDiskPath: o.recorded.baseDiskPath,
    logPath: o.recorded.logPath,
    log: o.recorded.log,
    plan,
    diskPath: o.diskPath,
  });
  const outcome = await bootUntilNewOs({
    diskPath: o.diskPath,
    fixtures: o.fixtures,
    signal: o.signal,
    ...(o.maxBoots === undefined ? {} : { maxBoots: o.maxBoots }),
    ...(o.bootTimeoutMs === undefined ? {} : { bootTimeoutMs: o.bootTimeoutMs }),
    ...(o.onSerialLine === undefined ? {} : { onSerialLine: o.onSerialLine }),
    ...(o.retainedKeys === undefined ? {} : { retainedKeys: o.retainedKeys }),
  });
  return { ...outcome, plan, durationMs: Date.now() - started };
}

/** What a probe needs to know of the demo: the two OS versions. */
export interface ProbeFixtures {
  readonly newOsVersion: string;
  readonly oldIdentity: { readonly osVersion: string };
}

/**
 * Each path a BIOS boot of the demo disk can take: the line that says its bootloader chose it, and
 * the line that says it started (its kernel and init ran). A path counts only once started: a
 * recovery path whose kernel or initramfs is damaged is chosen by GRUB and is still a brick.
 */
export interface ProbePath {
  readonly kind: Exclude<BootKind, 'nothing'>;
  readonly chosen: string;
  readonly started: string;
}

export function probeLines(fixtures: ProbeFixtures): ProbePath[] {
  return [
    // The refuge's GRUB echoes the first; the recovery initramfs's /init prints the second.
    { kind: 'recovery', chosen: 'reimage: recovery boot path', started: 'reimage-init [' },
    // The demo OSes' GRUB menu entries (demo-root.ts serialGrubConfig: "Loading <PRETTY_NAME> ..."),
    // then the OS's own init printing its identity.
    {
      kind: 'new-os',
      chosen: `Loading Demo Kiosk OS ${fixtures.newOsVersion} ...`,
      started: 'REIMAGE-DEMO IDENTITY BEGIN',
    },
    {
      kind: 'old-os',
      chosen: `Loading Demo Kiosk OS ${fixtures.oldIdentity.osVersion} ...`,
      started: 'REIMAGE-DEMO IDENTITY BEGIN',
    },
  ];
}

/** Lines after which no OS and no recovery path will come: SeaBIOS, GRUB or the kernel gave up. */
export const BRICK_LINES: readonly string[] = [
  'Boot failed: not a bootable disk',
  'Booting from Floppy',
  'No bootable device',
  'Entering rescue mode',
  'reimage: the recovery boot path could not start its kernel',
  'Kernel panic',
];

/**
 * What a probe boot's serial lines so far tell (pure): the path that was chosen and then started,
 * `nothing` once a brick line came, undefined while not told yet.
 */
export function probeVerdict(lines: readonly string[], fixtures: ProbeFixtures): BootKind | undefined {
  const paths = probeLines(fixtures);
  let chosen: ProbePath | undefined;
  for (const line of lines) {
    if (BRICK_LINES.some((brick) => line.includes(brick))) return 'nothing';
    if (chosen === undefined) chosen = paths.find((path) => line.includes(path.chosen));
    else if (line.includes(chosen.started)) return chosen.kind;
  }
  return undefined;
}

/**
 * What a short boot showed: which path started, or nothing (a brick: a brick line, or no path
 * started within `timeoutMs`).
 */
export async function probeBoot(o: {
  diskPath: string;
  fixtures: ProbeFixtures;
  timeoutMs?: number;
  signal: AbortSignal;
}): Promise<BootKind> {
  const told = new AbortController();
  const lines: string[] = [];
  let kind: BootKind = 'nothing';
  const onSerialLine = (line: string): void => {
    if (told.signal.aborted) return;
    lines.push(line);
    const verdict = probeVerdict(lines, o.fixtures);
    if (verdict === undefined) return;
    kind = verdict;
    told.abort(new Error('told'));
  };
  try {
    await runVm({
      diskPath: o.diskPath,
      // The recovery initramfs unpacks into RAM before its /init speaks.
      memoryMiB: 1024,
      timeoutMs: o.timeoutMs ?? 5 * 60_000,
      onSerialLine,
      signal: AbortSignal.any([told.signal, o.signal]),
    });
  } catch (error) {
    if (o.signal.aborted || !told.signal.aborted) throw error;
    if (error !== told.signal.reason && !isAbortError(error)) throw error;
  }
  return kind;
}

export interface PrefixProbe {
  /** Entries replayed, every write whole (the disk QEMU had after them). */
  readonly prefix: number;
  readonly kind: BootKind;
}

export interface BrickWindow {
  /** The log entries that write LBA 0. */
  readonly firstSectorWriteIndexes: readonly number[];
  readonly probes: readonly PrefixProbe[];
  /** The last probed prefix that boots the old OS or the recovery path before the first that boots the new OS. */
  readonly lastOldPrefix: number | undefined;
  readonly firstNewPrefix: number | undefined;
  /** Sectors written by the entries between them: the brick window (1 is the aim), if both exist. */
  readonly windowSectors: number | undefined;
  /** Probes that boot nothing: each a brick. */
  readonly brickedPrefixes: readonly number[];
  /** Probes out of order: the new OS before an old path, by prefix. */
  readonly outOfOrder: boolean;
}

/** Sectors written by entries [from, to) of the log. */
export function sectorsWritten(log: WriteLog, from: number, to: number): number {
  return log.entries
    .slice(from, to)
    .filter(isDataWrite)
    .reduce((sum, entry) => sum + entry.sectorCount, 0);
}

/** From probes of prefixes, the brick window (pure). */
export function brickWindowFromProbes(
  log: WriteLog,
  probes: readonly PrefixProbe[],
): Omit<BrickWindow, 'firstSectorWriteIndexes'> {
  const sorted = [...probes].sort((a, b) => a.prefix - b.prefix);
  const firstNew = sorted.find((probe) => probe.kind === 'new-os');
  const olds = sorted.filter((probe) => probe.kind === 'recovery' || probe.kind === 'old-os');
  const lastOldBefore = olds.filter((probe) => firstNew === undefined || probe.prefix < firstNew.prefix).at(-1);
  const outOfOrder = firstNew !== undefined && olds.some((probe) => probe.prefix > firstNew.prefix);
  return {
    probes: sorted,
    lastOldPrefix: lastOldBefore?.prefix,
    firstNewPrefix: firstNew?.prefix,
    windowSectors:
      firstNew !== undefined && lastOldBefore !== undefined
        ? sectorsWritten(log, lastOldBefore.prefix, firstNew.prefix)
        : undefined,
    brickedPrefixes: sorted.filter((probe) => probe.kind === 'nothing').map((probe) => probe.prefix),
    outOfOrder,
  };
}

/**
 * The brick window, measured: the disk replayed to just before and just after each LBA-0 write,
 * and to `extraPrefixes` more, each booted only until it shows which path starts.
 */
export async function measureBrickWindow(o: {
  recorded: RecordedRun;
  fixtures: ProbeFixtures;
  diskPath: string;
  extraPrefixes?: readonly number[];
  onProbe?: (probe: PrefixProbe) => void;
  signal: AbortSignal;
}): Promise<BrickWindow> {
  const writes = firstSectorWrites(o.recorded.log);
  const prefixes = new Set<number>(o.extraPrefixes ?? []);
  for (const entry of writes) {
    prefixes.add(entry.index);
    prefixes.add(entry.index + 1);
  }
  const probes: PrefixProbe[] = [];
  try {
    for (const prefix of [...prefixes].sort((a, b) => a - b)) {
      await applyReplay({
        baseDiskPath: o.recorded.baseDiskPath,
        logPath: o.recorded.logPath,
        log: o.recorded.log,
        plan: planPrefix(o.recorded.log, prefix),
        diskPath: o.diskPath,
      });
      const probe = { prefix, kind: await probeBoot({ diskPath: o.diskPath, fixtures: o.fixtures, signal: o.signal }) };
      o.onProbe?.(probe);
      probes.push(probe);
    }
  } finally {
    await rm(o.diskPath, { force: true });
  }
  return {
    firstSectorWriteIndexes: writes.map((entry) => entry.index),
    ...brickWindowFromProbes(o.recorded.log, probes),
  };
}

export interface ArmWindow {
  /** The armed disk with the old disk's LBA 0 back: every write of arm but its last. */
  readonly withoutFirstSector: BootKind;
  readonly armed: BootKind;
  /** Sectors of the window: 1 when all but LBA 0 still boots the old OS and the armed disk the recovery path. */
  readonly windowSectors: number | undefined;
}

/**
 * Arm's own brick window, measured the same way: arm runs on the host, not in QEMU, so instead of
 * a log its last write is taken back (the old disk's LBA 0 over a copy of the armed disk) and that
 * disk and the armed one are probed.
 */
export async function measureArmWindow(o: {
  oldDiskPath: string;
  armedDiskPath: string;
  diskPath: string;
  fixtures: ProbeFixtures;
  signal: AbortSignal;
}): Promise<ArmWindow> {
  const sectorBytes = 512;
  const oldFirst = Buffer.alloc(sectorBytes);
  const old = await open(o.oldDiskPath, 'r');
  try {
    await old.read(oldFirst, 0, sectorBytes, 0);
  } finally {
    await old.close();
  }
  try {
    await runCommand('cp', ['--sparse=always', o.armedDiskPath, o.diskPath]);
    const disk = await open(o.diskPath, 'r+');
    try {
      await disk.write(oldFirst, 0, sectorBytes, 0);
    } finally {
      await disk.close();
    }
    const withoutFirstSector = await probeBoot({ diskPath: o.diskPath, fixtures: o.fixtures, signal: o.signal });
    // A copy: a probe stops at GRUB's first line, but the armed disk must stay as arm left it.
    await runCommand('cp', ['--sparse=always', o.armedDiskPath, o.diskPath]);
    const armed = await probeBoot({ diskPath: o.diskPath, fixtures: o.fixtures, signal: o.signal });
    return {
      withoutFirstSector,
      armed,
      windowSectors: withoutFirstSector === 'old-os' && armed === 'recovery' ? 1 : undefined,
    };
  } finally {
    await rm(o.diskPath, { force: true });
  }
}
