/**
 * Progress is plain data handed to an `onProgress` callback; nothing in the core prints.
 * A metering transform emits a few updates a second; the CLI renders them
 * (src/cli/progress-display.ts): a bar on a TTY, timestamped lines elsewhere, JSON with --json.
 */
export interface Progress {
  /** What is happening, in a word or two: "verify image", "write", "read back", "capture". */
  readonly phase: string;
  /** Units of work done so far (bytes unless `unit` says otherwise). */
  readonly done: number;
  /** Total units, when known. */
  readonly total?: number;
  readonly unit?: 'bytes' | 'entries';
  /** Extra counters worth showing, e.g. bytesWritten, bytesSkipped. */
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
