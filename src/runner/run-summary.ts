import { formatBytes } from '../core/format-bytes.ts';
import type { RunReport } from './run-plan.ts';

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A short table of what a run did, for the console and the demo. */
export function formatRunSummary(report: RunReport): string[] {
  const rows: [string, string][] = [
    ['disk', report.disk],
    ['image', `${report.image.path} (${report.image.format}, ${formatBytes(report.image.imageSizeBytes)})`],
    ['written / skipped', `${formatBytes(report.bytesWritten)} / ${formatBytes(report.bytesSkipped)}`],
    [
      'retained entries',
      `${report.entriesCaptured} captured, ${report.entriesRestored} restored, ${report.entriesVerified} verified`,
    ],
    ['stage capture', `${seconds(report.stages.capture.durationMs)}`],
    ['stage write', `${seconds(report.stages.write.durationMs)} (${report.stages.write.attempts} attempt(s))`],
    ['stage restore', `${seconds(report.stages.restore.durationMs)} (${report.stages.restore.attempts} attempt(s))`],
    ['peak memory', formatBytes(report.peakRssBytes)],
    ['warnings', String(report.warnings.length)],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`);
}
