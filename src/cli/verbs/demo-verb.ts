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
      help: "build the reimage initramfs, boot it in QEMU (software emulation) against the disk\nwith the serial console shown live, then boot the reimaged disk on its own — its own\nbootloader, no -kernel — and show the new OS's version, machine-id and SSH host key\nfingerprints next to the old ones. Takes a few minutes.",
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
    'Next: sudo ./bin/reimage demo --vm   (boots the reimage and then the new OS under QEMU)',
  ];
  context.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

async function demoInVm(context: VerbContext): Promise<number> {
  const { prepareDemo } = await import('../../demo/demo-session.ts');
  const { bootDiskOnItsOwn, bootReimageVm, buildDemoInitramfs } = await import('../../demo/demo-vm-session.ts');
  context.log.info('demo --vm: preparing the demo disks (built once, then cached)');
  const workspace = await prepareDemo(context.log, 'demo-vm');
  const initramfs = await buildDemoInitramfs(workspace, undefined, context.log, context.signal);
  context.log.info(
    `initramfs: ${formatBytes(initramfs.sizeBytes)}, built in ${(initramfs.durationMs / 1000).toFixed(1)} s`,
  );
  const show = (line: string): void => {
    context.stdout.write(`  | ${line}\n`);
  };
  context.log.info('booting the reimage initramfs in QEMU (serial console below)');
  const reimage = await bootReimageVm(workspace, initramfs.path, show, context.signal);
  // A reboot is also how a refused run ends (into the old OS): only the runner's success counts.
  if (!/reimage run exited with 0/.test(reimage.serialLog)) {
    throw new ReimageError(
      'REIMAGE_DEMO_VM_FAILED',
      `The reimage in the VM did not succeed (it ended by ${reimage.ending}). The serial log above says why.`,
      { evidence: { ending: reimage.ending } },
    );
  }
  context.log.info('booting the reimaged disk on its own (its own GRUB, no -kernel)');
  const boot = await bootDiskOnItsOwn(workspace, show, context.signal);
  const identity = boot.identity;
  if (identity === undefined || identity.osVersion !== workspace.fixtures.newOsVersion) {
    throw new ReimageError(
      'REIMAGE_DEMO_VM_FAILED',
      'The reimaged disk did not boot into the new OS. See the serial log above.',
      {
        evidence: { ending: boot.ending },
      },
    );
  }
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
      `reimage in VM: ${(reimage.durationMs / 1000).toFixed(1)} s; new OS boot: ${(boot.durationMs / 1000).toFixed(1)} s; initramfs ${formatBytes(initramfs.sizeBytes)}`,
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
