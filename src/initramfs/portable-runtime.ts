import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { DEFAULT_LIBRARY_DIRS, readElfDynamicInfo } from './elf-closure.ts';
import { findBusybox } from './find-busybox.ts';
import { listHostTree } from './host-entry.ts';
import { archivePathForHost } from './merged-usr.ts';
import type { ArchiveEntry } from './newc-archive.ts';
import { findNodeRuntime } from './node-runtime.ts';
import { type PlannedEntry, PORTABLE_PARTS, planPortable } from './plan-initramfs.ts';
import { CLI_ENTRY, findProjectFiles } from './project-files.ts';
import { resolveTools } from './resolve-tool.ts';

/** The manifest at the top of a portable runtime: what it carries and how its launchers run it. */
export const RUNTIME_MANIFEST = 'reimage-runtime.json';
/** Where the wrappers are: the one directory to put on PATH. */
export const RUNTIME_BIN_DIR = 'bin';
/** Where the runtime keeps GRUB's i386-pc files (arm builds the recovery core.img from them). */
export const RUNTIME_GRUB_DIR = 'usr/lib/grub/i386-pc';

/** One entry of the portable part, as the manifest records it (its bytes are the file at `path`). */
export interface RuntimeEntry {
  readonly path: string;
  readonly kind: 'file' | 'directory' | 'symlink';
  readonly mode: number;
  readonly part: PlannedEntry['part'];
  readonly sizeBytes: number;
  /** For a symlink: the target as the initramfs keeps it (the tree on disk has it made relative). */
  readonly linkTarget?: string;
}

/** reimage-runtime.json (format "reimage-runtime", version 1). Paths are relative to the runtime. */
export interface RuntimeManifest {
  readonly format: 'reimage-runtime';
  readonly version: 1;
  readonly reimageVersion: string;
  /** The dynamic loader every carried ELF program is started through. */
  readonly loader: string;
  /** The loader's --library-path, in search order. */
  readonly libraryDirs: readonly string[];
  readonly node: string;
  readonly cli: string;
  readonly grubDir: string;
  readonly tools: readonly { readonly name: string; readonly path: string }[];
  /**
   * The initramfs's portable part (planPortable of the initramfs's own tools): a reimage
   * initramfs can be built from the runtime alone. Its files are the tree's; its symlinks are
   * kept here (a busybox applet the initramfs links may be a full tool in the tree).
   */
  readonly initramfsEntries: readonly RuntimeEntry[];
}

export interface PortableRuntimeSummary {
  readonly dir: string;
  readonly manifest: RuntimeManifest;
  /** Entries of the tree (GRUB's and the wrappers left out). */
  readonly entryCount: number;
  /** Bytes of the files in the tree (GRUB's included). */
  readonly contentBytes: number;
}

/**
 * The target a symlink of the runtime tree gets on disk: relative, and with /bin, /lib… folded
 * into /usr as the tree is laid out, so that it resolves inside the runtime wherever the runtime
 * is unpacked (an absolute target would name the host's file: its loader, its libc).
 */
export function runtimeLinkTarget(entryPath: string, linkTarget: string): string {
  const dir = posix.dirname(`/${entryPath}`);
  const absolute = posix.resolve(dir, linkTarget);
  const inTree = `/${archivePathForHost(absolute)}`;
  return posix.relative(dir, inTree) || '.';
}

/**
 * The wrapper a tool is run through: the runtime's loader with the runtime's libraries, never the
 * host's loader or libc (the old OS may have a glibc years older than the tools were built for).
 * `--argv0` keeps the name the program sees. The runtime's place comes from the wrapper's own
 * path, so the runtime works wherever it is unpacked.
 */
export function toolWrapperScript(o: {
  name: string;
  manifest: Pick<RuntimeManifest, 'loader' | 'libraryDirs'>;
  program: string;
  programArgs?: readonly string[];
  exports?: readonly string[];
}): string {
  const quote = (text: string): string => `'${text.replaceAll("'", "'\\''")}'`;
  const libraryPath = o.manifest.libraryDirs.map((dir) => `$r/${dir}`).join(':');
  return [
    '#!/bin/sh',
    `# reimage portable runtime: ${o.name} through the runtime's own loader and libraries, never the host's.`,
    // The runtime's root from this file's real place: through a symlink (ln -s …/bin/reimage
    // /usr/local/sbin/) or `sh reimage` too.
    'r=$(dirname "$(readlink -f "$0")")/..',
    ...(o.exports ?? []),
    `exec "$r/${o.manifest.loader}" --library-path "${libraryPath}" --argv0 ${quote(o.name)} "$r/${o.program}" ${(o.programArgs ?? []).map((arg) => `${arg} `).join('')}"$@"`,
    '',
  ].join('\n');
}

/** The `reimage` launcher: Node through the runtime's loader, the runtime's wrappers first on PATH. */
export function reimageLauncherScript(manifest: Pick<RuntimeManifest, 'loader' | 'libraryDirs' | 'node' | 'cli'>) {
  return toolWrapperScript({
    name: 'node',
    manifest,
    program: manifest.node,
    programArgs: ['--disable-warning=ExperimentalWarning', `"$r/${manifest.cli}"`],
    exports: [
      `PATH="$r/${RUNTIME_BIN_DIR}:\${PATH:-/usr/sbin:/usr/bin:/sbin:/bin}"`,
      'export PATH',
      // arm builds the recovery core.img from GRUB's files; the old OS may have none, or another GRUB.
      `REIMAGE_GRUB_DIR="\${REIMAGE_GRUB_DIR:-$r/${RUNTIME_GRUB_DIR}}"`,
      'export REIMAGE_GRUB_DIR',
      // V8's compile cache roughly halves Node's start on a slow CPU; it lives in the runtime.
      `NODE_COMPILE_CACHE="\${NODE_COMPILE_CACHE:-$r/.node-compile-cache}"`,
      'export NODE_COMPILE_CACHE',
    ],
  });
}

/** The library directories of the planned libraries: the loader's default order first, then the rest. */
function libraryDirsOf(entries: readonly PlannedEntry[]): string[] {
  const dirs = new Set(entries.filter((p) => p.part === 'libraries').map((p) => posix.dirname(p.entry.path)));
  const ordered = [...new Set(DEFAULT_LIBRARY_DIRS.map((dir) => archivePathForHost(dir)))].filter((dir) =>
    dirs.has(dir),
  );
  return [...ordered, ...[...dirs].filter((dir) => !ordered.includes(dir)).sort()];
}

function runtimeEntry(planned: PlannedEntry): RuntimeEntry {
  const { entry } = planned;
  if (entry.kind !== 'file' && entry.kind !== 'directory' && entry.kind !== 'symlink') {
    throw new Error(`portable runtime: unexpected ${entry.kind} at ${entry.path}`);
  }
  return {
    path: entry.path,
    kind: entry.kind,
    mode: entry.mode,
    part: planned.part,
    sizeBytes: planned.sizeBytes,
    ...(entry.linkTarget === undefined ? {} : { linkTarget: entry.linkTarget }),
  };
}

async function writeTreeEntry(outDir: string, planned: PlannedEntry): Promise<void> {
  const { entry } = planned;
  const path = join(outDir, entry.path);
  await mkdir(posix.dirname(path), { recursive: true });
  if (entry.kind === 'directory') {
    await mkdir(path, { recursive: true });
    await chmod(path, entry.mode);
  } else if (entry.kind === 'symlink' && entry.linkTarget !== undefined) {
    await symlink(runtimeLinkTarget(entry.path, entry.linkTarget), path);
  } else if (entry.kind === 'file' && entry.sourcePath !== undefined) {
    await copyFile(entry.sourcePath, path);
    await chmod(path, entry.mode);
  } else {
    throw new Error(`portable runtime: cannot write ${entry.kind} ${entry.path}`);
  }
}

/**
 * Builds a portable runtime into `outDir` (which must be empty or absent): the pinned Node, the
 * project and its production packages, busybox, the tools `tools` names with their ELF closure
 * (loader included), GRUB's i386-pc files, a wrapper per tool and the `reimage` launcher in bin/,
 * and the manifest. The tree is planned as the initramfs's portable part is (planPortable), and
 * the manifest lists that part for `initramfsTools` (a subset of `tools`), so arm builds on the
 * machine the very initramfs the build host would have built.
 */
export async function buildPortableRuntime(o: {
  outDir: string;
  tools: readonly string[];
  /** The tools the recovery initramfs carries (default: all of `tools`). */
  initramfsTools?: readonly string[];
  projectDir: string;
  grubDir: string;
  log?: Logger;
}): Promise<PortableRuntimeSummary> {
  const log = o.log ?? silentLogger;
  const existing = await readdir(o.outDir).catch(() => []);
  if (existing.length > 0) {
    throw new ReimageError(
      'REIMAGE_RUNTIME_OUT_NOT_EMPTY',
      `${o.outDir} is not empty; the runtime is built into an empty or new directory. Remove it or name another.`,
      { evidence: { path: o.outDir } },
    );
  }
  const tools = await resolveTools([...o.tools, ...(o.initramfsTools ?? [])]);
  const runtime = await findNodeRuntime(o.projectDir);
  const found = { busybox: await findBusybox(), project: await findProjectFiles(o.projectDir), runtime };
  const planned = planPortable({ tools, ...found });
  const initramfsToolNames = new Set(o.initramfsTools ?? o.tools);
  const forInitramfs = planPortable({ tools: tools.filter((tool) => initramfsToolNames.has(tool.name)), ...found });
  const interpreter = (await readElfDynamicInfo(runtime.node.hostPath)).interpreter;
  if (interpreter === undefined) throw new Error(`${runtime.node.hostPath} names no dynamic loader`);
  const nodeEntry = planned.find((p) => p.part === 'node' && p.entry.kind === 'file');
  if (nodeEntry === undefined) throw new Error('portable runtime: the plan carries no Node binary');
  const packageJson = JSON.parse(await readFile(join(o.projectDir, 'package.json'), 'utf8')) as { version?: string };
  const manifest: RuntimeManifest = {
    format: 'reimage-runtime',
    version: 1,
    reimageVersion: packageJson.version ?? 'unknown',
    loader: archivePathForHost(interpreter),
    libraryDirs: libraryDirsOf(planned),
    node: nodeEntry.entry.path,
    cli: `reimage/${CLI_ENTRY}`,
    grubDir: RUNTIME_GRUB_DIR,
    tools: tools.map((tool) => ({ name: tool.name, path: archivePathForHost(tool.hostPath) })),
    initramfsEntries: forInitramfs.map(runtimeEntry),
  };

  log.info(`Writing the portable runtime (${planned.length} entries) to ${o.outDir}`);
  await mkdir(o.outDir, { recursive: true });
  let contentBytes = 0;
  for (const entry of planned) {
    await writeTreeEntry(o.outDir, entry);
    contentBytes += entry.sizeBytes;
  }
  for (const host of await listHostTree(o.grubDir)) {
    const at = join(o.outDir, RUNTIME_GRUB_DIR, host.relativePath);
    await mkdir(posix.dirname(at), { recursive: true });
    if (host.kind === 'directory') await mkdir(at, { recursive: true });
    else if (host.kind === 'file') {
      await copyFile(host.hostPath, at);
      contentBytes += host.sizeBytes;
    }
  }
  const binDir = join(o.outDir, RUNTIME_BIN_DIR);
  await mkdir(binDir, { recursive: true });
  for (const tool of manifest.tools) {
    await writeFile(join(binDir, tool.name), toolWrapperScript({ name: tool.name, manifest, program: tool.path }), {
      mode: 0o755,
    });
  }
  await writeFile(join(binDir, 'reimage'), reimageLauncherScript(manifest), { mode: 0o755 });
  await writeFile(join(o.outDir, RUNTIME_MANIFEST), `${JSON.stringify(manifest, null, 1)}\n`);
  return { dir: o.outDir, manifest, entryCount: planned.length, contentBytes };
}

/**
 * buildPortableRuntime packed as one gzip'd tar (busybox and every old OS unpack it), for the
 * one copy command that puts it on a machine. Owners are root's, as numbers.
 */
export async function buildPortableRuntimeArchive(o: {
  outPath: string;
  tools: readonly string[];
  initramfsTools?: readonly string[];
  projectDir: string;
  grubDir: string;
  log?: Logger;
  signal?: AbortSignal;
}): Promise<PortableRuntimeSummary & { readonly archiveBytes: number }> {
  const treeDir = await mkdtemp(join(posix.dirname(o.outPath), '.reimage-runtime-'));
  try {
    const summary = await buildPortableRuntime({ ...o, outDir: treeDir });
    await runCommand('tar', ['-C', treeDir, '--numeric-owner', '--owner=0', '--group=0', '-czf', o.outPath, '.'], {
      ...(o.signal === undefined ? {} : { signal: o.signal }),
    });
    return { ...summary, dir: o.outPath, archiveBytes: (await stat(o.outPath)).size };
  } finally {
    await rm(treeDir, { recursive: true, force: true });
  }
}

/** The runtime a project directory sits in (`<runtime>/reimage`), when it was started from one. */
export async function findPortableRuntime(
  projectDir: string,
): Promise<{ dir: string; manifest: RuntimeManifest } | undefined> {
  const dir = posix.dirname(projectDir.replace(/\/+$/, ''));
  const text = await readFile(join(dir, RUNTIME_MANIFEST), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  return { dir, manifest: parseRuntimeManifest(text, join(dir, RUNTIME_MANIFEST)) };
}

export function parseRuntimeManifest(text: string, path: string): RuntimeManifest {
  let parsed: Partial<RuntimeManifest>;
  try {
    parsed = JSON.parse(text) as Partial<RuntimeManifest>;
  } catch (cause) {
    throw damaged(path, 'it is not JSON', cause);
  }
  if (parsed.format !== 'reimage-runtime' || parsed.version !== 1 || !Array.isArray(parsed.initramfsEntries)) {
    throw damaged(path, `format ${String(parsed.format)} version ${String(parsed.version)}`);
  }
  return parsed as RuntimeManifest;
}

function damaged(path: string, why: string, cause?: unknown): ReimageError {
  return new ReimageError(
    'REIMAGE_RUNTIME_DAMAGED',
    `The portable runtime's ${path} cannot be used (${why}). Copy the runtime to the machine again (reimage runtime --out).`,
    { evidence: { path }, ...(cause === undefined ? {} : { cause }) },
  );
}

/**
 * The initramfs's portable part read back from a runtime: each file is the runtime's own copy,
 * checked against the size the manifest recorded (a truncated copy must not be booted).
 */
export async function portableEntriesFrom(runtime: {
  dir: string;
  manifest: RuntimeManifest;
}): Promise<PlannedEntry[]> {
  const planned: PlannedEntry[] = [];
  for (const item of runtime.manifest.initramfsEntries) {
    if (!PORTABLE_PARTS.has(item.part)) throw damaged(join(runtime.dir, RUNTIME_MANIFEST), `part ${item.part}`);
    let entry: ArchiveEntry;
    if (item.kind === 'file') {
      const sourcePath = join(runtime.dir, item.path);
      const sizeBytes = (await stat(sourcePath).catch(() => undefined))?.size;
      if (sizeBytes !== item.sizeBytes) {
        throw damaged(
          sourcePath,
          `${sizeBytes === undefined ? 'missing' : `${sizeBytes} bytes`}, expected ${item.sizeBytes}`,
        );
      }
      entry = { path: item.path, kind: 'file', mode: item.mode, sourcePath };
    } else if (item.kind === 'symlink') {
      entry = { path: item.path, kind: 'symlink', mode: 0o777, linkTarget: item.linkTarget ?? '' };
    } else {
      entry = { path: item.path, kind: 'directory', mode: item.mode };
    }
    planned.push({ entry, part: item.part, sizeBytes: item.sizeBytes });
  }
  return planned;
}
