import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { ReimageError } from '../core/reimage-error.ts';

export interface RunVmOptions {
  /** Boot this kernel directly; without it the VM boots the disk by its own bootloader (SeaBIOS). */
  readonly kernelPath?: string;
  readonly initrdPath?: string;
  /** Kernel command line (only with kernelPath). Default: serial console, reboot on panic. */
  readonly append?: string;
  readonly diskPath: string;
  readonly diskFormat?: 'raw';
  /**
   * A blkdebug rules file (QEMU's I/O error injection, docs/devel/testing/blkdebug.rst): the disk
   * is opened through it, so the guest sees the errors its rules inject. Not with writeLogPath.
   */
  readonly blkdebugConfigPath?: string;
  /**
   * Record every write, flush and discard the disk gets into this file (QEMU's blklogwrites, the
   * dm-log-writes format; src/demo/write-log.ts reads it). runVm empties the file first.
   */
  readonly writeLogPath?: string;
  /** Default 1024. */
  readonly memoryMiB?: number;
  /** Default 2. */
  readonly cpuCount?: number;
  /** The VM is killed after this long and the ending is "timeout". */
  readonly timeoutMs: number;
  /** Each line the guest prints on its serial console, without the line ending. */
  readonly onSerialLine?: (line: string) => void;
  readonly signal?: AbortSignal;
}

export type VmEnding = 'reboot' | 'poweroff' | 'timeout' | 'exit';

export interface VmResult {
  /**
   * How the guest ended, told by the kernel's last words: "reboot: Restarting system" is a
   * reboot, "reboot: Power down" a power-off; any other end (a panic, a triple fault) is "exit".
   */
  readonly ending: VmEnding;
  /** Everything the guest printed on its serial console, with "\r" removed. */
  readonly serialLog: string;
  readonly durationMs: number;
}

export const QEMU_BINARY = 'qemu-system-x86_64';

/** What the kernel prints last before it resets or powers off the machine. */
export function endingFromSerialLog(serialLog: string): 'reboot' | 'poweroff' | 'exit' {
  const restart = serialLog.lastIndexOf('reboot: Restarting system');
  const powerDown = serialLog.lastIndexOf('reboot: Power down');
  if (restart < 0 && powerDown < 0) return 'exit';
  return restart > powerDown ? 'reboot' : 'poweroff';
}

/**
 * The disk: plain `-drive`; with `blkdebugConfigPath` through blkdebug; or with `writeLogPath` a `-blockdev` chain file → blklogwrites (log in
 * its own file node, 512-byte log sectors) → raw → virtio-blk. The device's write cache is on, so
 * the guest flushes as on a real disk and the log's FLUSH entries say what a power cut keeps; its
 * write-zeroes and discard are off, because blklogwrites before its 2024 fixes may place a
 * write-zeroes request's zeros away from its entry when requests overlap (QEMU builds differ in
 * which fixes they carry), and a discard's effect on a real disk is undefined anyway: the guest
 * then writes zeros as data.
 */
function diskArguments(options: RunVmOptions): string[] {
  const format = options.diskFormat ?? 'raw';
  if (options.writeLogPath !== undefined && options.blkdebugConfigPath !== undefined) {
    throw new Error('runVm: a write log and blkdebug rules on one disk are not supported');
  }
  if (options.blkdebugConfigPath !== undefined) {
    // Options rather than "blkdebug:CONFIG:IMAGE", which cannot hold a path with a colon.
    return [
      '-drive',
      `if=virtio,format=${format},file.driver=blkdebug,file.config=${options.blkdebugConfigPath.replaceAll(',', ',,')},file.image.driver=file,file.image.filename=${options.diskPath.replaceAll(',', ',,')}`,
    ];
  }
  if (options.writeLogPath === undefined) {
    return ['-drive', `file=${options.diskPath.replaceAll(',', ',,')},format=${format},if=virtio`];
  }
  // JSON, so no path needs QEMU's comma escaping.
  const node = {
    driver: format,
    'node-name': 'disk',
    file: {
      driver: 'blklogwrites',
      'log-sector-size': WRITE_LOG_SECTOR_BYTES,
      file: { driver: 'file', filename: options.diskPath },
      log: { driver: 'file', filename: options.writeLogPath },
    },
  };
  return [
    '-blockdev',
    JSON.stringify(node),
    '-device',
    'virtio-blk-pci,drive=disk,write-cache=on,write-zeroes=off,discard=off',
  ];
}

/** The log's sector: the granularity of its entries and of what a replay can tear. */
export const WRITE_LOG_SECTOR_BYTES = 512;

/** The qemu-system-x86_64 arguments for these options (pure; see docs/adr/0303-qemu-harness.md). */
export function qemuArguments(options: RunVmOptions): string[] {
  const args = [
    // KVM opens here but hangs at boot (FACTS.md): software emulation only.
    '-accel',
    'tcg',
    '-cpu',
    'max',
    '-smp',
    String(options.cpuCount ?? 2),
    '-m',
    String(options.memoryMiB ?? 1024),
    // The serial port is on stdio (multiplexed with the monitor, which we never talk to).
    '-nographic',
    // A guest reboot ends QEMU instead of booting again, so every run ends.
    '-no-reboot',
    ...diskArguments(options),
  ];
  if (options.kernelPath !== undefined) {
    args.push('-kernel', options.kernelPath);
    if (options.initrdPath !== undefined) args.push('-initrd', options.initrdPath);
    args.push('-append', options.append ?? 'console=ttyS0,115200 panic=-1');
  }
  return args;
}

/**
 * Boots a VM under QEMU's software emulation, hands each serial line to `onSerialLine` as it
 * comes, and resolves when the guest reboots, powers off, dies or runs out of time (it is killed
 * then). Rejects only when QEMU cannot run at all, or when `signal` aborts.
 */
export async function runVm(options: RunVmOptions): Promise<VmResult> {
  options.signal?.throwIfAborted();
  const startedMs = Date.now();
  const args = qemuArguments(options);
  // blklogwrites opens an existing file and starts its log at the beginning.
  if (options.writeLogPath !== undefined) await writeFile(options.writeLogPath, '');
  return new Promise((resolvePromise, rejectPromise) => {
    const child = spawn(QEMU_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: string[] = [];
    const stderr: string[] = [];
    let partialLine = '';
    let timedOut = false;
    let aborted = false;
    let settled = false;

    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      child.kill('SIGKILL');
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => {
      const clean = text.replaceAll('\r', '');
      chunks.push(clean);
      partialLine += clean;
      const lines = partialLine.split('\n');
      partialLine = lines.pop() ?? '';
      for (const line of lines) options.onSerialLine?.(line);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => stderr.push(text));

    const finish = (error: Error | undefined, exitCode: number | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (partialLine !== '') options.onSerialLine?.(partialLine);
      const serialLog = chunks.join('');
      const durationMs = Date.now() - startedMs;
      if (error !== undefined) {
        rejectPromise(error);
        return;
      }
      if (aborted) {
        rejectPromise(options.signal?.reason ?? new DOMException('The VM was stopped', 'AbortError'));
        return;
      }
      if (timedOut) {
        resolvePromise({ ending: 'timeout', serialLog, durationMs });
        return;
      }
      const ending = endingFromSerialLog(serialLog);
      if (exitCode !== 0 && ending === 'exit' && serialLog === '') {
        rejectPromise(
          new ReimageError(
            'REIMAGE_VM_FAILED',
            `QEMU did not start the VM (exit ${exitCode}): ${stderr.join('').trim()}`,
            { evidence: { command: QEMU_BINARY, args, exitCode: exitCode ?? -1 } },
          ),
        );
        return;
      }
      resolvePromise({ ending, serialLog, durationMs });
    };

    child.on('error', (error: Error & { code?: string }) => {
      if (error.code === 'ENOENT') {
        finish(
          new ReimageError(
            'REIMAGE_TOOL_MISSING',
            `${QEMU_BINARY} is not installed. Install the Debian package qemu-system-x86 and try again.`,
            { evidence: { command: QEMU_BINARY }, cause: error },
          ),
          null,
        );
        return;
      }
      finish(error, null);
    });
    child.on('close', (code) => finish(undefined, code));
  });
}
