import { formatBytes } from '../core/format-bytes.ts';
import type { Progress } from '../core/progress.ts';

export { formatBytes };

export type DisplayMode = 'bar' | 'lines' | 'json';

export interface ProgressDisplay {
  (progress: Progress): void;
  /** Prints the final state (always, whatever the throttle). */
  done(): void;
}

export function formatDuration(ms: number): string {
  const totalSeconds = Math.max(0, Math.round(ms / 1000));
  const minutes = Math.floor(totalSeconds / 60);
  const seconds = totalSeconds % 60;
  return minutes > 0 ? `${minutes}m${String(seconds).padStart(2, '0')}s` : `${seconds}s`;
}

function amount(progress: Progress, value: number): string {
  return progress.unit === 'entries' ? `${value} entries` : formatBytes(value);
}

/** The words of one progress update: done/total, percentage, rate, ETA and any counters. */
export function describeProgress(progress: Progress, elapsedMs: number): string {
  const parts: string[] = [progress.phase];
  const rate = elapsedMs > 0 ? (progress.done * 1000) / elapsedMs : 0;
  if (progress.total !== undefined && progress.total > 0) {
    const percent = Math.min(100, (progress.done / progress.total) * 100);
    parts.push(`${amount(progress, progress.done)} / ${amount(progress, progress.total)} (${percent.toFixed(0)}%)`);
  } else {
    parts.push(amount(progress, progress.done));
  }
  if (rate > 0) parts.push(progress.unit === 'entries' ? `${rate.toFixed(0)}/s` : `${formatBytes(rate)}/s`);
  if (progress.total !== undefined && rate > 0 && progress.done < progress.total) {
    parts.push(`ETA ${formatDuration(((progress.total - progress.done) / rate) * 1000)}`);
  }
  for (const [name, value] of Object.entries(progress.counters ?? {})) {
    parts.push(`${name} ${/^bytes|Bytes$/.test(name) ? formatBytes(value) : value}`);
  }
  return parts.join('  ');
}

function bar(fraction: number, width: number): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

/**
 * Renders progress on `stream`: a redrawn bar on a TTY; on a serial console or in a log,
 * timestamped lines at most every `lineIntervalMs` (plus the first and the last of each
 * phase); with --json, one JSON object per line.
 */
export function createProgressDisplay(
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
  mode: DisplayMode,
  options: { lineIntervalMs?: number; now?: () => number } = {},
): ProgressDisplay {
  const now = options.now ?? Date.now;
  const lineIntervalMs = options.lineIntervalMs ?? 20_000;
  const startedByPhase = new Map<string, number>();
  let last: Progress | undefined;
  let lastLineMs = 0;
  let lastPhase: string | undefined;
  let barShown = false;

  function elapsed(progress: Progress): number {
    return now() - (startedByPhase.get(progress.phase) ?? now());
  }

  function emit(progress: Progress, final: boolean): void {
    if (mode === 'json') {
      stream.write(
        `${JSON.stringify({ type: 'progress', time: new Date(now()).toISOString(), final, ...progress })}\n`,
      );
      return;
    }
    if (mode === 'lines') {
      stream.write(`${new Date(now()).toISOString()} ${describeProgress(progress, elapsed(progress))}\n`);
      return;
    }
    const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - 80));
    const fraction = progress.total ? progress.done / progress.total : 0;
    const text = `${progress.total ? `${bar(fraction, width)} ` : ''}${describeProgress(progress, elapsed(progress))}`;
    stream.write(`\r\x1b[K${text}${final ? '\n' : ''}`);
    barShown = !final;
  }

  const display = ((progress: Progress) => {
    const nowMs = now();
    if (!startedByPhase.has(progress.phase)) startedByPhase.set(progress.phase, nowMs);
    const phaseChanged = progress.phase !== lastPhase;
    if (phaseChanged && last !== undefined && lastPhase !== undefined) {
      emit(last, true);
    }
    last = progress;
    lastPhase = progress.phase;
    const intervalMs = mode === 'bar' ? 100 : mode === 'json' ? 1000 : lineIntervalMs;
    if (phaseChanged || nowMs - lastLineMs >= intervalMs) {
      lastLineMs = nowMs;
      emit(progress, false);
    }
  }) as ProgressDisplay;

  display.done = () => {
    if (last !== undefined) emit(last, true);
    else if (barShown) stream.write('\n');
    last = undefined;
    lastPhase = undefined;
  };
  return display;
}

/** bar on a TTY, lines elsewhere, json when asked. */
export function chooseDisplayMode(stream: { isTTY?: boolean }, json: boolean): DisplayMode {
  if (json) return 'json';
  return stream.isTTY === true ? 'bar' : 'lines';
}
