import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { planWarnings, readPlanFile } from '../plan/index.ts';
import { findBusybox } from './find-busybox.ts';
import { findFirmware } from './find-firmware.ts';
import { findKernelFiles, STORAGE_MODULES } from './find-kernel-files.ts';
import { initScript } from './init-script.ts';
import { moduleNameFromPath } from './module-closure.ts';
import { type ArchiveCompression, writeInitramfsArchive } from './newc-archive.ts';
import { buildNodeCompileCache } from './node-compile-cache.ts';
import { findNodeRuntime } from './node-runtime.ts';
import { COMPILE_CACHE_ARCHIVE_DIR, type PortableInputs, planInitramfs } from './plan-initramfs.ts';
import { portableEntriesFrom, type RuntimeManifest } from './portable-runtime.ts';
import { findProjectFiles } from './project-files.ts';
import { resolveTools } from './resolve-tool.ts';
import { type InitramfsSummary, summarizeInitramfs } from './summarize-initramfs.ts';

export interface BuildInitramfsOptions {
  readonly planPath: string;
  /** The target kernel's lib/modules/<version> directory. */
  readonly modulesDir: string;
  readonly outPath: string;
  /** System tools the runner spawns: names looked up on PATH, or absolute paths. */
  readonly tools: readonly string[];
  /** The reimage checkout to carry (bin/, package.json, the code the CLI loads, production node_modules). */
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
  /**
   * Take the portable part (tools, busybox, project, Node) from this portable runtime instead of
   * the host: how arm builds the initramfs on an old OS that has none of them
   * (src/initramfs/portable-runtime.ts). `tools` and `projectDir` are then not looked at.
   */
  readonly portableRuntime?: { readonly dir: string; readonly manifest: RuntimeManifest };
}

/** The portable part as found on this host. */
async function findPortableInputs(toolNames: readonly string[], projectDir: string): Promise<PortableInputs> {
  return {
    tools: await resolveTools(toolNames),
    busybox: await findBusybox(),
    project: await findProjectFiles(projectDir),
    runtime: await findNodeRuntime(projectDir),
  };
}

/**
 * Builds the reimage initramfs: finds its inputs on the host (tools with their libraries,
 * busybox, the project files the CLI loads, Node and the production packages, the kernel's
 * modules and their firmware), plans which entry lands where (planInitramfs, pure), and writes
 * the archive. The same inputs give the same bytes.
 */
export async function buildInitramfs(options: BuildInitramfsOptions): Promise<InitramfsSummary> {
  const log = options.log ?? silentLogger;
  const projectDir = await realpath(options.projectDir);
  // The plan: its disk and finish are baked into /init.
  // Read once: the bytes baked in are the ones validated here.
  const { plan, text: planText } = await readPlanFile(options.planPath);
  // A placeholder digest would only fail on the machine, after the reboot: say so now.
  for (const warning of planWarnings(plan)) log.warn(warning);
  if (plan.disk.startsWith('/dev/disk/')) {
    log.warn(
      `The plan's disk ${plan.disk} is a udev link; the initramfs has no udev, so /init waits for a name the kernel itself creates (such as /dev/sda, /dev/nvme0n1, /dev/vda).`,
    );
  }
  const planBytes = Buffer.from(planText, 'utf8');
  const fromRuntime = options.portableRuntime;
  if (fromRuntime !== undefined && options.nodeCompileCache === true) {
    throw new ReimageError(
      'REIMAGE_CLI_USAGE',
      'A compile cache is built on the build host, not from a portable runtime: build without it.',
    );
  }
  const portable = fromRuntime === undefined ? await findPortableInputs(options.tools, projectDir) : undefined;
  const portableEntries = fromRuntime === undefined ? [] : await portableEntriesFrom(fromRuntime);
  const tools =
    fromRuntime === undefined
      ? (portable?.tools ?? [])
      : fromRuntime.manifest.tools.map((tool) => ({ name: tool.name, hostPath: join(fromRuntime.dir, tool.path) }));
  const kernel = await findKernelFiles(options.modulesDir, options.modules ?? STORAGE_MODULES);
  if (kernel.missing.length > 0) {
    log.info(`Modules this kernel has neither as files nor built in (skipped): ${kernel.missing.join(', ')}`);
  }
  const firmware = await findFirmware(
    kernel.modules.map((m) => m.hostPath),
    options.firmwareDir ?? '/lib/firmware',
    options.signal,
  );
  if (firmware.missing.length > 0) {
    log.info(`Firmware named by the modules but not on this machine (skipped): ${firmware.missing.length} files`);
  }
  const script = initScript({
    disk: plan.disk,
    finish: plan.finish,
    modules: kernel.modules.map((m) => moduleNameFromPath(m.relativePath)),
    diskTimeoutSeconds: options.diskTimeoutSeconds,
    nodeCompileCacheDir: options.nodeCompileCache === true ? `/${COMPILE_CACHE_ARCHIVE_DIR}` : undefined,
  });

  const compression = options.compression ?? 'zstd';
  const stageDir =
    options.nodeCompileCache === true ? await mkdtemp(join(tmpdir(), 'reimage-compile-cache-')) : undefined;
  try {
    const compileCache =
      stageDir === undefined || portable === undefined
        ? undefined
        : await buildNodeCompileCache(projectDir, stageDir, portable.runtime, options.signal);
    const own = {
      planBytes,
      initScript: script,
      kernel,
      firmware: firmware.found,
      ...(compileCache === undefined ? {} : { compileCache }),
    };
    const planned = planInitramfs(
      portable === undefined ? { ...own, portable: portableEntries } : { ...own, ...portable },
    );
    log.info(`Writing ${planned.length} entries to ${options.outPath} (${compression})`);
    const { sizeBytes } = await writeInitramfsArchive(
      planned.map((p) => p.entry),
      options.outPath,
      { compression, level: options.compressionLevel, signal: options.signal },
    );
    return summarizeInitramfs(planned, {
      outPath: options.outPath,
      sizeBytes,
      compression,
      plan,
      kernel,
      tools,
      firmware: firmware.found,
    });
  } finally {
    if (stageDir !== undefined) await rm(stageDir, { recursive: true, force: true });
  }
}
