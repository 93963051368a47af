import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../core/cache-dir.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import { isSystemError, ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { ensureSystemPackages } from '../core/system-tools.ts';
import { type DebianKernel, ensureDebianKernel } from './debian-kernel.ts';
import { buildDemoInitrd, staticBusyboxPath } from './demo-initrd.ts';
import { kioskDataPartition, newOsVersion, newRootPartition, oldOsVersion, oldRootPartition } from './demo-layout.ts';
import { renderDemoPlan } from './demo-plan.ts';
import { buildNewOsImage } from './new-os-image.ts';
import { buildGptOldDisk, buildOldDisk } from './old-disk.ts';

export interface DemoFixtures {
  /** Cached pristine old disk; callers copy it (cp --sparse=always) before use. */
  readonly oldDiskPath: string;
  /** A plan (YAML, version 1) for that disk; callers rewrite its `disk:` to their copy (withPlanDisk). */
  readonly planPath: string;
  /** The compressed new image (zstd), also stored inside the old disk at the plan's image.path. */
  readonly newImagePath: string;
  readonly newImageBmapPath: string;
  /** SHA-256 of the .zst file, the plan's image.sha256. */
  readonly newImageSha256: string;
  /** SHA-256 and size of the raw disk image the .zst decompresses to (the bytes written to the disk). */
  readonly newImageRawSha256: string;
  readonly newImageRawSizeBytes: number;
  /** The demo initrd both OSes boot with (also in each root's /boot/initrd.img). */
  readonly demoInitrdPath: string;
  readonly kernel: DebianKernel;
  readonly oldIdentity: {
    readonly osVersion: string;
    readonly machineId: string;
    /** Key file name (ssh_host_ed25519_key …) -> "SHA256:…" as `ssh-keygen -lf` prints it. */
    readonly sshHostKeySha256: Record<string, string>;
    /** Retained top-level paths present on the old root, globs expanded, sorted. */
    readonly retainedPaths: string[];
  };
  readonly newOsVersion: string;
  /** The new image's own machine-id, which the retained one must replace. */
  readonly newImageMachineId: string;
  /** Partition numbers: on the old disk (root, data) and in the new image (root, data). */
  readonly partitions: { readonly oldRoot: number; readonly newRoot: number; readonly kioskData: number };
  /** The cache directory holding all of the above. */
  readonly dir: string;
}

/** What fixtures.json keeps: everything but the kernel and the absolute paths (derived again). */
type StoredFixtures = Omit<
  DemoFixtures,
  'oldDiskPath' | 'planPath' | 'newImagePath' | 'newImageBmapPath' | 'demoInitrdPath' | 'kernel' | 'dir'
>;

const manifestName = 'fixtures.json';

/** Source files whose change must rebuild the fixtures (qemu-vm.ts only boots them). */
const builderSources = [
  'demo-fixtures.ts',
  'demo-initrd.ts',
  'demo-layout.ts',
  'demo-plan.ts',
  'demo-root.ts',
  'disk-image.ts',
  'grub-bios.ts',
  'identity-report.ts',
  'new-os-image.ts',
  'old-disk.ts',
  'old-os-identity.ts',
  '../initramfs/newc-archive.ts',
  '../initramfs/module-closure.ts',
  // The busybox roots carry the storage modules the initramfs takes (demo-root.ts installKernel).
  '../initramfs/find-kernel-files.ts',
  '../boot/grub-boot-sector.ts',
  '../boot/recovery-core.ts',
];

/** The cache key: the builder's code, the kernel and the busybox it packs. */
export async function demoFixturesVersionKey(kernel: DebianKernel): Promise<string> {
  const hash = createHash('sha256');
  for (const source of builderSources) {
    hash.update(source);
    hash.update(await readFile(join(import.meta.dirname, source)));
  }
  hash.update(kernel.version);
  const { stdout } = await runCommand(staticBusyboxPath, [], { allowFailure: true });
  hash.update(stdout.split('\n')[0] ?? '');
  return hash.digest('hex').slice(0, 16);
}

function pathsIn(
  dir: string,
): Pick<DemoFixtures, 'oldDiskPath' | 'planPath' | 'newImagePath' | 'newImageBmapPath' | 'demoInitrdPath'> {
  return {
    oldDiskPath: join(dir, 'old-disk.img'),
    planPath: join(dir, 'plan.yaml'),
    newImagePath: join(dir, 'new-os.img.zst'),
    newImageBmapPath: join(dir, 'new-os.img.bmap'),
    demoInitrdPath: join(dir, 'initrd.img'),
  };
}

/**
 * The demo's disks, built once into `<cache>/demo/<version key>` and reused after: the old disk
 * (a bootable busybox OS 1.0 with a real identity and the new image inside), the new OS image
 * (.zst + block map, bootable by its own GRUB), and the plan that reimages one with the other.
 * Needs root (owners, ACLs, capabilities). Builds into a temporary directory renamed into place,
 * so an interrupted build leaves nothing that looks complete.
 */
export async function ensureDemoFixtures(o: { log?: Logger; signal?: AbortSignal } = {}): Promise<DemoFixtures> {
  const log = o.log ?? silentLogger;
  const kernel = await ensureDebianKernel();
  const key = await demoFixturesVersionKey(kernel);
  const demoDir = join(cacheDir(), 'demo');
  const dir = join(demoDir, key);
  if (!existsSync(join(dir, manifestName))) {
    if (process.getuid?.() !== 0) {
      throw new ReimageError(
        'REIMAGE_DEMO_NEEDS_ROOT',
        'Building the demo disks needs root (file owners, ACLs and capabilities). Run it as root, e.g. with sudo.',
        { evidence: { expected: 'uid 0', actual: `uid ${process.getuid?.() ?? 'unknown'}` } },
      );
    }
    await ensureSystemPackages(log);
    const startedMs = Date.now();
    log.info(`building the demo disks into ${dir} (once; later runs reuse them)`);
    await buildInto(dir, kernel, log, o.signal);
    log.info(`demo disks built in ${((Date.now() - startedMs) / 1000).toFixed(1)} s`);
    await removeOtherVersions(demoDir, key);
  }
  const stored = JSON.parse(await readFile(join(dir, manifestName), 'utf8')) as StoredFixtures;
  return { ...stored, ...pathsIn(dir), kernel, dir };
}

/**
 * The GPT variant of the old disk (demo-layout.ts `oldGptDiskLayout`: the same machine, the same
 * identity facts, its own GRUB in a BIOS boot partition), built from the cached msdos one into the
 * same cache directory the first time it is asked for — never by the default demo. Built under a
 * temporary name and renamed, so an interrupted build leaves nothing that looks complete.
 */
export async function ensureGptOldDisk(fixtures: DemoFixtures, o: { signal?: AbortSignal } = {}): Promise<string> {
  const diskPath = join(fixtures.dir, 'old-disk-gpt.img');
  if (existsSync(diskPath)) return diskPath;
  const buildPath = `${diskPath}.tmp-${process.pid}`;
  const workDir = `${diskPath}.work-${process.pid}`;
  await mkdir(workDir, { recursive: true });
  try {
    await buildGptOldDisk({ msdosDiskPath: fixtures.oldDiskPath, diskPath: buildPath, workDir, signal: o.signal });
    // Another process may have finished first: a rename over its file replaces it atomically
    // with an equal one (the same filesystems copied), never a half-built disk.
    await rename(buildPath, diskPath);
  } finally {
    await rm(buildPath, { force: true });
    await rm(workDir, { recursive: true, force: true });
  }
  return diskPath;
}

async function buildInto(dir: string, kernel: DebianKernel, log: Logger, signal: AbortSignal | undefined) {
  const buildDir = `${dir}.tmp-${process.pid}`;
  const workDir = join(buildDir, 'work');
  await rm(buildDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  try {
    const paths = pathsIn(buildDir);
    let stepMs = Date.now();
    const took = (): string => {
      const text = `${((Date.now() - stepMs) / 1000).toFixed(1)} s`;
      stepMs = Date.now();
      return text;
    };
    const initrd = await buildDemoInitrd(kernel, paths.demoInitrdPath, signal);
    log.info(`demo initrd: ${initrd.sizeBytes} bytes, ${initrd.modules.length} modules (${took()})`);
    // The identity report lists the plan's retained paths; the old root's expansion of the SSH
    // glob is not known before the old root exists, so list both the concrete key names we make.
    const reportPaths = reportPathsForIdentity();
    const image = await buildNewOsImage({
      workDir,
      outDir: buildDir,
      kernel,
      initrdPath: paths.demoInitrdPath,
      reportPaths,
      signal,
    });
    log.info(`new OS image: ${image.rawSizeBytes} bytes raw, sha256 ${image.sha256} (${took()})`);
    const oldDisk = await buildOldDisk({
      workDir,
      diskPath: paths.oldDiskPath,
      kernel,
      initrdPath: paths.demoInitrdPath,
      newImagePath: image.imagePath,
      newImageBmapPath: image.bmapPath,
      reportPaths,
      signal,
    });
    log.info(`old disk: ${oldDisk.retainedPaths.length} retained paths (${took()})`);
    const stored: StoredFixtures = {
      newImageSha256: image.sha256,
      newImageRawSha256: image.rawSha256,
      newImageRawSizeBytes: image.rawSizeBytes,
      oldIdentity: {
        osVersion: oldOsVersion,
        machineId: oldDisk.machineId,
        sshHostKeySha256: oldDisk.sshHostKeySha256,
        retainedPaths: [...oldDisk.retainedPaths],
      },
      newOsVersion,
      newImageMachineId: image.machineId,
      partitions: { oldRoot: oldRootPartition, newRoot: newRootPartition, kioskData: kioskDataPartition },
    };
    await rm(workDir, { recursive: true, force: true });
    await writeFile(join(buildDir, manifestName), `${JSON.stringify(stored, null, 2)}\n`);
    // The plan names the disk by its final path.
    await writeFile(paths.planPath, renderDemoPlan({ diskPath: pathsIn(dir).oldDiskPath, imageSha256: image.sha256 }));
    try {
      await rename(buildDir, dir);
    } catch (e) {
      // Another process finished the same build first: theirs is as good as ours.
      if (isSystemError(e) && (e.code === 'ENOTEMPTY' || e.code === 'EEXIST') && existsSync(join(dir, manifestName))) {
        await rm(buildDir, { recursive: true, force: true });
        return;
      }
      throw e;
    }
  } catch (e) {
    await rm(buildDir, { recursive: true, force: true });
    throw e;
  }
}

/** The paths the demo OSes report on at boot: the retained ones, with the SSH glob made concrete. */
export function reportPathsForIdentity(): string[] {
  return [
    '/etc/machine-id',
    '/etc/hostname',
    '/etc/ssh',
    '/etc/pki/tls/private',
    '/etc/pki/tls/certs/kiosk.crt',
    '/etc/kiosk',
    '/var/lib/kiosk',
    '/usr/local/bin/kiosk-agent',
  ];
}

/** Older builds of the fixtures (other version keys) are dead weight: remove them, never a build in progress. */
async function removeOtherVersions(demoDir: string, key: string): Promise<void> {
  for (const name of await readdir(demoDir)) {
    if (name === key) continue;
    const builder = /\.tmp-(\d+)$/.exec(name)?.[1];
    if (builder !== undefined && processIsAlive(Number(builder))) continue;
    await rm(join(demoDir, name), { recursive: true, force: true });
  }
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but is not ours to signal.
    return isSystemError(e) && e.code === 'EPERM';
  }
}
