import { spawn } from 'node:child_process';
import { ReimageError } from './reimage-error.ts';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export interface RunCommandOptions {
  readonly cwd?: string;
  readonly input?: string | Buffer;
  readonly env?: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal;
  /** Do not throw on a non-zero exit; return it. */
  readonly allowFailure?: boolean;
}

/**
 * Runs a system tool without a shell (arguments are never re-split, so paths with spaces are
 * safe) and collects its output. A missing tool or a non-zero exit is a ReimageError naming
 * the command, so the operator sees what failed and with what message.
 */
export async function runCommand(
  command: string,
  args: readonly string[],
  options: RunCommandOptions = {},
): Promise<CommandResult> {
  return new Promise((resolvePromise, rejectPromise) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      signal: options.signal,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error: Error & { code?: string }) => {
      if (error.code === 'ENOENT') {
        rejectPromise(
          new ReimageError(
            'REIMAGE_TOOL_MISSING',
            `The system tool "${command}" is not installed. Install it and try again.`,
            {
              evidence: { command },
              cause: error,
            },
          ),
        );
        return;
      }
      rejectPromise(error);
    });
    child.on('close', (code, signalName) => {
      const result = {
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
        exitCode: code ?? 128,
      };
      if (result.exitCode !== 0 && options.allowFailure !== true) {
        rejectPromise(
          new ReimageError(
            'REIMAGE_TOOL_FAILED',
            `"${command} ${args.join(' ')}" failed (${signalName ?? `exit ${result.exitCode}`}): ${result.stderr.trim() || result.stdout.trim()}`,
            { evidence: { command, args: [...args], exitCode: result.exitCode } },
          ),
        );
        return;
      }
      resolvePromise(result);
    });
    if (options.input !== undefined && child.stdin !== null) child.stdin.end(options.input);
  });
}
