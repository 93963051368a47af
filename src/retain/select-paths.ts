import type { BigIntStats } from 'node:fs';
import { lstatSync, readdirSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import type { PatternComponent, RetainRequest } from './retain-list.ts';
import { parsePattern } from './retain-list.ts';
import { joinUnder } from './safe-path.ts';
import { YIELD_EVERY, yieldToEventLoop } from './yield-to-event-loop.ts';

/** A path of the old root that goes into the bundle, with what lstat said about it. */
export interface SelectedPath {
  /** The bundle path ("/etc/ssh/ssh_host_ed25519_key"). */
  readonly path: string;
  /** Where it is on this host (under the root). */
  readonly sourcePath: string;
  readonly stats: BigIntStats;
}

export interface Selection {
  /** Every entry to capture, in archive order: a directory right before its contents. */
  readonly selected: SelectedPath[];
  readonly missingOptional: string[];
}

/** Component-wise order, so a directory always comes right before its contents ("a/b" before "a b"). */
export function sortedForArchive(paths: string[]): string[] {
  const keyed = paths.map((path) => ({ path, components: path.split('/') }));
  keyed.sort((a, b) => compareComponents(a.components, b.components));
  return keyed.map((k) => k.path);
}

function compareComponents(left: readonly string[], right: readonly string[]): number {
  for (let i = 0; i < Math.min(left.length, right.length); i += 1) {
    const l = left[i] ?? '';
    const r = right[i] ?? '';
    if (l !== r) return l < r ? -1 : 1;
  }
  return left.length - right.length;
}

async function lstatOrNull(path: string): Promise<BigIntStats | null> {
  try {
    return await lstat(path, { bigint: true });
  } catch (e) {
    if (isSystemError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return null;
    throw e;
  }
}

export function checkName(path: string): void {
  // Node decodes names as UTF-8; bytes that are not become U+FFFD and could not be written back.
  if (path.includes('\uFFFD')) {
    throw new ReimageError(
      'REIMAGE_RETAIN_NAME_NOT_UTF8',
      `The name ${JSON.stringify(path)} is not valid UTF-8, which retention bundles cannot carry. Rename it on the old system or leave it out of the list.`,
      { evidence: { path } },
    );
  }
}

/** Expands one pattern under the root, never through a symlink. Returns absolute bundle paths. */
async function expandPattern(
  root: string,
  pattern: string,
  components: readonly PatternComponent[],
): Promise<string[]> {
  const found: string[] = [];
  const walk = async (index: number, prefix: readonly string[]): Promise<void> => {
    if (index === components.length) {
      if (prefix.length > 0) found.push(`/${prefix.join('/')}`);
      return;
    }
    const component = components[index];
    if (component === undefined) return;
    const isLast = index === components.length - 1;
    if (component.kind === 'literal') {
      const next = [...prefix, component.name];
      const stats = await lstatOrNull(joinUnder(root, next));
      if (stats === null) return;
      if (!isLast && stats.isSymbolicLink()) {
        throw new ReimageError(
          'REIMAGE_RETAIN_PATH_THROUGH_SYMLINK',
          `The retained path ${pattern} goes through /${next.join('/')}, which is a symlink in the old root. List the path the symlink points to instead.`,
          { evidence: { path: `/${next.join('/')}`, field: pattern } },
        );
      }
      if (!isLast && !stats.isDirectory()) return;
      await walk(index + 1, next);
      return;
    }
    let names: string[];
    try {
      names = await readdir(joinUnder(root, prefix));
    } catch (e) {
      if (isSystemError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return;
      throw e;
    }
    names.sort();
    if (component.kind === 'globstar') {
      await walk(index + 1, prefix);
      for (const name of names) {
        if (name.startsWith('.')) continue;
        const stats = await lstatOrNull(joinUnder(root, [...prefix, name]));
        if (stats?.isDirectory() === true) await walk(index, [...prefix, name]);
      }
      return;
    }
    for (const name of names) {
      if (!component.regex.test(name)) continue;
      const next = [...prefix, name];
      if (!isLast) {
        const stats = await lstatOrNull(joinUnder(root, next));
        if (stats?.isDirectory() !== true) continue;
      }
      await walk(index + 1, next);
    }
  };
  await walk(0, []);
  return [...new Set(found)];
}

/**
 * Resolves every request under the root (never through a symlink) and walks each retained
 * directory recursively. A missing required path fails here, before anything is written.
 */
export async function selectPaths(
  root: string,
  requests: readonly RetainRequest[],
  signal?: AbortSignal,
): Promise<Selection> {
  const missingOptional: string[] = [];
  const missingRequired: string[] = [];
  const matched = new Set<string>();
  for (const request of requests) {
    signal?.throwIfAborted();
    const paths = await expandPattern(root, request.pattern, parsePattern(request.pattern));
    if (paths.length === 0) {
      (request.optional ? missingOptional : missingRequired).push(request.pattern);
      continue;
    }
    for (const path of paths) matched.add(path);
  }
  if (missingRequired.length > 0) {
    throw new ReimageError(
      'REIMAGE_RETAIN_REQUIRED_MISSING',
      `Required retained path${missingRequired.length > 1 ? 's' : ''} missing in ${root}: ${missingRequired.join(', ')}. Check the old root is the right filesystem, or mark the line optional with "?".`,
      { evidence: { path: root, actual: missingRequired } },
    );
  }

  // A retained directory is retained recursively, every entry with its own metadata.
  const statsByPath = new Map<string, BigIntStats>();
  // Synchronous calls in the per-entry loops: a thread-pool round trip per lstat costs ~10x the
  // syscall itself, and there is nothing to overlap (docs/adr/0103). The loops yield now and then
  // so that an abort or a progress display still gets the event loop.
  const visit = async (path: string): Promise<void> => {
    if (statsByPath.has(path)) return;
    if (statsByPath.size % YIELD_EVERY === 0) await yieldToEventLoop(signal);
    checkName(path);
    const stats = lstatSync(joinUnder(root, path.split('/').slice(1)), { bigint: true });
    statsByPath.set(path, stats);
    if (!stats.isDirectory()) return;
    const names = readdirSync(joinUnder(root, path.split('/').slice(1)));
    for (const name of names) await visit(`${path}/${name}`);
  };
  for (const path of matched) await visit(path);
  const selected: SelectedPath[] = [];
  for (const path of sortedForArchive([...statsByPath.keys()])) {
    const stats = statsByPath.get(path);
    if (stats !== undefined) selected.push({ path, sourcePath: joinUnder(root, path.split('/').slice(1)), stats });
  }
  return { selected, missingOptional };
}
