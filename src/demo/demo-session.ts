import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir } from '../core/cache-dir.ts';
import type { Logger } from '../core/logger.ts';
import type { OnProgress } from '../core/progress.ts';
import { ReimageError } from '../core/reimage-error.ts';
import { runCommand } from '../core/run-command.ts';
import { ensureSystemPackages } from '../core/system-tools.ts';
import { attachLoopDevice, mountReadOnly, resolvePartition } from '../disk/index.ts';
import { loadPlanFile } from '../plan/index.ts';
import { createRunLog, RUN_SCRATCH_FILES, type RunReport, runPlan } from '../runner/index.ts';
import { type DemoFixtures, ensureDemoFixtures } from './demo-fixtures.ts';
import { withPlanDisk } from './demo-plan.ts';

export interface DemoWorkspace {
  readonly fixtures: DemoFixtures;
  readonly dir: string;
  /** The copy of the old disk this run reimages. */
  readonly diskPath: string;
}

/** Checks root and tools, builds (or reuses) the demo disks, and copies the old disk for this run. */
export async function prepareDemo(log: Logger, name: string): Promise<DemoWorkspace> {
  if (process.getuid?.() !== 0) {
    throw new ReimageError(
      'REIMAGE_DEMO_NEEDS_ROOT',
      'The demo needs root: it builds filesystems, uses loop devices and mounts them. Run it as root (sudo ./bin/reimage demo).',
    );
  }
  await ensureSystemPackages(log);
  const fixtures = await ensureDemoFixtures({ log });
  const dir = join(cacheDir(), 'runs', name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const diskPath = join(dir, 'disk.img');
  await runCommand('cp', ['--sparse=always', fixtures.oldDiskPath, diskPath]);
  return { fixtures, dir, diskPath };
}

/** Writes the fixtures' plan with `disk:` pointing at `diskPath`. */
export async function writeDemoPlan(workspace: DemoWorkspace, diskPath: string, file: string): Promise<string> {
  const text = await readFile(workspace.fixtures.planPath, 'utf8');
  await writeFile(file, withPlanDisk(text, diskPath));
  return file;
}

/** Runs the plan against the disk image file through loop devices, in this process. */
export async function runDemoOnLoopDevices(
  workspace: DemoWorkspace,
  onProgress: OnProgress,
  signal: AbortSignal,
): Promise<{ report: RunReport; newOsRelease: Record<string, string>; logFile: string; bundlePath: string }> {
  const planPath = await writeDemoPlan(workspace, workspace.diskPath, join(workspace.dir, 'plan.yaml'));
  const plan = await loadPlanFile(planPath);
  const workDir = join(workspace.dir, 'work');
  const log = createRunLog(join(workDir, 'reimage.log'));
  const report = await runPlan({ plan, planPath, workDir, log, onProgress, signal });
  return {
    report,
    newOsRelease: await readOsRelease(workspace.diskPath, log),
    logFile: log.file,
    bundlePath: join(workDir, RUN_SCRATCH_FILES[2]),
  };
}

/** /etc/os-release of the disk's new root, read through a read-only mount. */
async function readOsRelease(diskPath: string, log: Logger): Promise<Record<string, string>> {
  const loop = await attachLoopDevice(diskPath, { readOnly: true });
  try {
    const device = await resolvePartition(loop.device, 2);
    const mount = await mountReadOnly(device, join(`${diskPath}.mnt`), log);
    try {
      const text = await readFile(join(mount.dir, 'etc/os-release'), 'utf8');
      const fields: Record<string, string> = {};
      for (const line of text.split('\n')) {
        const match = /^([A-Z_]+)=(.*)$/.exec(line);
        if (match?.[1] !== undefined && match[2] !== undefined) fields[match[1]] = match[2].replace(/^"|"$/g, '');
      }
      return fields;
    } finally {
      await mount.unmount();
    }
  } finally {
    await loop.detach();
  }
}
