import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ReimageError } from '../../core/reimage-error.ts';
import { INIT_CONSOLE_LOG } from '../../initramfs/init-script.ts';
import { loadPlanFile } from '../../plan/index.ts';
import { createRunLog, formatRunSummary, RUN_SCRATCH_FILES, runPlan } from '../../runner/index.ts';
import type { Verb } from '../verb.ts';

const HELP = `reimage run --plan PLAN [--work-dir DIR] [--json]

Runs a plan's three stages: capture (mount the old root read-only, load the image into RAM and
check its SHA-256, capture the retention bundle), write (stream the image onto the disk, re-read
the partition table), restore (mount the new layout, restore and verify the bundle, run the
after-hooks, write the logs and report.json into restore.logs, unmount).

Inside the reimage initramfs this is what /init runs; its finish (reboot or poweroff) is done by
/init. Outside it, the plan's disk may be a regular file holding a disk image: it is attached to
a loop device. Needs root.

A failure before the write leaves the disk untouched (exit 2 or 3). The write and restore stages
are retried up to 3 times; after that the exit code is 4 and the log says what failed.

Options:
  --plan PLAN      the plan file (see docs/plan.md)
  --work-dir DIR   where the image, bundle, journal and log are kept during the run
                   (default: a new directory under ${tmpdir()}; RAM in the initramfs)
  --json           progress as JSON lines

Example:
  reimage run --plan /etc/reimage/plan.yaml`;

export const runVerb: Verb = {
  name: 'run',
  summary: 'carry out a plan: capture the state, write the image, restore the state',
  help: HELP,
  async run(context) {
    const { values, positionals } = parseArgs({
      args: [...context.argv],
      allowPositionals: true,
      options: {
        plan: { type: 'string' },
        'work-dir': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    if (values.plan === undefined || positionals.length > 0) {
      throw new ReimageError('REIMAGE_CLI_USAGE', 'Usage: reimage run --plan PLAN [--work-dir DIR] [--json]');
    }
    if (process.getuid?.() !== 0) {
      throw new ReimageError(
        'REIMAGE_RUN_NEEDS_ROOT',
        'reimage run needs root (it mounts filesystems and writes a disk). Run it as root.',
      );
    }
    const plan = await loadPlanFile(values.plan);
    const ownWorkDir = values['work-dir'] === undefined;
    const workDir = values['work-dir'] ?? (await mkdtemp(join(tmpdir(), 'reimage-run-')));
    const log = createRunLog(join(workDir, 'reimage.log'));
    const progress = context.progressFor({ json: values.json });
    try {
      const report = await runPlan({
        plan,
        planPath: values.plan,
        workDir,
        log,
        onProgress: progress,
        signal: context.signal,
        extraLogFiles: existsSync(INIT_CONSOLE_LOG) ? [INIT_CONSOLE_LOG] : [],
      });
      progress.done();
      context.stdout.write(`reimage run: done.\n${formatRunSummary(report).join('\n')}\n`);
      return 0;
    } catch (error) {
      progress.done();
      log.warn(`run failed: ${error instanceof Error ? error.message : String(error)}`);
      throw error;
    } finally {
      // The bundle holds private keys and the image copy is large: neither outlives the run in
      // a work dir we made. The log and the journal stay for the operator.
      if (ownWorkDir) {
        for (const name of RUN_SCRATCH_FILES) await rm(join(workDir, name), { force: true });
        context.log.info(`reimage run: log in ${log.file}`);
      }
    }
  },
};
