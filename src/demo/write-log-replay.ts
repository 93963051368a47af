import { constants, readSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { isDataWrite, readWriteLog, type WriteLog, type WriteLogEntry } from './write-log.ts';

/** The seeded choices of a replay (test/fuzz's SeededRandom fits). */
export interface RandomSource {
  /** A whole number in [0, bound). */
  below(bound: number): number;
}

/** One logged write as a replay puts it on the disk: all of it, or a prefix (the torn one). */
export interface ReplayWrite {
  readonly entryIndex: number;
  /** Bytes of the entry's data, from its start, that reach the disk. */
  readonly keptBytes: number;
}

/** What a power cut at `cutIndex` left: the writes kept, in log order. */
export interface ReplayPlan {
  /** Entries before it completed; the entry at it was in flight; later ones never happened. */
  readonly cutIndex: number;
  /** The last FLUSH entry that completed before the cut (-1: none): everything up to it is kept. */
  readonly lastFlushIndex: number;
  readonly writes: readonly ReplayWrite[];
  /** Completed writes no flush covered that the cut lost. */
  readonly droppedIndexes: readonly number[];
  /** The request in flight, if it was a write: how much of it reached the disk. */
  readonly torn: { readonly entryIndex: number; readonly keptBytes: number; readonly sizeBytes: number } | undefined;
}

function entryBytes(entry: WriteLogEntry, sectorSizeBytes: number): number {
  return entry.sectorCount * sectorSizeBytes;
}

/** The index of the last FLUSH entry before `cutIndex`, or -1. */
export function lastFlushBefore(entries: readonly WriteLogEntry[], cutIndex: number): number {
  for (let index = Math.min(cutIndex, entries.length) - 1; index >= 0; index--) {
    if (entries[index]?.flush === true) return index;
  }
  return -1;
}

function checkCut(entries: readonly WriteLogEntry[], cutIndex: number): void {
  if (!Number.isInteger(cutIndex) || cutIndex < 0 || cutIndex > entries.length) {
    throw new ReimageError(
      'REIMAGE_DEMO_REPLAY_CUT',
      `The cut point ${cutIndex} is outside the log (0 to ${entries.length}): pick an entry index of the log.`,
      { evidence: { cutIndex, entries: entries.length } },
    );
  }
}

/**
 * A power cut while entry `cutIndex` was in flight (pure). The rules of a disk with a volatile
 * write cache: a write covered by a completed flush (a FLUSH entry after it and before the cut)
 * or written with FUA is kept whole; each other completed write is kept or lost at random (the
 * cache may have written any of them back, in any order); the request in flight keeps a random
 * prefix of `tearUnitBytes` units (512: a sector, the unit a disk writes whole), none to all.
 */
export function planReplay(
  log: Pick<WriteLog, 'entries' | 'sectorSizeBytes'>,
  cutIndex: number,
  random: RandomSource,
  tearUnitBytes = 512,
): ReplayPlan {
  const { entries, sectorSizeBytes } = log;
  checkCut(entries, cutIndex);
  const lastFlushIndex = lastFlushBefore(entries, cutIndex);
  const writes: ReplayWrite[] = [];
  const droppedIndexes: number[] = [];
  for (const entry of entries.slice(0, cutIndex)) {
    if (!isDataWrite(entry)) continue;
    const sizeBytes = entryBytes(entry, sectorSizeBytes);
    if (entry.index <= lastFlushIndex || entry.fua || random.below(2) === 1) {
      writes.push({ entryIndex: entry.index, keptBytes: sizeBytes });
    } else {
      droppedIndexes.push(entry.index);
    }
  }
  const inFlight = entries[cutIndex];
  let torn: ReplayPlan['torn'];
  if (inFlight !== undefined && isDataWrite(inFlight)) {
    const sizeBytes = entryBytes(inFlight, sectorSizeBytes);
    const units = Math.ceil(sizeBytes / tearUnitBytes);
    const keptBytes = Math.min(sizeBytes, random.below(units + 1) * tearUnitBytes);
    torn = { entryIndex: inFlight.index, keptBytes, sizeBytes };
    if (keptBytes > 0) writes.push({ entryIndex: inFlight.index, keptBytes });
  }
  return { cutIndex, lastFlushIndex, writes, droppedIndexes, torn };
}

/** The first `count` entries, every write whole, nothing after: the disk as QEMU had it then. */
export function planPrefix(log: Pick<WriteLog, 'entries' | 'sectorSizeBytes'>, count: number): ReplayPlan {
  checkCut(log.entries, count);
  return {
    cutIndex: count,
    lastFlushIndex: lastFlushBefore(log.entries, count),
    writes: log.entries
      .slice(0, count)
      .filter(isDataWrite)
      .map((entry) => ({ entryIndex: entry.index, keptBytes: entryBytes(entry, log.sectorSizeBytes) })),
    droppedIndexes: [],
    torn: undefined,
  };
}

/** Reads a blklogwrites log file's entries (the file is read, not loaded whole). */
export async function readWriteLogFile(logPath: string): Promise<WriteLog> {
  const file = await open(logPath, 'r');
  try {
    const { size } = await file.stat();
    const fd = file.fd;
    return readWriteLog((positionBytes, lengthBytes) => {
      const buffer = Buffer.alloc(lengthBytes);
      const read = readSync(fd, buffer, 0, lengthBytes, positionBytes);
      return buffer.subarray(0, read);
    }, size);
  } finally {
    await file.close();
  }
}

const COPY_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * Writes the disk a plan describes: a sparse copy of `baseDiskPath` (the disk when the recording
 * began) at `diskPath`, then each kept write's bytes from the log at its place. Refuses a write
 * outside the disk (the log is not this disk's).
 */
export async function applyReplay(o: {
  baseDiskPath: string;
  logPath: string;
  log: WriteLog;
  plan: ReplayPlan;
  diskPath: string;
}): Promise<void> {
  await runCommand('cp', ['--sparse=always', o.baseDiskPath, o.diskPath]);
  const diskSizeBytes = (await stat(o.diskPath)).size;
  const disk = await open(o.diskPath, constants.O_RDWR);
  const logFile = await open(o.logPath, 'r');
  try {
    const buffer = Buffer.alloc(COPY_CHUNK_BYTES);
    for (const write of o.plan.writes) {
      const entry = o.log.entries[write.entryIndex];
      if (entry?.dataOffsetBytes === undefined) continue;
      const targetBytes = entry.sector * o.log.sectorSizeBytes;
      if (targetBytes + write.keptBytes > diskSizeBytes) {
        throw new ReimageError(
          'REIMAGE_DEMO_WRITE_LOG_DAMAGED',
          `Entry ${entry.index} of the write log writes sector ${entry.sector} (+${entry.sectorCount}) beyond the ${diskSizeBytes}-byte disk ${o.baseDiskPath}: the log was recorded on another disk.`,
          { evidence: { entryIndex: entry.index, sector: entry.sector, diskSizeBytes } },
        );
      }
      for (let doneBytes = 0; doneBytes < write.keptBytes; ) {
        const lengthBytes = Math.min(COPY_CHUNK_BYTES, write.keptBytes - doneBytes);
        const { bytesRead } = await logFile.read(buffer, 0, lengthBytes, entry.dataOffsetBytes + doneBytes);
        if (bytesRead !== lengthBytes) {
          throw new ReimageError(
            'REIMAGE_DEMO_WRITE_LOG_DAMAGED',
            `The data of entry ${entry.index} ends early in ${o.logPath}: record the log again.`,
            { evidence: { entryIndex: entry.index, bytesRead, lengthBytes } },
          );
        }
        await disk.write(buffer, 0, lengthBytes, targetBytes + doneBytes);
        doneBytes += lengthBytes;
      }
    }
  } finally {
    await logFile.close();
    await disk.close();
  }
}
