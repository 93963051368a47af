import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';

/** The parsed `modules.*` index of one kernel: what modprobe itself reads. */
export interface ModuleIndex {
  /** Canonical module name (underscores) → its path relative to the modules directory. */
  readonly pathByName: ReadonlyMap<string, string>;
  /** Module path → the full list of paths it depends on, as modules.dep lists them. */
  readonly depsByPath: ReadonlyMap<string, readonly string[]>;
  /** Canonical names of modules built into the kernel. */
  readonly builtin: ReadonlySet<string>;
  /** Canonical name → names (or aliases) to load before and after it (modules.softdep). */
  readonly softdeps: ReadonlyMap<string, readonly string[]>;
  /** Alias → canonical module names (modules.alias), used to resolve softdeps like "crypto-crc32c". */
  readonly aliases: ReadonlyMap<string, readonly string[]>;
}

/** modprobe treats "-" and "_" in module names as the same character; we use "_". */
export function canonicalModuleName(name: string): string {
  return name.replaceAll('-', '_');
}

/** "kernel/fs/nls/nls_iso8859-1.ko.zst" → "nls_iso8859_1". */
export function moduleNameFromPath(path: string): string {
  return canonicalModuleName(basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, ''));
}

export function parseModulesDep(text: string): Map<string, readonly string[]> {
  const depsByPath = new Map<string, readonly string[]>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    if (path === '') continue;
    depsByPath.set(
      path,
      line
        .slice(colon + 1)
        .split(/\s+/)
        .filter((dep) => dep !== ''),
    );
  }
  return depsByPath;
}

/** "softdep ext4 pre: crypto-crc32c post: x" → ext4 → [crypto-crc32c, x]. */
export function parseModulesSoftdep(text: string): Map<string, readonly string[]> {
  const softdeps = new Map<string, readonly string[]>();
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== 'softdep' || words[1] === undefined) continue;
    const names = words.slice(2).filter((word) => word !== 'pre:' && word !== 'post:');
    const name = canonicalModuleName(words[1]);
    softdeps.set(name, [...(softdeps.get(name) ?? []), ...names]);
  }
  return softdeps;
}

export function parseModulesAlias(text: string): Map<string, readonly string[]> {
  const aliases = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== 'alias' || words[1] === undefined || words[2] === undefined) continue;
    // Only plain aliases matter here (softdeps name "crypto-crc32c"), not device-ID patterns.
    if (/[*?[]/.test(words[1])) continue;
    const list = aliases.get(words[1]) ?? [];
    list.push(canonicalModuleName(words[2]));
    aliases.set(words[1], list);
  }
  return aliases;
}

async function readIndexFile(modulesDir: string, name: string, required: boolean): Promise<string> {
  try {
    return await readFile(join(modulesDir, name), 'utf8');
  } catch (e) {
    if (!required && isSystemError(e) && e.code === 'ENOENT') return '';
    throw new ReimageError(
      'REIMAGE_INITRAMFS_MODULES_INDEX',
      `Cannot read ${name} in "${modulesDir}". Pass the kernel's lib/modules/<version> directory; run "depmod -b ROOT VERSION" if modules.dep is missing.`,
      { evidence: { path: join(modulesDir, name) }, cause: e },
    );
  }
}

export async function loadModuleIndex(modulesDir: string): Promise<ModuleIndex> {
  const [dep, builtin, softdep, alias] = await Promise.all([
    readIndexFile(modulesDir, 'modules.dep', true),
    readIndexFile(modulesDir, 'modules.builtin', false),
    readIndexFile(modulesDir, 'modules.softdep', false),
    readIndexFile(modulesDir, 'modules.alias', false),
  ]);
  const depsByPath = parseModulesDep(dep);
  const pathByName = new Map<string, string>();
  for (const path of depsByPath.keys()) pathByName.set(moduleNameFromPath(path), path);
  const builtinNames = new Set(
    builtin
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => moduleNameFromPath(line.trim())),
  );
  return {
    pathByName,
    depsByPath,
    builtin: builtinNames,
    softdeps: parseModulesSoftdep(softdep),
    aliases: parseModulesAlias(alias),
  };
}

/**
 * The modules to carry so that `modprobe NAME` works for each requested name: each module's
 * dependencies from modules.dep (which lists the full transitive set), plus its softdeps when the
 * kernel has them as modules (ext4 asks for "crypto-crc32c" at mount time), dependencies first.
 * Names built into the kernel count as present and need no file. Pure: data in, data out.
 */
export function moduleClosure(
  index: ModuleIndex,
  moduleNames: readonly string[],
): { modules: readonly string[]; missing: readonly string[] } {
  const ordered: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];

  const visitPath = (path: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    // modules.dep lists deps so that the last one is loaded first (modprobe walks it backwards).
    const deps = index.depsByPath.get(path) ?? [];
    for (let i = deps.length - 1; i >= 0; i -= 1) {
      const dep = deps[i];
      if (dep !== undefined) visitPath(dep);
    }
    ordered.push(path);
    for (const soft of index.softdeps.get(moduleNameFromPath(path)) ?? []) visitName(soft, false);
  };

  const visitName = (rawName: string, required: boolean): void => {
    const name = canonicalModuleName(rawName);
    const path = index.pathByName.get(name);
    if (path !== undefined) {
      visitPath(path);
      return;
    }
    if (index.builtin.has(name)) return;
    const targets = index.aliases.get(rawName) ?? index.aliases.get(name) ?? [];
    let found = false;
    for (const target of targets) {
      const targetPath = index.pathByName.get(target);
      if (targetPath !== undefined) {
        visitPath(targetPath);
        found = true;
      } else if (index.builtin.has(target)) {
        found = true;
      }
    }
    if (!found && required && !missing.includes(rawName)) missing.push(rawName);
  };

  for (const name of moduleNames) visitName(name, true);
  return { modules: ordered, missing };
}

/**
 * Reads `modulesDir`'s modules.dep (and modules.builtin, modules.softdep, modules.alias) and
 * returns the module files to carry for `moduleNames`, dependencies first, and the names that
 * this kernel has neither as a module nor built in.
 */
export async function resolveModuleClosure(
  modulesDir: string,
  moduleNames: readonly string[],
): Promise<{ modules: readonly string[]; missing: readonly string[] }> {
  return moduleClosure(await loadModuleIndex(modulesDir), moduleNames);
}
