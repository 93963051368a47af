import { readFile } from 'node:fs/promises';
import { PROJECT_DIR } from '../../core/project-dir.ts';
import { escapeLine } from '../../core/quote-input.ts';
import { buildInitramfs, formatInitramfsSummary, listInitramfsFile } from '../../initramfs/index.ts';
import { RECOVERY_INITRAMFS_TOOLS } from '../../runner/runtime-tools.ts';
import { type CommandSpec, type ParsedArguments, usageError } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

/** The checkout this CLI runs from: the project the initramfs carries. */

const buildSpec: CommandSpec = {
  command: 'initramfs build',
  summary: 'build the reimage initramfs for a plan',
  description: `Makes the reimage initramfs for a plan: a compressed newc cpio that a stock kernel boots.
It carries a static busybox, the pinned Node.js with its shared libraries, reimage's code and
production dependencies, the plan (at /etc/reimage/plan.yaml), the tools the runner calls, the
storage and filesystem kernel modules with their dependencies, the modules.* index files and
the firmware they name, and /init, which waits for the plan's disk and runs the plan. The plan's
disk and finish are baked in: no kernel command-line parameters are needed. The same inputs give
the same bytes.`,
  positionals: [],
  options: [
    { name: 'plan', value: 'PLAN', help: 'the plan file', required: true, mustExist: 'file' },
    {
      name: 'modules',
      value: 'DIR',
      help: "the target kernel's lib/modules/<version> directory\n(default: /lib/modules/$(uname -r), the running kernel's)",
      mustExist: 'directory',
    },
    { name: 'out', value: 'FILE', help: 'where to write the initramfs', required: true, mustExist: 'new-file' },
    { name: 'list', help: 'print what is inside, part by part and file by file, with sizes' },
    {
      name: 'compression',
      value: 'C',
      help: "zstd (default; needs CONFIG_RD_ZSTD, which Debian's kernels have), gzip, none",
      choices: ['zstd', 'gzip', 'none'],
    },
    {
      name: 'node-compile-cache',
      help: 'carry a V8 compile cache so Node starts faster on slow (emulated) CPUs;\nthe output is then no longer byte-for-byte reproducible',
    },
  ],
  examples: ['reimage initramfs build --plan /etc/reimage/plan.yaml --out /boot/reimage-initrd.img --list'],
  changesTarget: false,
};

const listSpec: CommandSpec = {
  command: 'initramfs list',
  summary: 'list the paths, modes and sizes in an initramfs',
  description: 'Prints the paths, modes and sizes in an initramfs (zstd, gzip or plain newc).',
  positionals: [{ name: 'FILE', help: 'the initramfs', mustExist: 'file' }],
  options: [],
  examples: ['reimage initramfs list /boot/reimage-initrd.img'],
  changesTarget: false,
};

async function runningKernelModulesDir(): Promise<string> {
  const release = (await readFile('/proc/sys/kernel/osrelease', 'utf8')).trim();
  return `/lib/modules/${release}`;
}

async function build(context: VerbContext, args: ParsedArguments): Promise<number> {
  const compression = args.value('compression') ?? 'zstd';
  // The spec's choices have been checked; this narrows the type.
  if (compression !== 'zstd' && compression !== 'gzip' && compression !== 'none')
    throw usageError(buildSpec, 'bad --compression');
  const summary = await buildInitramfs({
    planPath: args.required('plan'),
    modulesDir: args.value('modules') ?? (await runningKernelModulesDir()),
    outPath: args.required('out'),
    tools: RECOVERY_INITRAMFS_TOOLS,
    projectDir: PROJECT_DIR,
    compression,
    nodeCompileCache: args.flag('node-compile-cache'),
    log: context.log,
    signal: context.signal,
  });
  context.stdout.write(formatInitramfsSummary(summary, { entries: args.flag('list') }));
  return 0;
}

async function list(context: VerbContext, args: ParsedArguments): Promise<number> {
  for (const member of listInitramfsFile(await readFile(args.required('FILE')))) {
    context.stdout.write(
      `${member.mode.toString(8).padStart(7, '0')} ${String(member.sizeBytes).padStart(10)} ${escapeLine(member.path)}${member.linkTarget === undefined ? '' : ` -> ${escapeLine(member.linkTarget)}`}\n`,
    );
  }
  return 0;
}

export const initramfsVerb: Verb = defineVerb({
  name: 'initramfs',
  summary: 'build the reimage initramfs for a plan, or list one',
  commands: [
    { spec: buildSpec, run: build },
    { spec: listSpec, run: list },
  ],
});
