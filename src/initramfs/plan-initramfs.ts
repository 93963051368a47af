import { posix } from 'node:path';
import { ReimageError } from '../core/reimage-error.ts';
import type { Busybox } from './find-busybox.ts';
import type { FoundFirmware } from './find-firmware.ts';
import type { KernelFiles } from './find-kernel-files.ts';
import type { HostEntry, HostTreeEntry } from './host-entry.ts';
import { INIT_PLAN_PATH } from './init-script.ts';
import { archivePathForHost, MERGED_USR_DIRS, MERGED_USR_LINKS } from './merged-usr.ts';
import type { ArchiveEntry } from './newc-archive.ts';
import type { NodeRuntime } from './node-runtime.ts';
import type { ResolvedTool } from './resolve-tool.ts';

/** The parts of an initramfs, as `--list` shows them, in the order the summary lists them. */
export const INITRAMFS_PARTS = [
  'init',
  'plan',
  'skeleton',
  'busybox',
  'node',
  'libraries',
  'project',
  'node-modules',
  'tools',
  'kernel-modules',
  'firmware',
  'node-compile-cache',
] as const;
export type InitramfsPart = (typeof INITRAMFS_PARTS)[number];

/** Where the project lives inside the initramfs: /reimage/bin/reimage is the launcher. */
export const PROJECT_ARCHIVE_DIR = 'reimage';
/** Where the optional V8 compile cache sits in the initramfs (next to the code it caches). */
export const COMPILE_CACHE_ARCHIVE_DIR = `${PROJECT_ARCHIVE_DIR}/.node-compile-cache`;

/**
 * What the initramfs and the portable runtime share, already found on the host: the tools with
 * their libraries, busybox, the project and Node (src/initramfs/portable-runtime.ts).
 */
export interface PortableInputs {
  readonly tools: readonly ResolvedTool[];
  readonly busybox: Busybox;
  /** The project's package.json, its launcher tree (bin/) and the source files the CLI loads. */
  readonly project: {
    readonly manifest: HostEntry & { readonly kind: 'file' };
    readonly files: readonly HostTreeEntry[];
  };
  readonly runtime: NodeRuntime;
}

/** The parts of the initramfs the portable runtime carries too (planPortable gives them). */
export const PORTABLE_PARTS: ReadonlySet<InitramfsPart> = new Set([
  'busybox',
  'node',
  'libraries',
  'project',
  'node-modules',
  'tools',
]);

/**
 * Everything the initramfs is made of: the portable part either found on the host or already
 * planned (read back from a portable runtime's manifest), plus what is the machine's own. The
 * planner reads nothing.
 */
export type InitramfsInputs = InitramfsOwnInputs & (PortableInputs | { readonly portable: readonly PlannedEntry[] });

export interface InitramfsOwnInputs {
  readonly planBytes: Uint8Array;
  readonly initScript: string;
  readonly kernel: KernelFiles;
  readonly firmware: readonly FoundFirmware[];
  /** The V8 compile cache's files, when one was built. */
  readonly compileCache?: readonly HostTreeEntry[];
}

/** One archive entry, the part it belongs to and its content size. */
export interface PlannedEntry {
  readonly entry: ArchiveEntry;
  readonly part: InitramfsPart;
  readonly sizeBytes: number;
}

/** Collects entries by path; the same path twice must be the same thing (first part kept). */
class EntryCollector {
  readonly byPath = new Map<string, PlannedEntry>();

  add(entry: ArchiveEntry, part: InitramfsPart, sizeBytes = 0): void {
    const existing = this.byPath.get(entry.path);
    if (existing !== undefined) {
      const same =
        existing.entry.kind === entry.kind &&
        existing.entry.sourcePath === entry.sourcePath &&
        existing.entry.linkTarget === entry.linkTarget;
      if (same) return;
      throw new ReimageError(
        'REIMAGE_INITRAMFS_ENTRY_DUPLICATE',
        `Two different things want the path "${entry.path}" in the initramfs (${existing.part} and ${part}).`,
        { evidence: { path: entry.path, expected: existing.part, actual: part } },
      );
    }
    this.byPath.set(entry.path, { entry, part, sizeBytes });
  }

  /** A host entry at `archivePath`. */
  addHost(host: HostEntry, archivePath: string, part: InitramfsPart): void {
    if (host.kind === 'symlink') {
      this.add({ path: archivePath, kind: 'symlink', mode: 0o777, linkTarget: host.linkTarget }, part);
    } else if (host.kind === 'directory') {
      this.add({ path: archivePath, kind: 'directory', mode: host.mode }, part);
    } else {
      this.add({ path: archivePath, kind: 'file', mode: host.mode, sourcePath: host.hostPath }, part, host.sizeBytes);
    }
  }

  /** Host paths (chains and libraries, parents free of symlinks) at their merged-/usr places. */
  addHostPaths(hosts: readonly HostEntry[], part: InitramfsPart): void {
    for (const host of hosts) {
      const archivePath = archivePathForHost(host.hostPath);
      // The host's own /lib -> usr/lib and the like are already in the skeleton.
      if (host.kind === 'symlink' && MERGED_USR_DIRS.has(archivePath)) continue;
      if (host.kind === 'directory') continue;
      this.addHost(host, archivePath, part);
    }
  }

  addTree(tree: readonly HostTreeEntry[], archiveDir: string, part: InitramfsPart): void {
    for (const host of tree) this.addHost(host, `${archiveDir}/${host.relativePath}`, part);
  }
}

/**
 * Which entry lands where, from inputs already found on the host. Pure: the same inputs give
 * the same entries, and nothing is read.
 */
export function planInitramfs(inputs: InitramfsInputs): PlannedEntry[] {
  const collector = new EntryCollector();
  collector.add(
    { path: INIT_PLAN_PATH.slice(1), kind: 'file', mode: 0o600, data: inputs.planBytes },
    'plan',
    inputs.planBytes.length,
  );

  // The skeleton: merged-/usr links, mount points, /dev/console for the kernel's first output.
  for (const [name, target] of Object.entries(MERGED_USR_LINKS)) {
    collector.add({ path: name, kind: 'symlink', mode: 0o777, linkTarget: target }, 'skeleton');
    collector.add({ path: target, kind: 'directory', mode: 0o755 }, 'skeleton');
  }
  for (const dir of ['dev', 'proc', 'sys', 'run', 'mnt', 'root', 'etc', 'usr/local/bin', 'usr/local/sbin']) {
    collector.add({ path: dir, kind: 'directory', mode: dir === 'root' ? 0o700 : 0o755 }, 'skeleton');
  }
  collector.add({ path: 'tmp', kind: 'directory', mode: 0o1777 }, 'skeleton');
  collector.add({ path: 'dev/console', kind: 'char-device', mode: 0o600, deviceMajor: 5, deviceMinor: 1 }, 'skeleton');
  collector.add({ path: 'dev/null', kind: 'char-device', mode: 0o666, deviceMajor: 1, deviceMinor: 3 }, 'skeleton');
  collector.add({ path: 'etc/mtab', kind: 'symlink', mode: 0o777, linkTarget: '../proc/self/mounts' }, 'skeleton');

  const portable = 'portable' in inputs ? inputs.portable : planPortable(inputs);
  for (const planned of portable) collector.add(planned.entry, planned.part, planned.sizeBytes);

  const modulesDir = `usr/lib/modules/${inputs.kernel.version}`;
  for (const file of [...inputs.kernel.modules, ...inputs.kernel.indexFiles]) {
    collector.add(
      { path: `${modulesDir}/${file.relativePath}`, kind: 'file', mode: 0o644, sourcePath: file.hostPath },
      'kernel-modules',
      file.sizeBytes,
    );
  }
  for (const item of inputs.firmware) {
    collector.add(
      { path: `usr/lib/firmware/${item.fileName}`, kind: 'file', mode: 0o644, sourcePath: item.hostPath },
      'firmware',
      item.sizeBytes,
    );
  }

  const script = Buffer.from(inputs.initScript);
  collector.add({ path: 'init', kind: 'file', mode: 0o755, data: script }, 'init', script.length);

  if (inputs.compileCache !== undefined) {
    collector.add({ path: COMPILE_CACHE_ARCHIVE_DIR, kind: 'directory', mode: 0o755 }, 'node-compile-cache');
    collector.addTree(inputs.compileCache, COMPILE_CACHE_ARCHIVE_DIR, 'node-compile-cache');
  }
  return [...collector.byPath.values()];
}

/**
 * The part of the initramfs that is not the machine's own: the tools with their closure, busybox,
 * the project and Node. Pure. Tools go in before busybox so that an applet never shadows the full
 * version of a tool. The portable runtime is made of exactly these entries.
 */
export function planPortable(inputs: PortableInputs): PlannedEntry[] {
  const collector = new EntryCollector();
  const toolNames = new Set<string>();
  for (const tool of inputs.tools) {
    collector.addHostPaths(tool.chain, 'tools');
    collector.addHostPaths(tool.libraries, 'libraries');
    toolNames.add(posix.basename(tool.hostPath));
  }

  // Busybox: static, with a link per applet except itself and the tools carried in full.
  collector.add(
    { path: 'usr/bin/busybox', kind: 'file', mode: 0o755, sourcePath: inputs.busybox.hostPath },
    'busybox',
    inputs.busybox.sizeBytes,
  );
  for (const applet of inputs.busybox.applets) {
    if (applet === 'busybox' || applet.includes('/') || toolNames.has(applet)) continue;
    const path = `usr/bin/${applet}`;
    if (collector.byPath.has(path) || collector.byPath.has(`usr/sbin/${applet}`)) continue;
    collector.add({ path, kind: 'symlink', mode: 0o777, linkTarget: 'busybox' }, 'busybox');
  }

  const { manifest } = inputs.project;
  collector.add(
    { path: `${PROJECT_ARCHIVE_DIR}/package.json`, kind: 'file', mode: 0o644, sourcePath: manifest.hostPath },
    'project',
    manifest.sizeBytes,
  );
  collector.addTree(inputs.project.files, PROJECT_ARCHIVE_DIR, 'project');

  // Node: the pinned binary, where node_modules/.bin/node finds it, and the production packages.
  const { runtime } = inputs;
  collector.addHostPaths(runtime.libraries, 'libraries');
  for (const pkg of runtime.packages)
    collector.addTree(pkg.tree, `${PROJECT_ARCHIVE_DIR}/${pkg.projectPath}`, 'node-modules');
  const binLink = `${PROJECT_ARCHIVE_DIR}/node_modules/.bin/node`;
  const nodeFile = (path: string): ArchiveEntry => ({
    path,
    kind: 'file',
    mode: 0o755,
    sourcePath: runtime.node.hostPath,
  });
  if (runtime.nodePackage === undefined) {
    collector.add(nodeFile(binLink), 'node', runtime.node.sizeBytes);
  } else {
    const packageDir = `${PROJECT_ARCHIVE_DIR}/${runtime.nodePackage.projectPath}`;
    const { manifest: nodeManifest } = runtime.nodePackage;
    collector.add(
      { path: `${packageDir}/package.json`, kind: 'file', mode: 0o644, sourcePath: nodeManifest.hostPath },
      'node-modules',
      nodeManifest.sizeBytes,
    );
    const inPackage = `${packageDir}/${runtime.nodePackage.binaryPath}`;
    collector.add(nodeFile(inPackage), 'node', runtime.node.sizeBytes);
    const linkTarget = posix.relative(posix.dirname(binLink), inPackage);
    collector.add({ path: binLink, kind: 'symlink', mode: 0o777, linkTarget }, 'node');
  }
  return [...collector.byPath.values()];
}
