import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A private directory for the file-based parsers, in RAM when /dev/shm exists (thousands of rewrites a second). */
export function makeScratchDir(): { dir: string; remove(): void } {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'reimage-fuzz-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
