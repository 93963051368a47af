import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../core/logger.ts';
import { PROJECT_DIR } from '../core/project-dir.ts';
import { buildInitramfs } from '../initramfs/index.ts';
import { RECOVERY_INITRAMFS_TOOLS } from '../runner/runtime-tools.ts';
import { type DemoWorkspace, writeDemoPlan } from './demo-session.ts';
import { type IdentityReport, parseIdentityReport } from './identity-report.ts';
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
