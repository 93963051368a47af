import { parseArgs } from 'node:util';
import { ReimageError } from '../../core/reimage-error.ts';
import { describePlan, loadPlanFile } from '../../plan/index.ts';
import type { Verb, VerbContext } from '../verb.ts';

const HELP = `reimage plan validate FILE

Checks a plan file (YAML, version 1) and says in plain words what it will do:
which disk, which image, which paths are retained, which mounts make the new layout.
Exits 0 for a valid plan; 2 for an invalid one, naming each offending field
(and the line and column for YAML syntax errors). Nothing is touched.

Example:
  reimage plan validate examples/seed-kiosk.yaml

The plan reference is docs/plan.md.`;

async function validate(context: VerbContext, args: readonly string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false } },
  });
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) {
    throw new ReimageError('REIMAGE_CLI_USAGE', 'Usage: reimage plan validate FILE (one plan file).');
  }
  const plan = await loadPlanFile(file);
  if (values.json) {
    context.stdout.write(`${JSON.stringify({ valid: true, file, plan })}\n`);
  } else {
    context.stdout.write(`${file}: valid plan (version ${plan.version}).\n${describePlan(plan).join('\n')}\n`);
  }
  return 0;
}

export const planVerb: Verb = {
  name: 'plan',
  summary: 'check a plan file and explain what it will do (plan validate FILE)',
  help: HELP,
  async run(context) {
    const [sub, ...rest] = context.argv;
    if (sub === 'validate') return validate(context, rest);
    throw new ReimageError(
      'REIMAGE_CLI_USAGE',
      sub === undefined
        ? 'Usage: reimage plan validate FILE'
        : `Unknown "plan ${sub}". Usage: reimage plan validate FILE`,
    );
  },
};
