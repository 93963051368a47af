import { lstat, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { isSystemError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';

/** A firmware file the host has for a module, at its name under /lib/firmware. */
export interface FoundFirmware {
  readonly fileName: string;
  readonly hostPath: string;
  readonly sizeBytes: number;
}

/** Firmware files the kernel may load as they are, or compressed (CONFIG_FW_LOADER_COMPRESS). */
const FIRMWARE_SUFFIXES = ['', '.xz', '.zst'];

/**
 * The firmware the modules name (`modinfo -F firmware`) that this host has under `firmwareDir`,
 * plain or compressed, symlinks followed; and the names it does not have (most are for hardware
 * the machine lacks, so that is not an error).
 */
export async function findFirmware(
  moduleFiles: readonly string[],
  firmwareDir: string,
  signal?: AbortSignal,
): Promise<{
  found: FoundFirmware[];
  missing: string[];
}> {
  if (moduleFiles.length === 0) return { found: [], missing: [] };
  const { stdout } = await runCommand('modinfo', ['-F', 'firmware', ...moduleFiles], { signal });
  const names = [...new Set(stdout.split('\n').map((line) => line.trim()))].filter((name) => name !== '').sort();
  const found: FoundFirmware[] = [];
  const missing: string[] = [];
  for (const name of names) {
    let hit = false;
    for (const suffix of FIRMWARE_SUFFIXES) {
      const candidate = join(firmwareDir, `${name}${suffix}`);
      try {
        const hostPath = await realpath(candidate);
        const stats = await lstat(hostPath);
        if (!stats.isFile()) continue;
        found.push({ fileName: `${name}${suffix}`, hostPath, sizeBytes: stats.size });
        hit = true;
      } catch (e) {
        if (isSystemError(e) && e.code === 'ENOENT') continue;
        throw e;
      }
    }
    if (!hit) missing.push(name);
  }
  return { found, missing };
}
