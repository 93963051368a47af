import { formatBytes } from '../../core/format-bytes.ts';
import { ReimageError } from '../../core/reimage-error.ts';
import { inspectBundle } from '../../retain/index.ts';
import { formatRunSummary } from '../../runner/index.ts';
import type { CommandSpec } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

const spec: CommandSpec = {
  command: 'demo',
  summary: 'reimage a built-in demo machine end to end (--vm: under QEMU, then boot it)',
  description: `Reimages a small demo machine end to end. The first run builds, once, a bootable "old OS" disk
image with a real identity (machine-id, SSH host keys, a TLS key and certificate, a kiosk
account owning its configuration, xattrs, ACLs, a file capability) and a new OS image (.zst with
a block map, a different version and account database, its own GRUB); later runs reuse them
(cached under ~/.cache/reimage). Needs root; installs missing Debian packages with apt.

Without --vm: runs the plan against a copy of the old disk image through loop devices, then
shows the new OS version, the retained entries verified, bytes written and skipped, and the
time per stage.`,
  positionals: [],
  options: [
    {
      name: 'vm',
      help: "boot the old disk in QEMU (software emulation) by its own GRUB, with the serial console\nshown live; the old OS runs the operator's command (the portable runtime unpacked into RAM,\nthen reimage arm --reboot) and reboots into the recovery path; the power is cut in the middle\nof the write, the disk boots again: the armed run resumes and finishes; then the disk boots\nthe new OS, whose version, machine-id and SSH host key fingerprints are shown next to the old\nones. Takes 6 to 15 minutes.",
    },
  ],
  examples: ['sudo ./bin/reimage demo', 'sudo ./bin/reimage demo --vm'],
  changesTarget: true,
};

function table(rows: readonly (readonly [string, string, string])[]): string[] {
  const widths = [0, 1, 2].map((column) => Math.max(...rows.map((row) => row[column]?.length ?? 0)));
  return rows.map((row) => `  ${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ')}`.trimEnd());
}

// The demo's modules (fixture builders, QEMU, the initramfs builder) load only when the demo
// runs, so the other verbs — `run` inside the initramfs above all — start quickly.
async function demoOnLoopDevices(context: VerbContext): Promise<number> {
  const { prepareDemo, runDemoOnLoopDevices } = await import('../../demo/demo-session.ts');
  context.log.info('demo: preparing the demo disks (built once, then cached)');
  const workspace = await prepareDemo(context.log, 'demo');
  const progress = context.progressFor({ json: false });
  const { report, newOsRelease, logFile, bundlePath } = await runDemoOnLoopDevices(workspace, progress, context.signal);
  progress.done();
  const manifest = await inspectBundle(bundlePath);
  const out: string[] = [
    '',
    `Reimaged ${workspace.diskPath}`,
    `  old OS ${workspace.fixtures.oldIdentity.osVersion}  ->  new OS ${newOsRelease.VERSION_ID ?? '?'} (${newOsRelease.PRETTY_NAME ?? ''})`,
    '',
    ...formatRunSummary(report),
    '',
    `Retained entries (all ${report.entriesVerified} re-read from the new root and matched the manifest):`,
    ...table(
      manifest.entries.map((entry) => [
        entry.path,
        `${entry.type}`,
        `${entry.user ?? entry.uid}:${entry.group ?? entry.gid} ${(entry.mode & 0o7777).toString(8).padStart(4, '0')}`,
      ]),
    ),
    '',
    `Log: ${logFile}`,
    'Next: sudo ./bin/reimage demo --vm   (arms the disk, cuts the power mid-write under QEMU, and boots the new OS)',
  ];
  context.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

async function demoInVm(context: VerbContext): Promise<number> {
  const { join } = await import('node:path');
  const { prepareDemo } = await import('../../demo/demo-session.ts');
  const { runPowerCutTrial } = await import('../../demo/power-cut-trial.ts');
  const { bootOldOsToArm, stageOperatorArm } = await import('../../demo/demo-vm-session.ts');
  context.log.info('demo --vm: preparing the demo disks (built once, then cached)');
  const workspace = await prepareDemo(context.log, 'demo-vm');
  const staged = await stageOperatorArm(workspace, context.signal);
  context.log.info(
    `the operator's copy: the portable runtime (${formatBytes(staged.runtimeArchiveBytes)} .tar.gz, ${formatBytes(staged.runtimeContentBytes)} unpacked), the plan and /etc/rc.local put on the old root, as scp would (${(staged.buildMs / 1000).toFixed(1)} s)`,
  );
  context.log.info(
    "booting the old OS by its own GRUB: its init runs the operator's script, which unpacks the runtime into RAM and runs reimage arm --plan /root/plan.yaml --reboot",
  );
  const armBoot = await bootOldOsToArm(
    workspace,
    (line) => context.stdout.write(`  old OS | ${line}\n`),
    context.signal,
  );
  const armSeconds = /reimage arm: \/dev\/vda is armed\.[\s\S]*?took ([\d.]+) s/.exec(armBoot.serialLog)?.[1];
  if (armSeconds === undefined || armBoot.ending !== 'reboot') {
    throw new ReimageError(
      'REIMAGE_DEMO_VM_FAILED',
      `The old OS did not arm itself and reboot (it ended with ${armBoot.ending}). The serial log above says why.`,
      { evidence: { ending: armBoot.ending } },
    );
  }
  context.log.info(
    `armed from inside the old OS: reimage arm took ${armSeconds} s; the old OS's boot, the unpacking and arm took ${(armBoot.durationMs / 1000).toFixed(1)} s under emulation; it rebooted`,
  );
  const show = (boot: number, line: string): void => {
    context.stdout.write(`  boot ${boot + 1} | ${line}\n`);
  };
  context.log.info('booting the armed disk by its own BIOS path; the power will be cut during the write');
  const trial = await runPowerCutTrial({
    armedDiskPath: workspace.diskPath,
    diskPath: join(workspace.dir, 'disk-after-power-cut.img'),
    fixtures: workspace.fixtures,
    cut: { marker: 'step 2/6 write', delayMs: 1500 },
    onSerialLine: show,
    onCut: () =>
      context.stdout.write('\n  *** POWER CUT: QEMU killed (SIGKILL) in the middle of the armed write ***\n\n'),
    signal: context.signal,
  });
  const identity = trial.identity;
  if (identity === undefined || trial.bricked || identity.osVersion !== workspace.fixtures.newOsVersion) {
    throw new ReimageError(
      'REIMAGE_DEMO_VM_FAILED',
      `The armed disk did not come up in the new OS after the power cut (boots: ${trial.boots.join(', ')}). The serial log above says why.`,
      { evidence: { boots: trial.boots.join(',') } },
    );
  }
  context.stdout.write(`\nBoots: ${trial.boots.join(' → ')}${trial.cutHappened ? ' (the first one cut)' : ''}\n`);
  const old = workspace.fixtures.oldIdentity;
  const rows: [string, string, string][] = [
    ['', 'old OS (before)', 'new OS (booted from its own disk)'],
    ['OS version', old.osVersion, identity.osVersion],
    ['machine-id', old.machineId, identity.machineId],
  ];
  for (const [key, fingerprint] of Object.entries(old.sshHostKeySha256)) {
    rows.push([key, fingerprint, identity.sshHostKeySha256[key] ?? '(missing)']);
  }
  rows.push(['report.json', '', identity.reportJsonPresent ? '/kiosk/log/report.json present' : 'absent']);
  const same =
    identity.machineId === old.machineId &&
    Object.entries(old.sshHostKeySha256).every(([key, value]) => identity.sshHostKeySha256[key] === value);
  context.stdout.write(
    [
      '',
      ...table(rows),
      '',
      `arm inside the old OS: ${armSeconds} s (its whole boot ${(armBoot.durationMs / 1000).toFixed(1)} s); boots from the first recovery boot to the new OS, the cut included: ${(trial.durationMs / 1000).toFixed(1)} s`,
      same ? 'The new OS kept the old identity.' : 'The identity DIFFERS: see the rows above.',
      '',
    ].join('\n'),
  );
  if (!same) {
    throw new ReimageError(
      'REIMAGE_DEMO_IDENTITY_MISMATCH',
      'The new OS booted, but its identity differs from the old one (see the rows above). This is a bug in reimage: please report it with the serial log.',
    );
  }
  return 0;
}

export const demoVerb: Verb = defineVerb({
  name: 'demo',
  summary: spec.summary,
  commands: [{ spec, run: (context, args) => (args.flag('vm') ? demoInVm(context) : demoOnLoopDevices(context)) }],
});
