import { join, resolve } from 'node:path';
import { PORTABLE_RUNTIME_TOOLS } from '../../arm/index.ts';
import { GRUB_I386_PC_DIR } from '../../boot/index.ts';
import { formatBytes } from '../../core/format-bytes.ts';
import { PROJECT_DIR } from '../../core/project-dir.ts';
import { buildPortableRuntime, buildPortableRuntimeArchive } from '../../initramfs/index.ts';
import { RECOVERY_INITRAMFS_TOOLS } from '../../runner/runtime-tools.ts';
import type { CommandSpec, ParsedArguments } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

const spec: CommandSpec = {
  command: 'runtime',
  summary: 'build the portable runtime that runs reimage arm on an old OS',
  description: `Builds a self-contained reimage for a machine whose OS has no Node 24 and none of the tools
arm needs (an old glibc is fine): the pinned Node.js, reimage's code and production packages,
busybox, the tools arm and the recovery initramfs run (util-linux, e2fsprogs, xfs_db,
grub-mkimage with GRUB's i386-pc files, the decoders, perl, kmod) with their shared libraries and
this host's dynamic loader. Every program runs through that loader with those libraries, never
the machine's. bin/reimage is the command; bin/ holds a wrapper per tool and goes first on PATH.
arm builds the recovery initramfs from the runtime's own files and the machine's kernel modules.

--out DIR writes the tree. --out FILE.tar.gz writes it as one gzip'd tar for one copy command;
unpack it into a tmpfs so it takes no room in the old filesystems, which the refuge needs:
  ssh root@machine 'mkdir -p /run/reimage && tar -xzf - -C /run/reimage' < reimage-runtime.tar.gz
  ssh root@machine 'TMPDIR=/run/reimage/tmp /run/reimage/bin/reimage arm --plan /root/plan.yaml --reboot'`,
  positionals: [],
  options: [
    {
      name: 'out',
      value: 'PATH',
      help: 'a new directory, or a file ending in .tar.gz',
      required: true,
      mustExist: 'new-file',
    },
  ],
  examples: ['reimage runtime --out reimage-runtime.tar.gz', 'reimage runtime --out /srv/reimage-runtime'],
  changesTarget: false,
};

async function build(context: VerbContext, args: ParsedArguments): Promise<number> {
  const out = resolve(args.required('out'));
  const started = Date.now();
  const options = {
    tools: PORTABLE_RUNTIME_TOOLS,
    initramfsTools: RECOVERY_INITRAMFS_TOOLS,
    projectDir: PROJECT_DIR,
    grubDir: GRUB_I386_PC_DIR,
    log: context.log,
  };
  const archive = /\.(tar\.gz|tgz)$/.test(out);
  const built = archive
    ? await buildPortableRuntimeArchive({ ...options, outPath: out, signal: context.signal })
    : { ...(await buildPortableRuntime({ ...options, outDir: out })), archiveBytes: undefined };
  const { archiveBytes, ...summary } = built;
  const lines = [
    `reimage runtime: ${summary.entryCount} entries, ${formatBytes(summary.contentBytes)} of files, ${summary.manifest.tools.length} tools, loader ${summary.manifest.loader}`,
    archiveBytes !== undefined
      ? `  ${out}: ${formatBytes(archiveBytes)} (gzip)`
      : `  ${out}: run ${join(out, 'bin', 'reimage')}`,
    `  took ${((Date.now() - started) / 1000).toFixed(1)} s`,
  ];
  context.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

export const runtimeVerb: Verb = defineVerb({
  name: 'runtime',
  summary: spec.summary,
  commands: [{ spec, run: build }],
});
