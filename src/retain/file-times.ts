import { lutimesSync } from 'node:fs';
import { isReimageError } from '../core/reimage-error.ts';
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
 * utimensat(2) numbers for perl's syscall(): one perl process sets every remaining time exactly,
 * where `touch` would need a process per distinct time (docs/adr/0102). perl-base is Essential
 * in Debian, so it is on every Debian root and can be put in the initramfs.
 */
const UTIMENSAT_SYSCALL: Readonly<Record<string, number>> = { x64: 280, arm64: 88, riscv64: 88 };
const PERL_UTIMENSAT = `$/ = "\\0"; my $nr = shift @ARGV;
while (my $r = <STDIN>) { chomp $r; my ($s, $n, $p) = split / /, $r, 3;
  syscall($nr, -100, $p, pack("q<q<q<q<", $s, $n, $s, $n), 0x100) == 0 or die "utimensat $p: $!\\n"; }`;

/**
 * Sets access and modification times of each path (the link itself for symlinks) to the exact
 * nanosecond. Call it after every entry is in place: creating or renaming an entry changes its
 * directory's mtime, while setting times on a child does not, so no ordering is needed here.
 * Times Node can express exactly go through lutimes; the rest through perl's utimensat, or
 * coreutils `touch -h` (batched by equal time) where perl is missing.
 */
export async function setExactTimes(
  items: ReadonlyArray<{ readonly path: string; readonly timeNs: bigint }>,
  signal?: AbortSignal,
): Promise<{ viaHelper: number; helper: 'none' | 'perl' | 'touch' }> {
  const rest: Array<{ readonly path: string; readonly timeNs: bigint }> = [];
  for (const item of items) {
    const seconds = exactDoubleSeconds(item.timeNs);
    if (seconds === undefined) rest.push(item);
    else lutimesSync(item.path, seconds, seconds);
  }
  if (rest.length === 0) return { viaHelper: 0, helper: 'none' };
  const syscallNumber = UTIMENSAT_SYSCALL[process.arch];
  if (syscallNumber !== undefined && rest.every((item) => item.timeNs >= 0n)) {
    const input = Buffer.concat(
      rest.map((item) => Buffer.from(`${item.timeNs / NS_PER_SEC} ${item.timeNs % NS_PER_SEC} ${item.path}\0`, 'utf8')),
    );
    try {
      await runCommand('perl', ['-e', PERL_UTIMENSAT, String(syscallNumber)], { input, signal });
      return { viaHelper: rest.length, helper: 'perl' };
    } catch (e) {
      if (!(isReimageError(e) && e.code === 'REIMAGE_TOOL_MISSING')) throw e;
    }
  }
  await touchAll(rest, signal);
  return { viaHelper: rest.length, helper: 'touch' };
}

async function touchAll(
  items: ReadonlyArray<{ readonly path: string; readonly timeNs: bigint }>,
  signal?: AbortSignal,
): Promise<void> {
  const byTime = new Map<bigint, string[]>();
  for (const item of items) {
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
}
