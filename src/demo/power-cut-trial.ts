import { open } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import type { MapItem } from '../boot/refuge-map-item.ts';
import { isAbortError } from '../core/exit-codes.ts';
import { runCommand } from '../core/run-command.ts';
import type { DemoFixtures } from './demo-fixtures.ts';
import { newRootPartition, oldRootPartition } from './demo-layout.ts';
import { type IdentityReport, parseIdentityReport } from './identity-report.ts';
import { runVm } from './qemu-vm.ts';
import {
  checkRetainedBytes,
  describeStrayBytes,
  type RetainedSecret,
  readArmedMap,
  readRetainedSecrets,
} from './retained-bytes.ts';

/**
 * Where a trial cuts the power: `delayMs` after the first serial line containing `marker`. The
 * markers are lines the recovery boot and the armed run print, so cuts spread over every step.
 */
export interface PowerCut {
  readonly marker: string;
  readonly delayMs: number;
}

/** Lines of an armed boot, in order: a cut after each lands in that step (docs/arm.md). */
export const POWER_CUT_MARKERS: readonly string[] = [
  'reimage: recovery boot path',
  'step 1/6 capture',
  'step 2/6 write',
  'step 3/6 restore',
  'step 4/6 wipe',
  'step 5/6 release',
  'step 6/6 commit',
];

/** What one boot of the disk showed. */
export type BootKind = 'recovery' | 'new-os' | 'old-os' | 'nothing';

export interface PowerCutTrialResult extends TrialOutcome {
  readonly cut: PowerCut;
  readonly durationMs: number;
}

const BUNDLE_FRAME_MAGIC = Buffer.from('REIMAGE-BUNDLE\0\0', 'latin1');
const NEW_OS_MARKER = 'REIMAGE-DEMO IDENTITY BEGIN';

function bootKind(serialLog: string, newOsVersion: string, identity: IdentityReport | undefined): BootKind {
  if (serialLog.includes('reimage: recovery boot path')) return 'recovery';
  if (identity !== undefined) return identity.osVersion === newOsVersion ? 'new-os' : 'old-os';
  if (serialLog.includes(NEW_OS_MARKER)) return 'new-os';
  return 'nothing';
}

/** Whether the bytes of a file contain `needle` anywhere (read in 16 MiB chunks, overlapping). */
export async function fileContains(path: string, needle: Buffer): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const chunkBytes = 16 * 1024 * 1024;
    const keep = needle.length - 1;
    const buffer = Buffer.alloc(keep + chunkBytes);
    let kept = 0;
    let position = 0;
    for (;;) {
      const { bytesRead } = await file.read(buffer, kept, chunkBytes, position);
      if (bytesRead === 0) return false;
      const filled = kept + bytesRead;
      if (buffer.subarray(0, filled).includes(needle)) return true;
      position += bytesRead;
      // The last bytes go to the front, so a match across two chunks is seen.
      kept = Math.min(keep, filled);
      buffer.copyWithin(0, filled - kept, filled);
    }
  } finally {
    await file.close();
  }
}

/** What the boots of a trial showed, and the checks every kind of trial makes of them. */
export interface TrialOutcome {
  /** Whether the cut came before the first boot ended by itself (false when it had no cut). */
  readonly cutHappened: boolean;
  /** What each boot was, the first one first. */
  readonly boots: readonly BootKind[];
  /** A boot that reached neither the recovery path nor an OS (other than a cut one): the brick. */
  readonly bricked: boolean;
  /** Every boot entered the recovery path and none reached the new OS: stuck (or looping). */
  readonly stuck: boolean;
  /** A boot neither rebooted nor powered off in its time: the machine hangs there (no more boots). */
  readonly hung: boolean;
  readonly identity: IdentityReport | undefined;
  /** The new OS came up with the old machine-id and SSH host keys. */
  readonly identityKept: boolean;
  /** A retention bundle frame (private keys) is still somewhere on the raw disk. */
  readonly bundleLeft: boolean;
  /**
   * With `retainedKeys`: each old SSH host key byte sequence found where it may not be (not the
   * restored file, nor an old copy the new image leaves unmapped), one line each; '' when none.
   */
  readonly strayKeyBytes: string | undefined;
  /** The serial log of every boot, for a failure's message. */
  readonly serialLogs: readonly string[];
}

/**
 * Boots a disk by its own BIOS path again and again until the new OS comes up or `maxBoots`
 * (default 4) is spent, the first boot cut at `cut` if given (SIGKILL of QEMU: every write it
 * already issued stays), then checks the new OS's identity and that no bundle is left on the disk.
 */
export interface BootUntilNewOsOptions {
  readonly diskPath: string;
  readonly fixtures: DemoFixtures;
  readonly cut?: PowerCut;
  readonly maxBoots?: number;
  /** Each boot's time (default 15 min); a boot still running then hangs, and the trial stops. */
  readonly bootTimeoutMs?: number;
  /** Each serial line as it comes, with the boot's index (0: the first, the cut one). */
  readonly onSerialLine?: (boot: number, line: string) => void;
  /** Called when the plug is pulled. */
  readonly onCut?: () => void;
  /** Check where the old keys' bytes lie on the disk after the new OS came up. */
  readonly retainedKeys?: RetainedKeysCheck;
  readonly signal: AbortSignal;
}

export async function bootUntilNewOs(o: BootUntilNewOsOptions): Promise<TrialOutcome> {
  const boots: BootKind[] = [];
  const serialLogs: string[] = [];
  let cutHappened = false;
  let identity: IdentityReport | undefined;
  let hung = false;
  const maxBoots = o.maxBoots ?? 4;
  for (let boot = 0; boot < maxBoots; boot++) {
    const plug = new AbortController();
    const lines: string[] = [];
    let scheduled = false;
    const cut = boot === 0 ? o.cut : undefined;
    const onSerialLine = (line: string): void => {
      lines.push(line);
      o.onSerialLine?.(boot, line);
      if (cut !== undefined && !scheduled && line.includes(cut.marker)) {
        scheduled = true;
        setTimeout(() => {
          o.onCut?.();
          plug.abort(new Error('power cut'));
        }, cut.delayMs).unref();
      }
    };
    let serialLog: string;
    try {
      const result = await runVm({
        diskPath: o.diskPath,
        memoryMiB: 3072,
        timeoutMs: o.bootTimeoutMs ?? 15 * 60_000,
        onSerialLine,
        signal: AbortSignal.any([plug.signal, o.signal]),
      });
      serialLog = result.serialLog;
      hung = result.ending === 'timeout';
    } catch (error) {
      if (o.signal.aborted || !plug.signal.aborted) throw error;
      // runVm rejects with the signal's reason: the cut's own, or QEMU failed for another reason.
      if (error !== plug.signal.reason && !isAbortError(error)) throw error;
      cutHappened = true;
      serialLog = lines.join('\n');
    }
    serialLogs.push(serialLog);
    const report = parseIdentityReport(serialLog);
    const kind = bootKind(serialLog, o.fixtures.newOsVersion, report);
    boots.push(kind);
    if (kind === 'new-os') {
      identity = report;
      break;
    }
    // A boot that reached nothing (not cut) is a brick: booting again will not change it.
    if (kind === 'nothing' && !(boot === 0 && cutHappened)) break;
    // A machine that hangs (a failed run that waits for a person) does not boot again by itself.
    if (hung) break;
  }
  const old = o.fixtures.oldIdentity;
  return {
    cutHappened,
    boots,
    bricked: boots.some((kind, index) => kind === 'nothing' && !(index === 0 && cutHappened)),
    stuck: identity === undefined && boots.at(-1) === 'recovery',
    hung,
    identity,
    identityKept:
      identity !== undefined &&
      identity.machineId === old.machineId &&
      isDeepStrictEqual(identity.sshHostKeySha256, old.sshHostKeySha256),
    bundleLeft: await fileContains(o.diskPath, BUNDLE_FRAME_MAGIC),
    strayKeyBytes:
      o.retainedKeys === undefined || identity === undefined
        ? undefined
        : describeStrayBytes(await checkRetainedBytes({ diskPath: o.diskPath, ...o.retainedKeys, signal: o.signal })),
    serialLogs,
  };
}

/** What the trials need to check the old keys' bytes on a disk after the run (retained-bytes.ts). */
export interface RetainedKeysCheck {
  readonly secrets: readonly RetainedSecret[];
  readonly map: Pick<MapItem, 'partitions' | 'ranges'>;
  readonly newRootPartition: number;
}

/** Reads the old keys from the pristine old disk and the map from the armed one (before any run). */
export async function demoRetainedKeysCheck(fixtures: DemoFixtures, armedDiskPath: string): Promise<RetainedKeysCheck> {
  return {
    secrets: await readRetainedSecrets(fixtures.oldDiskPath, oldRootPartition),
    map: await readArmedMap(armedDiskPath),
    newRootPartition,
  };
}

/**
 * One power-cut trial on a copy of an armed disk: boots it by its own BIOS path, pulls the plug
 * (SIGKILL of QEMU: every write QEMU already issued stays, as after a power cut whose disk had
 * flushed them) at the cut, then boots it again and again until the new OS comes up or
 * `maxBoots` is spent, and checks the new OS's identity and that no bundle is left on the disk.
 */
export async function runPowerCutTrial(
  o: BootUntilNewOsOptions & { readonly armedDiskPath: string; readonly cut: PowerCut },
): Promise<PowerCutTrialResult> {
  const started = Date.now();
  await runCommand('cp', ['--sparse=always', o.armedDiskPath, o.diskPath]);
  const outcome = await bootUntilNewOs(o);
  return { cut: o.cut, ...outcome, durationMs: Date.now() - started };
}
