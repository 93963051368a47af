import { existsSync } from 'node:fs';
import { cp, lstat, mkdtemp, readdir, readFile, readlink, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, isAbsolute, join, posix, relative, sep } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { loadPlanFile } from '../plan/index.ts';
import { readElfDynamicInfo, sharedLibraryClosure } from './elf-closure.ts';
import { hostPathChain } from './host-path-chain.ts';
import { INIT_PLAN_PATH, initScript } from './init-script.ts';
import { loadModuleIndex, moduleClosure, moduleNameFromPath } from './module-closure.ts';
import { type ArchiveCompression, type ArchiveEntry, writeInitramfsArchive } from './newc-archive.ts';

/** Storage and filesystem drivers carried when this kernel has them (docs/adr/0302). */
export const STORAGE_MODULES: readonly string[] = [
  'ahci',
  'sd_mod',
  'nvme',
  'virtio_blk',
  'virtio_pci',
  'virtio_scsi',
  'usb_storage',
  'uas',
  'xhci_pci',
  'ehci_pci',
  'mmc_block',
  'sdhci_pci',
  'ext4',
  'xfs',
  'vfat',
  'nls_cp437',
  'nls_iso8859_1',
  'crc32c_generic',
];

/** Debian's busybox-static installs a statically linked busybox here. */
export const BUSYBOX_PATH = '/bin/busybox';

/** The parts of an initramfs, as `--list` shows them. */
export type InitramfsPart =
  | 'init'
  | 'plan'
  | 'skeleton'
  | 'busybox'
  | 'node'
  | 'libraries'
  | 'project'
  | 'node-modules'
  | 'tools'
  | 'kernel-modules'
  | 'firmware'
  | 'node-compile-cache';

export interface InitramfsPartSummary {
  readonly part: InitramfsPart;
  readonly entryCount: number;
  /** Bytes of file content before compression. */
  readonly contentBytes: number;
}

export interface InitramfsSummary {
  readonly outPath: string;
  /** Size of the compressed archive on disk. */
  readonly sizeBytes: number;
  readonly contentBytes: number;
  readonly entryCount: number;
  readonly compression: ArchiveCompression;
  readonly parts: readonly InitramfsPartSummary[];
  readonly kernelVersion: string;
  /** Module files carried, relative to the modules directory, dependencies first. */
  readonly modules: readonly string[];
  /** Requested module names this kernel has neither as modules nor built in. */
  readonly missingModules: readonly string[];
  readonly firmware: readonly string[];
  /** Each tool and the host path it was taken from. */
  readonly tools: readonly { readonly name: string; readonly hostPath: string }[];
  readonly disk: string;
  readonly finish: 'reboot' | 'poweroff';
  /** Every entry with its part and size, sorted by path (for `--list`). */
  readonly entries: readonly { readonly path: string; readonly part: InitramfsPart; readonly sizeBytes: number }[];
}

export interface BuildInitramfsOptions {
  readonly planPath: string;
  /** The target kernel's lib/modules/<version> directory. */
  readonly modulesDir: string;
  readonly outPath: string;
  /** System tools the runner spawns: names looked up on PATH, or absolute paths. */
  readonly tools: readonly string[];
  /** The reimage checkout to carry (src/, bin/, package.json, production node_modules). */
  readonly projectDir: string;
  readonly log?: Logger;
  readonly signal?: AbortSignal;
  /** Default STORAGE_MODULES. */
  readonly modules?: readonly string[];
  readonly compression?: ArchiveCompression;
  /** zstd or gzip level; default 6 (docs/adr/0300-initramfs-compression.md). */
  readonly compressionLevel?: number;
  readonly diskTimeoutSeconds?: number;
  /**
   * Carry a V8 compile cache of the CLI (Node's portable NODE_COMPILE_CACHE), made at build time.
   * Node then starts the CLI about twice as fast under emulation (measured ~11 s → ~5 s under
   * QEMU TCG), but V8's cache bytes differ from build to build, so the archive is no longer
   * reproducible. Default false (docs/adr/0304-optional-node-compile-cache.md).
   */
  readonly nodeCompileCache?: boolean;
  /** Where firmware is looked for on the host (default /lib/firmware). */
  readonly firmwareDir?: string;
}

/** The archive is always merged-/usr, whatever the host is: these top-level names are symlinks. */
const MERGED_USR_LINKS: Readonly<Record<string, string>> = {
  bin: 'usr/bin',
  sbin: 'usr/sbin',
  lib: 'usr/lib',
  lib64: 'usr/lib64',
};

/** Where the project lives inside the initramfs: /reimage/bin/reimage is the launcher. */
const PROJECT_ARCHIVE_DIR = 'reimage';

/** Where tools are looked for besides PATH (a non-root PATH often lacks the sbin directories). */
const EXTRA_TOOL_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Host path → archive path, folding /bin, /sbin, /lib, /lib64 into /usr like merged-/usr does. */
export function archivePathForHost(hostPath: string): string {
  const relativePath = hostPath.replace(/^\/+/, '');
  const slash = relativePath.indexOf('/');
  const top = slash < 0 ? relativePath : relativePath.slice(0, slash);
  const merged = MERGED_USR_LINKS[top];
  if (merged === undefined) return relativePath;
  return slash < 0 ? merged : `${merged}${relativePath.slice(slash)}`;
}

/** Collects entries by path, each with the part it belongs to; the same path twice must agree. */
class EntryCollector {
  readonly entries = new Map<string, { entry: ArchiveEntry; part: InitramfsPart; sizeBytes: number }>();

  add(entry: ArchiveEntry, part: InitramfsPart, sizeBytes = 0): void {
    const existing = this.entries.get(entry.path);
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
    this.entries.set(entry.path, { entry, part, sizeBytes });
  }

  has(path: string): boolean {
    return this.entries.has(path);
  }

  /**
   * Adds host symlinks and files (as hostPathChain and sharedLibraryClosure list them, parents
   * free of symlinks) at their merged-/usr archive paths.
   */
  async addHostPaths(hostPaths: readonly string[], part: InitramfsPart): Promise<void> {
    for (const hostPath of hostPaths) {
      const archivePath = archivePathForHost(hostPath);
      const stats = await lstat(hostPath);
      if (stats.isSymbolicLink()) {
        // The host's own /lib -> usr/lib and the like are already in the skeleton.
        if (Object.values(MERGED_USR_LINKS).includes(archivePath)) continue;
        this.add({ path: archivePath, kind: 'symlink', mode: 0o777, linkTarget: await readlink(hostPath) }, part);
      } else if (stats.isFile()) {
        this.add(
          { path: archivePath, kind: 'file', mode: stats.mode & 0o7777, sourcePath: hostPath },
          part,
          stats.size,
        );
      }
    }
  }
}

async function resolveTool(name: string): Promise<string> {
  if (isAbsolute(name)) {
    if (existsSync(name)) return name;
  } else {
    const dirs = [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...EXTRA_TOOL_DIRS];
    for (const dir of dirs) {
      const candidate = join(dir, name);
      if (existsSync(candidate)) return candidate;
    }
  }
  throw new ReimageError(
    'REIMAGE_TOOL_MISSING',
    `The tool "${name}" that the runner needs is not installed on this machine, so it cannot be put in the initramfs. Install it (for example with apt-get) and build again.`,
    { evidence: { path: name } },
  );
}

/** Adds a directory tree (files, symlinks, directories) under `archiveDir`, skipping names in `skip`. */
async function addTree(
  collector: EntryCollector,
  hostDir: string,
  archiveDir: string,
  part: InitramfsPart,
  skip: (relativePath: string) => boolean,
): Promise<void> {
  const walk = async (relativeDir: string): Promise<void> => {
    const names = (await readdir(join(hostDir, relativeDir))).sort();
    for (const name of names) {
      const relativePath = relativeDir === '' ? name : `${relativeDir}/${name}`;
      if (skip(relativePath)) continue;
      const hostPath = join(hostDir, relativePath);
      const archivePath = `${archiveDir}/${relativePath}`;
      const stats = await lstat(hostPath);
      if (stats.isSymbolicLink()) {
        collector.add({ path: archivePath, kind: 'symlink', mode: 0o777, linkTarget: await readlink(hostPath) }, part);
      } else if (stats.isDirectory()) {
        collector.add({ path: archivePath, kind: 'directory', mode: stats.mode & 0o7777 }, part);
        await walk(relativePath);
      } else if (stats.isFile()) {
        collector.add(
          { path: archivePath, kind: 'file', mode: stats.mode & 0o7777, sourcePath: hostPath },
          part,
          stats.size,
        );
      }
    }
  };
  await walk('');
}

interface PackageJson {
  readonly name?: string;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
}

async function readPackageJson(path: string): Promise<PackageJson> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as PackageJson;
  } catch (e) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_PROJECT_INVALID',
      `Cannot read "${path}". Run "npm ci" in the project directory and build again.`,
      { evidence: { file: path }, cause: e },
    );
  }
}

/**
 * The installed directories of the production dependencies, found as Node resolves them (the
 * package's own node_modules first, then each parent's): `dependencies`, and the
 * `optionalDependencies` that are installed (the platform package of a native addon). Never
 * devDependencies. Returns host directories, sorted.
 */
export async function productionPackageDirs(projectDir: string): Promise<string[]> {
  const found = new Set<string>();
  const visit = async (packageDir: string, required: boolean): Promise<void> => {
    const manifest = await readPackageJson(join(packageDir, 'package.json'));
    const wanted: [string, boolean][] = [
      ...Object.keys(manifest.dependencies ?? {}).map((name): [string, boolean] => [name, true]),
      ...Object.keys(manifest.optionalDependencies ?? {}).map((name): [string, boolean] => [name, false]),
    ];
    for (const [name, isRequired] of wanted) {
      let dir: string | undefined;
      for (let base = packageDir; ; ) {
        const candidate = join(base, 'node_modules', name);
        if (existsSync(join(candidate, 'package.json'))) {
          dir = candidate;
          break;
        }
        if (base === projectDir || !base.startsWith(projectDir)) break;
        const up = base.lastIndexOf(`${sep}node_modules${sep}`);
        if (up < 0) break;
        base = base.slice(0, up);
      }
      if (dir === undefined) {
        if (isRequired && required) {
          throw new ReimageError(
            'REIMAGE_INITRAMFS_PROJECT_INVALID',
            `The dependency "${name}" of "${packageDir}" is not installed. Run "npm ci" in ${projectDir} and build again.`,
            { evidence: { path: packageDir, expected: name } },
          );
        }
        continue;
      }
      if (found.has(dir)) continue;
      found.add(dir);
      await visit(dir, isRequired);
    }
  };
  await visit(projectDir, true);
  return [...found].sort();
}

/** Firmware files the kernel may load as they are, or compressed (CONFIG_FW_LOADER_COMPRESS). */
const FIRMWARE_SUFFIXES = ['', '.xz', '.zst'];

/**
 * The firmware the modules name (`modinfo -F firmware`) that this host has under `firmwareDir`,
 * plain or compressed, symlinks followed; and the names it does not have (most are for hardware
 * the machine lacks, so that is not an error).
 */
export async function findFirmware(
  moduleFiles: readonly string[],
  firmwareDir: string,
  signal?: AbortSignal,
): Promise<{
  found: { readonly fileName: string; readonly hostPath: string; readonly sizeBytes: number }[];
  missing: string[];
}> {
  if (moduleFiles.length === 0) return { found: [], missing: [] };
  const { stdout } = await runCommand('modinfo', ['-F', 'firmware', ...moduleFiles], { signal });
  const names = [...new Set(stdout.split('\n').map((line) => line.trim()))].filter((name) => name !== '').sort();
  const found: { fileName: string; hostPath: string; sizeBytes: number }[] = [];
  const missing: string[] = [];
  for (const name of names) {
    let hit = false;
    for (const suffix of FIRMWARE_SUFFIXES) {
      const candidate = join(firmwareDir, `${name}${suffix}`);
      try {
        const hostPath = await realpath(candidate);
        const stats = await lstat(hostPath);
        if (!stats.isFile()) continue;
        found.push({ fileName: `${name}${suffix}`, hostPath, sizeBytes: stats.size });
        hit = true;
      } catch (e) {
        if (isSystemError(e) && e.code === 'ENOENT') continue;
        throw e;
      }
    }
    if (!hit) missing.push(name);
  }
  return { found, missing };
}

/** Where the optional V8 compile cache sits in the initramfs (next to the code it caches). */
const COMPILE_CACHE_ARCHIVE_DIR = `${PROJECT_ARCHIVE_DIR}/.node-compile-cache`;

/**
 * Runs the CLI once (`--version` loads every verb) from a copy of the code laid out as in the
 * initramfs, with NODE_COMPILE_CACHE_PORTABLE so the cache hits wherever that layout sits, and
 * adds the cache it wrote.
 */
async function addNodeCompileCache(
  collector: EntryCollector,
  projectDir: string,
  stageDir: string,
  nodePath: string,
  packageDirs: readonly string[],
  nodePackageDir: string | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const name of ['src', 'bin', 'package.json']) {
    await cp(join(projectDir, name), join(stageDir, name), { recursive: true, verbatimSymlinks: true });
  }
  // Real copies of the carried packages (not a symlink), so their cache entries hit too: zod,
  // yaml and fast-xml-parser are most of the JavaScript the CLI compiles.
  for (const dir of packageDirs) {
    if (dir === nodePackageDir) continue;
    await cp(dir, join(stageDir, relative(projectDir, dir)), {
      recursive: true,
      verbatimSymlinks: true,
      filter: (source) => !source.slice(dir.length).includes(`${sep}node_modules`),
    });
  }
  const cacheDir = join(stageDir, '.node-compile-cache');
  await runCommand(
    nodePath,
    ['--disable-warning=ExperimentalWarning', join(stageDir, 'src', 'cli', 'main.ts'), '--version'],
    {
      env: { ...process.env, NODE_COMPILE_CACHE: cacheDir, NODE_COMPILE_CACHE_PORTABLE: '1' },
      signal,
    },
  );
  collector.add({ path: COMPILE_CACHE_ARCHIVE_DIR, kind: 'directory', mode: 0o755 }, 'node-compile-cache');
  await addTree(collector, cacheDir, COMPILE_CACHE_ARCHIVE_DIR, 'node-compile-cache', () => false);
}

/**
 * Builds the reimage initramfs: busybox and its applets, the pinned Node.js with its libraries,
 * the project's code and production dependencies, the plan, the runner's tools with their
 * libraries, the storage and filesystem modules with their closure, the modules.* index files
 * and the firmware they name, and /init (src/initramfs/init-script.ts). The same inputs give
 * the same bytes.
 */
export async function buildInitramfs(options: BuildInitramfsOptions): Promise<InitramfsSummary> {
  const log = options.log ?? silentLogger;
  const collector = new EntryCollector();
  const projectDir = await realpath(options.projectDir);

  // The plan: its disk and finish are baked into /init.
  const plan = await loadPlanFile(options.planPath);
  if (plan.disk.startsWith('/dev/disk/')) {
    log.warn(
      `The plan's disk ${plan.disk} is a udev link; the initramfs has no udev, so /init waits for a name the kernel itself creates (such as /dev/sda, /dev/nvme0n1, /dev/vda).`,
    );
  }
  const planBytes = await readFile(options.planPath);
  collector.add(
    { path: INIT_PLAN_PATH.slice(1), kind: 'file', mode: 0o600, data: planBytes },
    'plan',
    planBytes.length,
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

  // Tools first, so that busybox applets never shadow the full versions.
  const tools: { name: string; hostPath: string }[] = [];
  const toolNames = new Set<string>();
  for (const name of [...new Set(options.tools)].sort()) {
    const hostPath = await resolveTool(name);
    await collector.addHostPaths(
      (await hostPathChain(hostPath)).map((link) => link.path),
      'tools',
    );
    await collector.addHostPaths(await sharedLibraryClosure(hostPath), 'libraries');
    tools.push({ name, hostPath });
    toolNames.add(basename(hostPath));
  }

  // Busybox: static, with a link per applet except itself (its --list names "busybox").
  if (!existsSync(BUSYBOX_PATH)) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_BUSYBOX_MISSING',
      `${BUSYBOX_PATH} is missing. Install the Debian package busybox-static and build again.`,
      { evidence: { path: BUSYBOX_PATH } },
    );
  }
  const busyboxReal = await realpath(BUSYBOX_PATH);
  const busyboxInfo = await readElfDynamicInfo(busyboxReal);
  if (busyboxInfo.interpreter !== undefined || busyboxInfo.needed.length > 0) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_BUSYBOX_MISSING',
      `${BUSYBOX_PATH} is dynamically linked. Install the Debian package busybox-static (not busybox) and build again.`,
      { evidence: { path: busyboxReal, actual: busyboxInfo.interpreter ?? busyboxInfo.needed.join(' ') } },
    );
  }
  const busyboxStats = await lstat(busyboxReal);
  collector.add(
    { path: 'usr/bin/busybox', kind: 'file', mode: 0o755, sourcePath: busyboxReal },
    'busybox',
    busyboxStats.size,
  );
  const { stdout: appletList } = await runCommand(busyboxReal, ['--list']);
  for (const applet of appletList.split('\n').map((a) => a.trim())) {
    if (applet === '' || applet === 'busybox' || applet.includes('/') || toolNames.has(applet)) continue;
    const path = `usr/bin/${applet}`;
    if (collector.has(path) || collector.has(`usr/sbin/${applet}`)) continue;
    collector.add({ path, kind: 'symlink', mode: 0o777, linkTarget: 'busybox' }, 'busybox');
  }

  // The project: code, launcher, manifest and production dependencies.
  const archiveProject = PROJECT_ARCHIVE_DIR;
  const projectManifestPath = join(projectDir, 'package.json');
  const projectManifest = await readFile(projectManifestPath);
  collector.add(
    { path: `${archiveProject}/package.json`, kind: 'file', mode: 0o644, sourcePath: projectManifestPath },
    'project',
    projectManifest.length,
  );
  for (const dir of ['src', 'bin']) {
    await addTree(collector, join(projectDir, dir), `${archiveProject}/${dir}`, 'project', () => false);
  }

  // Node: the pinned binary that node_modules/.bin/node points at, and its libraries.
  const nodeLinkPath = join(projectDir, 'node_modules', '.bin', 'node');
  if (!existsSync(nodeLinkPath)) {
    throw new ReimageError(
      'REIMAGE_INITRAMFS_PROJECT_INVALID',
      `${nodeLinkPath} is missing. Run "npm ci" in ${projectDir} and build again.`,
      { evidence: { path: nodeLinkPath } },
    );
  }
  const nodeReal = await realpath(nodeLinkPath);
  await collector.addHostPaths(await sharedLibraryClosure(nodeReal), 'libraries');
  const packageDirs = await productionPackageDirs(projectDir);
  const archiveDirOf = (dir: string): string => `${archiveProject}/${relative(projectDir, dir).split(sep).join('/')}`;
  // node_modules may itself be a symlink (a snapshot of the code next to shared dependencies),
  // so the package holding the binary is found by real paths.
  let nodePackage: { dir: string; realDir: string } | undefined;
  for (const dir of packageDirs) {
    const realDir = await realpath(dir);
    if (nodeReal.startsWith(`${realDir}${sep}`)) nodePackage = { dir, realDir };
  }
  for (const dir of packageDirs) {
    const archiveDir = archiveDirOf(dir);
    if (dir === nodePackage?.dir) {
      // The runtime's package also holds C headers and docs (60 MB); only the binary is needed.
      const manifestStats = await lstat(join(dir, 'package.json'));
      collector.add(
        { path: `${archiveDir}/package.json`, kind: 'file', mode: 0o644, sourcePath: join(dir, 'package.json') },
        'node-modules',
        manifestStats.size,
      );
      continue;
    }
    await addTree(collector, dir, archiveDir, 'node-modules', (path) => path === 'node_modules');
  }
  // Native addons (`*.node`, e.g. @napi-rs/xattr's platform package) are ELF objects too.
  const addons = [...collector.entries.values()].filter(
    (a) => a.part === 'node-modules' && a.entry.kind === 'file' && a.entry.path.endsWith('.node'),
  );
  for (const addon of addons) {
    if (addon.entry.sourcePath === undefined) continue;
    await collector.addHostPaths(await sharedLibraryClosure(addon.entry.sourcePath), 'libraries');
  }
  const nodeStats = await lstat(nodeReal);
  const binLink = `${archiveProject}/node_modules/.bin/node`;
  if (nodePackage !== undefined) {
    const inPackage = `${archiveDirOf(nodePackage.dir)}/${relative(nodePackage.realDir, nodeReal).split(sep).join('/')}`;
    collector.add({ path: inPackage, kind: 'file', mode: 0o755, sourcePath: nodeReal }, 'node', nodeStats.size);
    const linkTarget = posix.relative(posix.dirname(binLink), inPackage);
    collector.add({ path: binLink, kind: 'symlink', mode: 0o777, linkTarget }, 'node');
  } else {
    collector.add({ path: binLink, kind: 'file', mode: 0o755, sourcePath: nodeReal }, 'node', nodeStats.size);
  }

  // Kernel modules with their closure, the index files modprobe reads, and their firmware.
  const kernelVersion = basename(options.modulesDir);
  const moduleIndex = await loadModuleIndex(options.modulesDir);
  const closure = moduleClosure(moduleIndex, options.modules ?? STORAGE_MODULES);
  if (closure.missing.length > 0) {
    log.info(`Modules this kernel has neither as files nor built in (skipped): ${closure.missing.join(', ')}`);
  }
  const modulesArchiveDir = `usr/lib/modules/${kernelVersion}`;
  for (const modulePath of closure.modules) {
    const hostPath = join(options.modulesDir, modulePath);
    const stats = await lstat(hostPath);
    collector.add(
      { path: `${modulesArchiveDir}/${modulePath}`, kind: 'file', mode: 0o644, sourcePath: hostPath },
      'kernel-modules',
      stats.size,
    );
  }
  for (const name of (await readdir(options.modulesDir)).sort()) {
    if (!name.startsWith('modules.')) continue;
    const hostPath = join(options.modulesDir, name);
    const stats = await lstat(hostPath);
    if (!stats.isFile()) continue;
    collector.add(
      { path: `${modulesArchiveDir}/${name}`, kind: 'file', mode: 0o644, sourcePath: hostPath },
      'kernel-modules',
      stats.size,
    );
  }
  const { found: foundFirmware, missing: missingFirmware } = await findFirmware(
    closure.modules.map((m) => join(options.modulesDir, m)),
    options.firmwareDir ?? '/lib/firmware',
    options.signal,
  );
  for (const item of foundFirmware) {
    collector.add(
      { path: `usr/lib/firmware/${item.fileName}`, kind: 'file', mode: 0o644, sourcePath: item.hostPath },
      'firmware',
      item.sizeBytes,
    );
  }
  const firmware = foundFirmware.map((item) => item.fileName);
  if (missingFirmware.length > 0) {
    log.info(`Firmware named by the modules but not on this machine (skipped): ${missingFirmware.length} files`);
  }

  // /init, with the plan's disk and finish baked in.
  const script = Buffer.from(
    initScript({
      disk: plan.disk,
      finish: plan.finish,
      modules: closure.modules.map(moduleNameFromPath),
      diskTimeoutSeconds: options.diskTimeoutSeconds,
      nodeCompileCacheDir: options.nodeCompileCache === true ? `/${COMPILE_CACHE_ARCHIVE_DIR}` : undefined,
    }),
  );
  collector.add({ path: 'init', kind: 'file', mode: 0o755, data: script }, 'init', script.length);

  const compression = options.compression ?? 'zstd';
  let stageDir: string | undefined;
  let sizeBytes: number;
  try {
    if (options.nodeCompileCache === true) {
      stageDir = await mkdtemp(join(tmpdir(), 'reimage-compile-cache-'));
      await addNodeCompileCache(
        collector,
        projectDir,
        stageDir,
        nodeReal,
        packageDirs,
        nodePackage?.dir,
        options.signal,
      );
    }
    const all = [...collector.entries.values()];
    log.info(`Writing ${all.length} entries to ${options.outPath} (${compression})`);
    ({ sizeBytes } = await writeInitramfsArchive(
      all.map((a) => a.entry),
      options.outPath,
      { compression, level: options.compressionLevel, signal: options.signal },
    ));
  } finally {
    if (stageDir !== undefined) await rm(stageDir, { recursive: true, force: true });
  }
  const all = [...collector.entries.values()];

  const partOrder: InitramfsPart[] = [
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
  ];
  const parts = partOrder.map((part) => {
    const members = all.filter((a) => a.part === part);
    return { part, entryCount: members.length, contentBytes: members.reduce((sum, a) => sum + a.sizeBytes, 0) };
  });
  return {
    outPath: options.outPath,
    sizeBytes,
    contentBytes: parts.reduce((sum, p) => sum + p.contentBytes, 0),
    entryCount: all.length,
    compression,
    parts,
    kernelVersion,
    modules: closure.modules,
    missingModules: closure.missing,
    firmware,
    tools,
    disk: plan.disk,
    finish: plan.finish,
    entries: all
      .map((a) => ({ path: a.entry.path, part: a.part, sizeBytes: a.sizeBytes }))
      .sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path))),
  };
}
