import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { ReimageError } from '../../core/reimage-error.ts';
import { WRITER_TOOLS } from '../../image/index.ts';
import { buildInitramfs, formatInitramfsSummary, listNewcArchive } from '../../initramfs/index.ts';
import { RUNNER_TOOLS } from '../../runner/runtime-tools.ts';
import type { Verb } from '../verb.ts';

/** The checkout this CLI runs from: the project the initramfs carries. */
const PROJECT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const USAGE = `reimage initramfs build --plan PLAN [--modules DIR] --out FILE [--list] [--compression zstd|gzip|none]
                        [--node-compile-cache]
reimage initramfs list FILE`;

const HELP = `${USAGE}

build: makes the reimage initramfs for a plan: a compressed newc cpio that a stock kernel boots.
It carries a static busybox, the pinned Node.js with its shared libraries, reimage's code and
production dependencies, the plan (at /etc/reimage/plan.yaml), the tools the runner calls, the
storage and filesystem kernel modules with their dependencies, the modules.* index files and
the firmware they name, and /init, which waits for the plan's disk and runs the plan. The plan's
disk and finish are baked in: no kernel command-line parameters are needed. The same inputs give
the same bytes.

  --plan PLAN        the plan file
  --modules DIR      the target kernel's lib/modules/<version> directory
                     (default: /lib/modules/$(uname -r), the running kernel's)
  --out FILE         where to write the initramfs
  --list             print what is inside, part by part and file by file, with sizes
  --compression C    zstd (default; needs CONFIG_RD_ZSTD, which Debian's kernels have), gzip, none
  --node-compile-cache
                     carry a V8 compile cache so Node starts faster on slow (emulated) CPUs;
                     the output is then no longer byte-for-byte reproducible

list: prints the paths, modes and sizes in an initramfs (zstd, gzip or plain newc).

Example:
  reimage initramfs build --plan /etc/reimage/plan.yaml --out /boot/reimage-initrd.img --list`;

/** parseArgs throws a TypeError for an unknown option; the operator gets a usage error instead. */
function parse<R>(parseArguments: () => R): R {
  try {
    return parseArguments();
  } catch (e) {
    throw new ReimageError('REIMAGE_CLI_USAGE', `${e instanceof Error ? e.message : String(e)}\nUsage: ${USAGE}`, {
      cause: e,
    });
  }
}

async function runningKernelModulesDir(): Promise<string> {
  const release = (await readFile('/proc/sys/kernel/osrelease', 'utf8')).trim();
  return `/lib/modules/${release}`;
}

export const initramfsVerb: Verb = {
  name: 'initramfs',
  summary: 'build the reimage initramfs for a plan, or list one',
  help: HELP,
  async run(context) {
    const [subVerb, ...rest] = context.argv;
    if (subVerb === 'build') {
      const { values, positionals } = parse(() =>
        parseArgs({
          args: rest,
          allowPositionals: true,
          options: {
            plan: { type: 'string' },
            modules: { type: 'string' },
            out: { type: 'string' },
            list: { type: 'boolean', default: false },
            compression: { type: 'string', default: 'zstd' },
            'node-compile-cache': { type: 'boolean', default: false },
          },
        }),
      );
      const compression = values.compression;
      if (
        values.plan === undefined ||
        values.out === undefined ||
        positionals.length > 0 ||
        (compression !== 'zstd' && compression !== 'gzip' && compression !== 'none')
      ) {
        throw new ReimageError('REIMAGE_CLI_USAGE', `Usage: ${USAGE}`);
      }
      const summary = await buildInitramfs({
        planPath: values.plan,
        modulesDir: values.modules ?? (await runningKernelModulesDir()),
        outPath: values.out,
        tools: [...new Set([...RUNNER_TOOLS, ...WRITER_TOOLS])],
        projectDir: PROJECT_DIR,
        compression,
        nodeCompileCache: values['node-compile-cache'],
        log: context.log,
        signal: context.signal,
      });
      context.stdout.write(formatInitramfsSummary(summary, { entries: values.list }));
      return 0;
    }
    if (subVerb === 'list') {
      const { positionals } = parse(() => parseArgs({ args: rest, allowPositionals: true, options: {} }));
      const file = positionals[0];
      if (file === undefined || positionals.length !== 1)
        throw new ReimageError('REIMAGE_CLI_USAGE', `Usage: ${USAGE}`);
      const bytes = await readFile(file);
      const magic = bytes.subarray(0, 4).toString('hex');
      const plain =
        magic === '28b52ffd' ? zstdDecompressSync(bytes) : magic.startsWith('1f8b') ? gunzipSync(bytes) : bytes;
      for (const member of listNewcArchive(plain)) {
        context.stdout.write(
          `${member.mode.toString(8).padStart(7, '0')} ${String(member.sizeBytes).padStart(10)} ${member.path}${member.linkTarget === undefined ? '' : ` -> ${member.linkTarget}`}\n`,
        );
      }
      return 0;
    }
    throw new ReimageError('REIMAGE_CLI_USAGE', `Usage: ${USAGE}`);
  },
};
