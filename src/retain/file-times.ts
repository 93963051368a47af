import { lutimes } from 'node:fs/promises';
import { runCommand } from '../core/run-command.ts';

const NS_PER_SEC = 1_000_000_000n;

/**
 * Node's utimes family takes seconds as a double; libuv turns it into a timespec by truncation.
 * That is exact for whole seconds (every file a package manager installs) but about 1 in 240 of
 * arbitrary nanosecond values at today's epoch. This returns the double that lands exactly on
 * `timeNs` through libuv's conversion, or undefined when there is none.
 */
export function exactDoubleSeconds(timeNs: bigint): number | undefined {
  if (timeNs < 0n) return undefined;
  const seconds = timeNs / NS_PER_SEC;
  const fraction = Number(timeNs % NS_PER_SEC);
  const candidate = Number(seconds) + fraction / 1e9;
  const whole = Math.trunc(candidate);
  // Mirrors libuv's uv__fs_to_timespec: tv_sec = time; tv_nsec = (time - tv_sec) * 1e9.
  if (BigInt(whole) === seconds && Math.trunc((candidate - whole) * 1e9) === fraction) return candidate;
  return undefined;
}

/** `touch -d @S.N` wants the fraction as digits after the point. */
function touchTime(timeNs: bigint): string {
  const negative = timeNs < 0n;
  const magnitude = negative ? -timeNs : timeNs;
  return `@${negative ? '-' : ''}${magnitude / NS_PER_SEC}.${(magnitude % NS_PER_SEC).toString().padStart(9, '0')}`;
}

/** Paths handed to one `touch` call: keeps the argument list well below ARG_MAX. */
const PATHS_PER_TOUCH = 256;
const TOUCH_CONCURRENCY = 4;

/**
 * Sets access and modification times of each path (the link itself for symlinks) to the exact
 * nanosecond. Call it after every entry is in place: creating or renaming an entry changes its
 * directory's mtime, while setting times on a child does not, so no ordering is needed here.
 * Values Node cannot express go to coreutils `touch -h`, batched by equal time, a few at once.
 */
export async function setExactTimes(
  items: ReadonlyArray<{ readonly path: string; readonly timeNs: bigint }>,
  signal?: AbortSignal,
): Promise<{ viaTouch: number }> {
  const byTime = new Map<bigint, string[]>();
  let viaTouch = 0;
  for (const item of items) {
    const seconds = exactDoubleSeconds(item.timeNs);
    if (seconds !== undefined) {
      await lutimes(item.path, seconds, seconds);
      continue;
    }
    viaTouch += 1;
    const list = byTime.get(item.timeNs);
    if (list === undefined) byTime.set(item.timeNs, [item.path]);
    else list.push(item.path);
  }
  const calls: string[][] = [];
  for (const [timeNs, paths] of byTime) {
    for (let i = 0; i < paths.length; i += PATHS_PER_TOUCH) {
      calls.push(['-h', '-c', '-d', touchTime(timeNs), '--', ...paths.slice(i, i + PATHS_PER_TOUCH)]);
    }
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < calls.length) {
      const args = calls[next] ?? [];
      next += 1;
      await runCommand('touch', args, { signal });
    }
  };
  await Promise.all(Array.from({ length: TOUCH_CONCURRENCY }, worker));
  return { viaTouch };
}
