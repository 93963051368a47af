import { existsSync } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { readElfDynamicInfo } from './elf-closure.ts';

/** Debian's busybox-static installs a statically linked busybox here. */
export const BUSYBOX_PATH = '/bin/busybox';

export interface Busybox {
  readonly hostPath: string;
  readonly sizeBytes: number;
  /** Its applets as `busybox --list` names them. */
  readonly applets: readonly string[];
}

/** The host's static busybox and its applet list; a dynamically linked one is refused. */
export async function findBusybox(path: string = BUSYBOX_PATH): Promise<Busybox> {
  if (!existsSync(path)) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_BUSYBOX_MISSING',
      `${path} is missing. Install the Debian package busybox-static and build again.`,
      { evidence: { path } },
    );
  }
  const hostPath = await realpath(path);
  const info = await readElfDynamicInfo(hostPath);
  if (info.interpreter !== undefined || info.needed.length > 0) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_BUSYBOX_MISSING',
      `${path} is dynamically linked. Install the Debian package busybox-static (not busybox) and build again.`,
      { evidence: { path: hostPath, actual: info.interpreter ?? info.needed.join(' ') } },
    );
  }
  const { stdout } = await runCommand(hostPath, ['--list']);
  const applets = stdout
    .split('\n')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  return { hostPath, sizeBytes: (await lstat(hostPath)).size, applets };
}
