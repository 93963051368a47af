import { accessSync, constants } from 'node:fs';
import type { Logger } from './logger.ts';
import { onPath } from './on-path.ts';
import { ReimageError } from './reimage-error.ts';
import { runCommand } from './run-command.ts';
import { SYSTEM_FILES, SYSTEM_TOOLS } from './system-tool-list.ts';

function fileExists(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Debian packages whose tools or files are missing here, with why each is needed. */
export function missingSystemPackages(): { debianPackage: string; why: string }[] {
  const missing = new Map<string, string>();
  for (const tool of SYSTEM_TOOLS) {
    if (!onPath(tool.command)) missing.set(tool.debianPackage, `${tool.command}: ${tool.why}`);
  }
  for (const file of SYSTEM_FILES) {
    if (!fileExists(file.path)) missing.set(file.debianPackage, `${file.path}: ${file.why}`);
  }
  return [...missing].map(([debianPackage, why]) => ({ debianPackage, why }));
}

/**
 * Makes sure the system tools are there. As root on Debian it installs the missing packages
 * with apt, saying what and why; elsewhere it fails naming the exact packages to install.
 */
export async function ensureSystemPackages(log: Logger): Promise<void> {
  const missing = missingSystemPackages();
  if (missing.length === 0) return;
  const names = missing.map((entry) => entry.debianPackage);
  const canInstall = process.getuid?.() === 0 && onPath('apt-get');
  if (!canInstall) {
    throw new ReimageError(
      'REIMAGE_TOOL_MISSING',
      `Missing system packages: ${names.join(' ')}. Install them (as root: apt-get install ${names.join(' ')}) and try again.`,
      { evidence: { packages: names, why: missing.map((entry) => `${entry.debianPackage} (${entry.why})`) } },
    );
  }
  for (const entry of missing) log.info(`installing ${entry.debianPackage} (${entry.why})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runCommand('apt-get', ['update', '-qq'], { env });
  await runCommand('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...names], { env });
  const still = missingSystemPackages();
  if (still.length > 0) {
    throw new ReimageError(
      'REIMAGE_TOOL_MISSING',
      `apt-get could not provide: ${still.map((e) => e.debianPackage).join(' ')}.`,
      {
        evidence: { packages: still.map((entry) => entry.debianPackage) },
      },
    );
  }
}
