import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OnProgress } from '../../core/progress.ts';
import { ReimageError } from '../../core/reimage-error.ts';
import { INIT_CONSOLE_LOG } from '../../initramfs/init-script.ts';
import { loadPlanFile } from '../../plan/index.ts';
import {
  createRunLog,
  formatRunSummary,
  RUN_SCRATCH_FILES,
  type RunLog,
  runArmed,
  runPlan,
} from '../../runner/index.ts';
import { type CommandSpec, type ParsedArguments, usageLine } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

const spec: CommandSpec = {
  command: 'run',
  summary: 'carry out a plan: capture the state, write the image, restore the state',
  description: `Runs a plan's three stages: capture (mount the old root read-only, load the image into RAM and
check its SHA-256, capture the retention bundle), write (stream the image onto the disk, re-read
the partition table), restore (mount the new layout, restore and verify the bundle, run the
after-hooks, write the logs and report.json into restore.logs, unmount).

Inside the reimage initramfs this is what /init runs; its finish (reboot or poweroff) is done by
/init. Outside it, the plan's disk may be a regular file holding a disk image: it is attached to
a loop device. Needs root.

A failure before the write leaves the disk untouched (exit 2 or 3). Transient failures of the
write and restore stages are retried up to 3 times; after that the exit code is 4 and the log says
what failed. When the run ends, successful or not, the copy of the image and the retention bundle
(it holds private keys) are deleted from the work dir; the log and the journal stay.`,
  positionals: [],
  options: [
    { name: 'plan', value: 'PLAN', help: 'the plan file (see docs/plan.md); not with --armed', mustExist: 'file' },
    {
      name: 'armed',
      help: 'the armed run, from the recovery initramfs: disk, refuge, plan and image come from\nthe kernel command line and the refuge (docs/arm.md); resumes from its journal',
    },
    { name: 'disk', value: 'PATH', help: 'with --armed: the disk to try first (checked by identity like any other)' },
    {
      name: 'work-dir',
      value: 'DIR',
      help: `where the image, bundle, journal and log are kept during the run\n(default: a new directory under ${tmpdir()}; RAM in the initramfs)`,
    },
    {
      name: 'keep-work-files',
      help: 'keep the image copy and the retention bundle in the work dir after the run\n(the bundle holds private keys: delete it yourself)',
    },
    { name: 'json', help: 'progress as JSON lines' },
  ],
  examples: ['reimage run --plan /etc/reimage/plan.yaml', 'reimage run --armed --disk /dev/sda'],
  changesTarget: true,
};

async function run(context: VerbContext, args: ParsedArguments): Promise<number> {
  const planPath = args.value('plan');
  if (args.flag('armed') === (planPath !== undefined)) {
    throw new ReimageError(
      'REIMAGE_CLI_USAGE',
      planPath === undefined ? 'run: --plan PLAN is missing' : 'run: give --plan PLAN or --armed, not both',
      { evidence: { usage: usageLine(spec) } },
    );
  }
  if (process.getuid?.() !== 0) {
    throw new ReimageError(
      'REIMAGE_RUN_NEEDS_ROOT',
      'reimage run needs root (it mounts filesystems and writes a disk). Run it as root.',
    );
  }
  if (planPath === undefined) {
    return withRunLog(context, args, 'reimage-armed-', async (run) => {
      const disk = args.value('disk');
      const report = await runArmed({
        ...run,
        cmdline: await readFile('/proc/cmdline', 'utf8'),
        ...(disk === undefined ? {} : { diskHint: disk }),
      });
      return `reimage run --armed: done (attempt ${report.attempt}, resumed from ${report.resumedFrom}); ${report.bytesWritten} bytes written, ${report.entriesVerified} retained entries verified.`;
    });
  }
  const plan = await loadPlanFile(planPath);
  return withRunLog(
    context,
    args,
    'reimage-run-',
    async (run) => {
      const report = await runPlan({ ...run, plan, planPath });
      return `reimage run: done.\n${formatRunSummary(report).join('\n')}`;
    },
    async (workDir) => {
      // The bundle holds private keys and the image copy is large: neither outlives the run, in
      // a work dir of ours or the operator's, unless asked. The log and the journal stay.
      if (args.flag('keep-work-files')) {
        context.log.warn(`kept the image and the retention bundle (private keys) in ${workDir}: delete them when done`);
      } else {
        for (const name of RUN_SCRATCH_FILES) await rm(join(workDir, name), { force: true });
      }
    },
  );
}

/** What both runs take from the command line: the work dir, the log in it, progress, the console log. */
interface RunSetting {
  readonly workDir: string;
  readonly log: RunLog;
  readonly onProgress: OnProgress;
  readonly signal: AbortSignal;
  readonly extraLogFiles: readonly string[];
}

/**
 * Runs a plain or an armed run with its work dir (`--work-dir`, or a new one), log and progress,
 * prints what it returns, and logs a failure before passing it on.
 */
async function withRunLog(
  context: VerbContext,
  args: ParsedArguments,
  workDirPrefix: string,
  body: (run: RunSetting) => Promise<string>,
  cleanUp?: (workDir: string) => Promise<void>,
): Promise<number> {
  const workDir = args.value('work-dir') ?? (await mkdtemp(join(tmpdir(), workDirPrefix)));
  const log = createRunLog(join(workDir, 'reimage.log'));
  const progress = context.progressFor({ json: args.flag('json') });
  try {
    const done = await body({
      workDir,
      log,
      onProgress: progress,
      signal: context.signal,
      extraLogFiles: existsSync(INIT_CONSOLE_LOG) ? [INIT_CONSOLE_LOG] : [],
    });
    progress.done();
    context.stdout.write(`${done}\n`);
    return 0;
  } catch (error) {
    progress.done();
    log.warn(`run failed: ${error instanceof Error ? error.message : String(error)}`);
    throw error;
  } finally {
    await cleanUp?.(workDir);
    context.log.info(`reimage run: log in ${log.file}`);
  }
}

export const runVerb: Verb = defineVerb({ name: 'run', summary: spec.summary, commands: [{ spec, run }] });
