import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { type ArmReport, armDisk, armStatus, disarmDisk, formatArmStatus } from '../../arm/index.ts';
import { formatBytes } from '../../core/format-bytes.ts';
import { ReimageError } from '../../core/reimage-error.ts';
import { runCommand } from '../../core/run-command.ts';
import { loadPlanFile } from '../../plan/index.ts';
import { type CommandSpec, type ParsedArguments, usageLine } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

function needRoot(command: string): void {
  if (process.getuid?.() !== 0) {
    throw new ReimageError(
      'REIMAGE_ARM_NEEDS_ROOT',
      `reimage ${command} needs root (it reads and writes the raw disk and mounts its filesystems). Run it as root.`,
    );
  }
}

const armSpec: CommandSpec = {
  command: 'arm',
  summary: 'prepare a machine for a power-safe reimage: the refuge, the recovery boot path',
  description: `Checks everything first — the plan, the image's SHA-256 and that it fits the disk, every
required retained path, the new image's layout, the recovery kernel (Linux 4.18 or later, for
Node 24) and the room — and changes nothing if any check fails. Then reserves a refuge in an old
filesystem (a file, immutable, in blocks the new image leaves alone until its last write), writes
into it the image as given, the recovery kernel and reimage initramfs, the plan, the new image's
map, the saved LBA 0, room for the retention bundle, a journal and a recovery GRUB core.img, and
reads it all back from the raw disk. Only then it writes one sector: LBA 0's boot code (bytes
0-439; the disk signature and partition table stay) pointed at the recovery core.img. From then
on every boot enters the recovery initramfs until the new OS is committed.

On the running old OS, DISK defaults to the plan's disk and the kernel to the running one.
Offline, against a disk image file (--disk FILE), --kernel and --modules are required; the plan's
disk is then only a hint for the recovery initramfs, which finds its disk by identity (msdos disk
signature or GPT disk GUID). With --check it does every check, prints the refuge it would
use, and leaves the disk bit for bit as it was. docs/arm.md explains the refuge.`,
  positionals: [],
  options: [
    { name: 'plan', value: 'PLAN', help: 'the plan file (see docs/plan.md)', required: true, mustExist: 'file' },
    {
      name: 'disk',
      value: 'PATH',
      help: "the disk to arm (default: the plan's disk); a file is armed offline",
      mustExist: 'file',
    },
    {
      name: 'kernel',
      value: 'FILE',
      help: 'the recovery kernel (default: /boot/vmlinuz-$(uname -r))',
      mustExist: 'file',
    },
    {
      name: 'modules',
      value: 'DIR',
      help: "that kernel's modules (default: /lib/modules/$(uname -r))",
      mustExist: 'directory',
    },
    {
      name: 'initramfs',
      value: 'FILE',
      help: 'a reimage initramfs built for that kernel (default: built now)',
      mustExist: 'file',
    },
    { name: 'check', help: 'check everything and choose the refuge; change nothing' },
    {
      name: 'reboot',
      help: 'reboot into the recovery path once armed, after reading the arm back (LBA 0, every\nrefuge digest) as status does; not with a disk image file',
    },
    { name: 'json', help: 'the result as JSON' },
  ],
  examples: [
    'reimage arm --plan /etc/reimage/plan.yaml --check',
    'reimage arm --plan plan.yaml --disk old-disk.img --kernel vmlinuz --modules lib/modules/6.1.0-57-amd64',
  ],
  changesTarget: true,
};

function armLines(report: ArmReport): string[] {
  const lines = [
    report.armed
      ? `reimage arm: ${report.disk.path} is armed.`
      : `reimage arm --check: ${report.disk.path} can be armed; nothing was changed.`,
    `  image:      ${report.image.format}, ${formatBytes(report.image.compressedSizeBytes)} as given, ${formatBytes(report.image.sizeBytes)} decoded, ${formatBytes(report.image.mappedBytes)} mapped`,
    `  kernel:     ${report.kernel.path} (Linux ${report.kernel.release}); initramfs ${formatBytes(report.initramfsSizeBytes)}`,
    `  bundle:     ${report.bundle.entries} entries, ~${formatBytes(report.bundle.measuredBytes)}; room ${formatBytes(report.bundle.roomBytes)}`,
    `  refuge:     needs ${formatBytes(report.needBytes)}`,
  ];
  for (const candidate of report.candidates) {
    lines.push(
      candidate.refused === undefined
        ? `    partition ${candidate.partition} (${candidate.filesystem}): ${formatBytes(candidate.usableBytes ?? 0)} usable of ${formatBytes(candidate.freeBytes ?? 0)} free${candidate.exact === false ? ' (estimate: mounted read-write)' : ''}`
        : `    partition ${candidate.partition} (${candidate.filesystem ?? 'no filesystem'}): not used: ${candidate.refused}`,
    );
  }
  if (report.refuge !== undefined) {
    lines.push(
      `  refuge in partition ${report.refuge.partition}: ${report.refuge.file}, ${report.refuge.extents} extents, core.img at LBA ${report.refuge.coreLba}, journal at LBA ${report.refuge.journalLba}`,
      `  The next boot enters the recovery initramfs. Undo with: reimage disarm --disk ${report.disk.path}`,
    );
  }
  lines.push(`  took ${(report.durationMs / 1000).toFixed(1)} s`);
  return lines;
}

async function arm(context: VerbContext, args: ParsedArguments): Promise<number> {
  needRoot('arm');
  const optional = (name: string): string | undefined => args.value(name);
  const reboot = args.flag('reboot');
  if (reboot && args.flag('check')) {
    throw new ReimageError('REIMAGE_CLI_USAGE', 'arm: --check changes nothing, so it cannot --reboot.', {
      evidence: { usage: usageLine(armSpec) },
    });
  }
  const diskPath = optional('disk') ?? (await loadPlanFile(args.required('plan'))).disk;
  if (reboot && (await stat(diskPath).catch(() => undefined))?.isFile() === true) {
    throw new ReimageError(
      'REIMAGE_CLI_USAGE',
      `arm: ${diskPath} is a disk image file: there is no machine to reboot (arm it without --reboot and boot it in a VM).`,
      { evidence: { usage: usageLine(armSpec) } },
    );
  }
  const report = await armDisk({
    planPath: args.required('plan'),
    ...definedOnly({
      diskPath: optional('disk'),
      kernelPath: optional('kernel'),
      modulesDir: optional('modules'),
      initramfsPath: optional('initramfs'),
    }),
    check: args.flag('check'),
    workDir: tmpdir(),
    log: context.log,
    signal: context.signal,
  });
  context.stdout.write(args.flag('json') ? `${JSON.stringify(report)}\n` : `${armLines(report).join('\n')}\n`);
  if (reboot && report.armed) await rebootIntoRecovery(context, report);
  return 0;
}

/**
 * Reboots only an arm that reads back whole: something (a grub-install from a package update)
 * may rewrite LBA 0 between arm and reboot, and a damaged refuge must never be booted into.
 */
async function rebootIntoRecovery(context: VerbContext, report: ArmReport): Promise<void> {
  const state = await armStatus(report.disk.path);
  if (state.state !== 'armed') {
    throw new ReimageError(
      'REIMAGE_ARM_BOOT_SECTOR_CHANGED',
      `Not rebooting: ${report.disk.path} was armed but reads back as ${state.state}${state.why === undefined ? '' : ` (${state.why})`}. Do not reboot it: run reimage status, then reimage disarm (or restore the boot loader) and arm again.`,
      { evidence: { disk: report.disk.path, state: state.state }, targetState: 'changed' },
    );
  }
  context.log.info('the arm reads back whole: rebooting into the recovery path');
  await runCommand('reboot', []);
}

function definedOnly<T extends Record<string, string | undefined>>(values: T): { [K in keyof T]?: string } {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: string;
  };
}

const disarmSpec: CommandSpec = {
  command: 'disarm',
  summary: 'undo an arm that has not started writing: old LBA 0 back, refuge released',
  description: `Finds the arm from LBA 0 (its boot code names the recovery core.img, which locates the
refuge), refuses unless the armed run has not yet written the disk, writes the saved LBA 0 back
(one sector; refused if the partition table changed since the arm), wipes the bundle room and
removes the refuge file. The old OS then boots as before.`,
  positionals: [],
  options: [
    {
      name: 'disk',
      value: 'PATH',
      help: 'the armed disk (a block device or a disk image file)',
      required: true,
      mustExist: 'file',
    },
  ],
  examples: ['reimage disarm --disk /dev/sda'],
  changesTarget: true,
};

async function disarm(context: VerbContext, args: ParsedArguments): Promise<number> {
  needRoot('disarm');
  const report = await disarmDisk({ diskPath: args.required('disk'), workDir: tmpdir(), log: context.log });
  context.stdout.write(
    `reimage disarm: ${report.disk} disarmed (was at stage ${report.stage}); LBA 0 restored${report.refugeRemoved ? ', refuge removed' : '; the refuge file is still there (see the warning)'}.\n`,
  );
  return 0;
}

const statusSpec: CommandSpec = {
  command: 'status',
  summary: 'say whether a disk is armed, and where its armed run is',
  description: `Reads LBA 0, the refuge's header and journal, and every refuge item's digest, raw, and
prints: not-armed, armed, running (stage, attempt), refused (why), failed (why), damaged (an arm
something has overwritten: never trust it) or done (on the new OS: from the armed run's report at
/var/lib/reimage/armed-report.json, while LBA 0 holds the table its commit wrote). Changes nothing. --json prints the documented,
versioned shape (docs/arm.md).`,
  positionals: [],
  options: [
    {
      name: 'disk',
      value: 'PATH',
      help: 'the disk (a block device or a disk image file)',
      required: true,
      mustExist: 'file',
    },
    { name: 'json', help: 'the status as JSON (format reimage-status, version 1)' },
  ],
  examples: ['reimage status --disk /dev/sda --json'],
  changesTarget: false,
};

async function status(context: VerbContext, args: ParsedArguments): Promise<number> {
  needRoot('status');
  const result = await armStatus(args.required('disk'));
  context.stdout.write(args.flag('json') ? `${JSON.stringify(result)}\n` : `${formatArmStatus(result).join('\n')}\n`);
  return 0;
}

export const armVerb: Verb = defineVerb({
  name: 'arm',
  summary: armSpec.summary,
  commands: [{ spec: armSpec, run: arm }],
});
export const disarmVerb: Verb = defineVerb({
  name: 'disarm',
  summary: disarmSpec.summary,
  commands: [{ spec: disarmSpec, run: disarm }],
});
export const statusVerb: Verb = defineVerb({
  name: 'status',
  summary: statusSpec.summary,
  commands: [{ spec: statusSpec, run: status }],
});
