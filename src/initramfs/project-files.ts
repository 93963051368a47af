import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import { describeHostPath, type HostEntry, type HostTreeEntry, listHostTree } from './host-entry.ts';

/** The CLI the initramfs runs (`/reimage/bin/reimage run`): the project files it carries are what this loads. */
export const CLI_ENTRY = 'src/cli/main.ts';

/**
 * Static `import … from '…'`, `export … from '…'` and bare `import '…'` statements at the start
 * of a line (multi-line specifier lists included). `import type` is left out: Node strips it, so
 * it loads nothing. Dynamic `import()` is left out on purpose: the demo's modules load that way,
 * only when the demo verb runs, and the initramfs never runs it.
 */
const STATIC_IMPORT = /^[ \t]*(?:import|export)[ \t]+(type[ \t]+)?(?:[^'";]*?[ \t\n]from[ \t]*)?['"]([^'"\n]+)['"]/gm;

/** The module specifiers a TypeScript file loads at run time, in the order written. */
export function runtimeImportSpecifiers(sourceText: string): string[] {
  const specifiers: string[] = [];
  for (const match of sourceText.matchAll(STATIC_IMPORT)) {
    const typeOnly = match[1] !== undefined;
    const specifier = match[2];
    if (!typeOnly && specifier !== undefined) specifiers.push(specifier);
  }
  return specifiers;
}

/**
 * The project's own files that `entry` loads, directly or not, as paths relative to the project
 * ("src/cli/main.ts"), sorted. Packages (`yaml`, `node:fs`) are not followed: the production
 * dependencies are carried whole. Only what the CLI loads goes in, so the demo (QEMU, fixture
 * builders) and the apt installer, which nothing the runner loads imports, stay out of the
 * initramfs (issue 8, section 4).
 */
export async function projectModuleClosure(
  readText: (relativePath: string) => Promise<string>,
  entry: string = CLI_ENTRY,
): Promise<string[]> {
  const found = new Set<string>();
  const pending = [entry];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (found.has(next)) continue;
    found.add(next);
    for (const specifier of runtimeImportSpecifiers(await readText(next))) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue;
      const resolved = posix.normalize(posix.join(posix.dirname(next), specifier));
      if (resolved.startsWith('../')) {
        throw new ReimageError(
          'REIMAGE_INITRAMFS_PROJECT_INVALID',
          `${next} imports "${specifier}", which is outside the project; the initramfs could not carry it.`,
          { evidence: { path: next, actual: specifier } },
        );
      }
      pending.push(resolved);
    }
  }
  return [...found].sort();
}

/** projectModuleClosure over the files of a project directory on this host. */
export function projectModuleClosureIn(projectDir: string, entry: string = CLI_ENTRY): Promise<string[]> {
  return projectModuleClosure(async (relativePath) => {
    try {
      return await readFile(posix.join(projectDir, relativePath), 'utf8');
    } catch (e) {
      throw new ReimageError(
        'REIMAGE_INITRAMFS_PROJECT_INVALID',
        `Cannot read ${relativePath} in ${projectDir}, which the CLI loads. Check the checkout is complete and build again.`,
        { evidence: { path: relativePath }, cause: e },
      );
    }
  }, entry);
}

/** The project as the initramfs carries it: package.json, the launcher (bin/) and the files the CLI loads. */
export async function findProjectFiles(
  projectDir: string,
): Promise<{ manifest: HostEntry & { readonly kind: 'file' }; files: HostTreeEntry[] }> {
  const manifest = await describeHostPath(join(projectDir, 'package.json'));
  if (manifest?.kind !== 'file') {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_PROJECT_INVALID',
      `${projectDir}/package.json is missing. Build from a reimage checkout.`,
      { evidence: { path: projectDir } },
    );
  }
  const files: HostTreeEntry[] = (await listHostTree(join(projectDir, 'bin'))).map((entry) => ({
    ...entry,
    relativePath: `bin/${entry.relativePath}`,
  }));
  for (const relativePath of await projectModuleClosureIn(projectDir)) {
    const entry = await describeHostPath(join(projectDir, relativePath));
    if (entry !== undefined) files.push({ ...entry, relativePath });
  }
  return { manifest, files };
}
