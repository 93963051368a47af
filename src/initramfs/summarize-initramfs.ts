import type { FoundFirmware } from './find-firmware.ts';
import type { KernelFiles } from './find-kernel-files.ts';
import type { ArchiveCompression } from './newc-archive.ts';
import { INITRAMFS_PARTS, type InitramfsPart, type PlannedEntry } from './plan-initramfs.ts';

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

/** What was built, part by part, for the CLI's report and `--list`. */
export function summarizeInitramfs(
  planned: readonly PlannedEntry[],
  built: {
    readonly outPath: string;
    readonly sizeBytes: number;
    readonly compression: ArchiveCompression;
    readonly plan: { readonly disk: string; readonly finish: 'reboot' | 'poweroff' };
    readonly kernel: KernelFiles;
    readonly tools: readonly { readonly name: string; readonly hostPath: string }[];
    readonly firmware: readonly FoundFirmware[];
  },
): InitramfsSummary {
  const parts = INITRAMFS_PARTS.map((part) => {
    const members = planned.filter((p) => p.part === part);
    return { part, entryCount: members.length, contentBytes: members.reduce((sum, p) => sum + p.sizeBytes, 0) };
  });
  return {
    outPath: built.outPath,
    sizeBytes: built.sizeBytes,
    contentBytes: parts.reduce((sum, p) => sum + p.contentBytes, 0),
    entryCount: planned.length,
    compression: built.compression,
    parts,
    kernelVersion: built.kernel.version,
    modules: built.kernel.modules.map((m) => m.relativePath),
    missingModules: built.kernel.missing,
    firmware: built.firmware.map((f) => f.fileName),
    tools: built.tools.map((t) => ({ name: t.name, hostPath: t.hostPath })),
    disk: built.plan.disk,
    finish: built.plan.finish,
    entries: planned
      .map((p) => ({ path: p.entry.path, part: p.part, sizeBytes: p.sizeBytes }))
      .sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path))),
  };
}
