import { lstat, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ignoreProgress, throttleProgress } from '../core/progress.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { readRootAccounts } from './account-db.ts';
import { describeEntries, type ObservedEntry, observeEntry } from './describe-entries.ts';
import { MANIFEST_FORMAT, MANIFEST_VERSION } from './manifest.ts';
import { packBundle } from './pack-bundle.ts';
import type { RetainRequest } from './retain-list.ts';
import { joinUnder } from './safe-path.ts';
import { selectPaths } from './select-paths.ts';
import { YIELD_EVERY, yieldToEventLoop } from './yield-to-event-loop.ts';

export interface CaptureOptions {
  /** The old root filesystem, mounted anywhere. */
  readonly root: string;
  readonly requests: readonly RetainRequest[];
  readonly bundlePath: string;
  /** Recorded as the source host; default: the old root's /etc/hostname, else this host's name. */
  readonly hostName?: string;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
  readonly onProgress?: OnProgress;
}

export interface CaptureSummary {
  readonly entries: number;
  /** Bytes of file content captured. */
  readonly bytes: number;
  readonly bundleSizeBytes: number;
  readonly missingOptional: string[];
  /** Entries that cannot be retained (sockets), with the reason. */
  readonly skipped: Array<{ path: string; reason: string }>;
  readonly warnings: string[];
}

/**
 * Captures the requested paths of the old root into a bundle (a pax tar with a manifest):
 * selects the paths (select-paths), reads and describes each entry (describe-entries), packs the
 * tar (pack-bundle). Every request is resolved before the bundle is created, so a missing
 * required path fails with nothing written.
 */
export async function captureBundle(options: CaptureOptions): Promise<CaptureSummary> {
  const root = resolve(options.root);
  const log = options.log ?? silentLogger;
  const signal = options.signal;
  const progress = throttleProgress(options.onProgress ?? ignoreProgress);
  const rootStats = await lstat(`${root}/`).catch(() => null);
  if (rootStats?.isDirectory() !== true) {
    throw new ReimageError(
      'REIMAGE_RETAIN_ROOT_MISSING',
      `The root ${root} is not a directory. Mount the old root there first.`,
      { evidence: { path: root } },
    );
  }

  const { selected, missingOptional } = await selectPaths(root, options.requests, signal);
  for (const pattern of missingOptional) log.info(`optional path not present: ${pattern}`);
  const observed: ObservedEntry[] = [];
  for (const [index, path] of selected.entries()) {
    if ((index + 1) % YIELD_EVERY === 0) await yieldToEventLoop(signal);
    observed.push(observeEntry(path));
  }
  // Read without following a planted /etc/passwd symlink out of the old root.
  // Its warnings (an unreadable passwd: owners keep their numeric ids) are the operator's to see.
  const { accounts, warnings } = await readRootAccounts(root);
  for (const warning of warnings) log.warn(warning);
  const { described, skipped } = describeEntries(observed, accounts);
  for (const { path, reason } of skipped) log.warn(`skipped ${path}: ${reason}`);

  const bundlePath = resolve(options.bundlePath);
  const packed = await packBundle(
    described,
    {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      capturedAt: new Date().toISOString(),
      sourceHost: options.hostName ?? (await sourceHostName(root)),
      requests: options.requests.map((r) => ({ pattern: r.pattern, optional: r.optional })),
      missingOptional,
      skipped,
    },
    bundlePath,
    progress,
    signal,
  );
  const totalBytes = packed.bytes;
  progress.flush({
    phase: 'capture',
    done: packed.bytes,
    total: totalBytes,
    unit: 'bytes',
    counters: { entries: packed.entries.length },
  });
  log.info(`captured ${packed.entries.length} entries (${packed.bytes} bytes of content) into ${bundlePath}`);
  return {
    entries: packed.entries.length,
    bytes: packed.bytes,
    bundleSizeBytes: packed.bundleSizeBytes,
    missingOptional,
    skipped,
    warnings,
  };
}

async function sourceHostName(root: string): Promise<string> {
  try {
    const text = (await readFile(joinUnder(root, ['etc', 'hostname']), 'utf8')).trim();
    if (text !== '') return text;
  } catch (e) {
    if (!isSystemError(e)) throw e;
  }
  return hostname();
}
