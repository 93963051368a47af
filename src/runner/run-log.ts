import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../core/logger.ts';

export interface RunLog extends Logger {
  /** The log file in RAM that ends up in the new root and the report. */
  readonly file: string;
  readonly warnings: readonly string[];
}

/**
 * The runner's log: every line goes to the console (stderr; in the initramfs, /init copies it
 * to every console) and, timestamped, to a file in RAM. Appends are synchronous so the file
 * is complete at whatever point the run fails. Never given file contents: bundles hold keys.
 */
export function createRunLog(file: string, console: NodeJS.WritableStream = process.stderr): RunLog {
  mkdirSync(dirname(file), { recursive: true });
  const warnings: string[] = [];
  const write = (line: string): void => {
    const stamped = `${new Date().toISOString()} ${line}\n`;
    console.write(`reimage: ${line}\n`);
    appendFileSync(file, stamped);
  };
  return {
    file,
    warnings,
    info(message) {
      write(message);
    },
    warn(message) {
      warnings.push(message);
      write(`warning: ${message}`);
    },
  };
}
