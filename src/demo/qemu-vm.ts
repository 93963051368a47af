import { spawn } from 'node:child_process';
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
   * is opened through it, so the guest sees the errors its rules inject.
   */
  readonly blkdebugConfigPath?: string;
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
    '-drive',
    options.blkdebugConfigPath === undefined
      ? `file=${options.diskPath.replaceAll(',', ',,')},format=${options.diskFormat ?? 'raw'},if=virtio`
      : // Options rather than "blkdebug:CONFIG:IMAGE", which cannot hold a path with a colon.
        `if=virtio,format=${options.diskFormat ?? 'raw'},file.driver=blkdebug,file.config=${options.blkdebugConfigPath.replaceAll(',', ',,')},file.image.driver=file,file.image.filename=${options.diskPath.replaceAll(',', ',,')}`,
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
