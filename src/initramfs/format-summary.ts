import type { InitramfsSummary } from './summarize-initramfs.ts';

function mebibytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** The text `reimage initramfs build --list` prints: parts and sizes, then (with entries) every path. */
export function formatInitramfsSummary(summary: InitramfsSummary, options: { entries: boolean }): string {
  const lines = [
    `${summary.outPath}: ${mebibytes(summary.sizeBytes)} (${summary.compression}), ${summary.entryCount} entries, ${mebibytes(summary.contentBytes)} of content`,
    `kernel ${summary.kernelVersion}; disk ${summary.disk}; finish ${summary.finish}`,
    '',
    `${'part'.padEnd(16)}${'entries'.padStart(8)}${'content'.padStart(14)}`,
  ];
  for (const part of summary.parts) {
    lines.push(
      `${part.part.padEnd(16)}${String(part.entryCount).padStart(8)}${mebibytes(part.contentBytes).padStart(14)}`,
    );
  }
  lines.push('', `modules (${summary.modules.length}): ${summary.modules.map((m) => m.split('/').pop()).join(' ')}`);
  if (summary.missingModules.length > 0) lines.push(`not in this kernel: ${summary.missingModules.join(' ')}`);
  lines.push(`firmware: ${summary.firmware.length === 0 ? 'none' : summary.firmware.join(' ')}`);
  lines.push(`tools: ${summary.tools.map((t) => `${t.name} (${t.hostPath})`).join(', ')}`);
  if (options.entries) {
    lines.push('');
    for (const entry of summary.entries) {
      lines.push(`${String(entry.sizeBytes).padStart(12)}  ${entry.part.padEnd(14)} ${entry.path}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
