/**
 * Progress is plain data handed to an `onProgress` callback; nothing in the core prints.
 * A metering transform emits a few updates a second; the CLI renders them
 * (src/cli/progress-display.ts): a bar on a TTY, timestamped lines elsewhere, JSON with --json.
 */
/**
 * Every phase any part reports, as a closed union: the display and the JSON consumers can rely on
 * the set, and a new phase is added here on purpose. Found in the code on 2026-12-01:
 * image/ (sha256-file, write-image): 'verify image', 'measure image', 'write', 'read back';
 * retain/ (capture-bundle, restore-bundle): 'capture', 'restore';
 * runner/ (capture-stage): 'load image into RAM'.
 */
export const PROGRESS_PHASES = [
  'load image into RAM',
  'verify image',
  'measure image',
  'write',
  'read back',
  'capture',
  'restore',
] as const;

export type ProgressPhase = (typeof PROGRESS_PHASES)[number];

/** What `done` and `total` count. Required: a number without its unit cannot be shown right. */
export type ProgressUnit = 'bytes' | 'entries';

export interface Progress {
  readonly phase: ProgressPhase;
  /** Units of work done so far, in `unit`. */
  readonly done: number;
  /** Total units, when known. */
  readonly total?: number;
  readonly unit: ProgressUnit;
  /** Extra counters worth showing, e.g. bytesWritten, bytesSkipped (names carry their units). */
  readonly counters?: Readonly<Record<string, number>>;
}

export type OnProgress = (progress: Progress) => void;

export const ignoreProgress: OnProgress = () => {};

/**
 * Wraps `onProgress` so it fires at most every `intervalMs` (always for the first and the
 * final call made with `flush`), keeping the hot path cheap.
 */
export function throttleProgress(onProgress: OnProgress, intervalMs = 250): { report: OnProgress; flush: OnProgress } {
  let lastMs = 0;
  return {
    report(progress) {
      const nowMs = Date.now();
      if (nowMs - lastMs < intervalMs) return;
      lastMs = nowMs;
      onProgress(progress);
    },
    flush(progress) {
      lastMs = Date.now();
      onProgress(progress);
    },
  };
}
