import { cp } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { runCommand } from '../core/run-command.ts';
import { type HostTreeEntry, listHostTree } from './host-entry.ts';
import type { NodeRuntime } from './node-runtime.ts';

/**
 * Runs the CLI once (`--version` loads every verb) from a copy of the code laid out as in the
 * initramfs, with NODE_COMPILE_CACHE_PORTABLE so the cache hits wherever that layout sits, and
 * lists the cache it wrote (under `stageDir`, which the caller removes).
 */
export async function buildNodeCompileCache(
  projectDir: string,
  stageDir: string,
  runtime: NodeRuntime,
  signal: AbortSignal | undefined,
): Promise<HostTreeEntry[]> {
  for (const name of ['src', 'bin', 'package.json']) {
    await cp(join(projectDir, name), join(stageDir, name), { recursive: true, verbatimSymlinks: true });
  }
  // Real copies of the carried packages (not a symlink), so their cache entries hit too: zod,
  // yaml and fast-xml-parser are most of the JavaScript the CLI compiles.
  for (const { hostDir, projectPath } of runtime.packages) {
    await cp(hostDir, join(stageDir, projectPath), {
      recursive: true,
      verbatimSymlinks: true,
      filter: (source) => !source.slice(hostDir.length).includes(`${sep}node_modules`),
    });
  }
  const cacheDir = join(stageDir, '.node-compile-cache');
  await runCommand(
    runtime.node.hostPath,
    ['--disable-warning=ExperimentalWarning', join(stageDir, 'src', 'cli', 'main.ts'), '--version'],
    { env: { ...process.env, NODE_COMPILE_CACHE: cacheDir, NODE_COMPILE_CACHE_PORTABLE: '1' }, signal },
  );
  return listHostTree(cacheDir);
}
