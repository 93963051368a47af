import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PORTABLE_RUNTIME_TOOLS } from '../arm/arm-tools.ts';
import { GRUB_I386_PC_DIR } from '../boot/grub-boot-sector.ts';
import type { Logger } from '../core/logger.ts';
import { PROJECT_DIR } from '../core/project-dir.ts';
import { buildInitramfs, buildPortableRuntimeArchive } from '../initramfs/index.ts';
import { RECOVERY_INITRAMFS_TOOLS } from '../runner/runtime-tools.ts';
import { withPlanDisk } from './demo-plan.ts';
import { type DemoWorkspace, writeDemoPlan } from './demo-session.ts';
import { type IdentityReport, parseIdentityReport } from './identity-report.ts';
import { stageOperatorRun } from './operator-run.ts';
import { runVm } from './qemu-vm.ts';

export interface VmDemoResult {
  readonly reimage: { ending: string; durationMs: number; serialLog: string };
  readonly newBoot: { ending: string; durationMs: number; serialLog: string };
  readonly identity: IdentityReport | undefined;
  readonly initramfsSizeBytes: number;
  readonly initramfsBuildMs: number;
}

/** Builds the reimage initramfs for a plan whose disk is the VM's /dev/vda. */
export async function buildDemoInitramfs(
  workspace: DemoWorkspace,
  planText: string | undefined,
  log: Logger,
  signal: AbortSignal,
): Promise<{ path: string; sizeBytes: number; durationMs: number }> {
  const planPath = join(workspace.dir, 'vm-plan.yaml');
  if (planText === undefined) await writeDemoPlan(workspace, '/dev/vda', planPath);
  else await writeFile(planPath, planText);
  const outPath = join(workspace.dir, 'reimage-initramfs.img');
  const started = Date.now();
  const summary = await buildInitramfs({
    planPath,
    modulesDir: workspace.fixtures.kernel.modulesDir,
    outPath,
    tools: RECOVERY_INITRAMFS_TOOLS,
    projectDir: PROJECT_DIR,
    // V8's compile cache makes Node start several seconds sooner under emulation; it makes the
    // archive non-reproducible, which the demo does not need (ADR 0304).
    nodeCompileCache: true,
    log,
    signal,
  });
  return { path: outPath, sizeBytes: summary.sizeBytes, durationMs: Date.now() - started };
}

/** Boots the reimage initramfs against the disk in QEMU, the serial console shown live. */
export async function bootReimageVm(
  workspace: DemoWorkspace,
  initrdPath: string,
  onSerialLine: (line: string) => void,
  signal: AbortSignal,
): Promise<{ ending: string; durationMs: number; serialLog: string }> {
  return runVm({
    kernelPath: workspace.fixtures.kernel.vmlinuzPath,
    initrdPath,
    append: 'console=ttyS0,115200 console=tty0 panic=-1',
    diskPath: workspace.diskPath,
    memoryMiB: 3072,
    timeoutMs: 20 * 60_000,
    onSerialLine,
    signal,
  });
}

/**
 * Puts the operator's files on the workspace's old disk (as their scp would): the portable
 * runtime (built now), the plan for the VM's /dev/vda, and the script the old OS's init runs.
 */
export async function stageOperatorArm(
  workspace: DemoWorkspace,
  signal: AbortSignal,
): Promise<{ runtimeArchiveBytes: number; runtimeContentBytes: number; buildMs: number }> {
  const started = Date.now();
  const runtimeArchivePath = join(workspace.dir, 'reimage-runtime.tar.gz');
  const runtime = await buildPortableRuntimeArchive({
    outPath: runtimeArchivePath,
    tools: PORTABLE_RUNTIME_TOOLS,
    initramfsTools: RECOVERY_INITRAMFS_TOOLS,
    projectDir: PROJECT_DIR,
    grubDir: GRUB_I386_PC_DIR,
    signal,
  });
  const planText = withPlanDisk(await readFile(workspace.fixtures.planPath, 'utf8'), '/dev/vda');
  await stageOperatorRun({
    diskPath: workspace.diskPath,
    oldRootPartition: workspace.fixtures.partitions.oldRoot,
    runtimeArchivePath,
    planText,
    workDir: workspace.dir,
  });
  return {
    runtimeArchiveBytes: runtime.archiveBytes,
    runtimeContentBytes: runtime.contentBytes,
    buildMs: Date.now() - started,
  };
}

/**
 * Boots the old disk by its own bootloader with the operator's script in place: the old OS arms
 * itself and reboots (QEMU's -no-reboot ends the VM there). Node runs under software emulation,
 * so this takes minutes; 3 GiB hold the runtime and arm's scratch in tmpfs.
 */
export async function bootOldOsToArm(
  workspace: DemoWorkspace,
  onSerialLine: (line: string) => void,
  signal: AbortSignal,
): Promise<{ ending: string; durationMs: number; serialLog: string }> {
  return runVm({ diskPath: workspace.diskPath, memoryMiB: 3072, timeoutMs: 45 * 60_000, onSerialLine, signal });
}

/** Boots the disk by its own bootloader (no -kernel) and reads the identity the OS prints. */
export async function bootDiskOnItsOwn(
  workspace: DemoWorkspace,
  onSerialLine: (line: string) => void,
  signal: AbortSignal,
): Promise<{ ending: string; durationMs: number; serialLog: string; identity: IdentityReport | undefined }> {
  const result = await runVm({
    diskPath: workspace.diskPath,
    memoryMiB: 1024,
    timeoutMs: 10 * 60_000,
    onSerialLine,
    signal,
  });
  return { ...result, identity: parseIdentityReport(result.serialLog) };
}
