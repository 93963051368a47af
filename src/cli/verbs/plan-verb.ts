import { describePlan, loadPlanFile, planWarnings } from '../../plan/index.ts';
import type { CommandSpec, ParsedArguments } from '../command-line.ts';
import { defineVerb, type Verb, type VerbContext } from '../verb.ts';

const validateSpec: CommandSpec = {
  command: 'plan validate',
  summary: 'check a plan file and explain what it will do',
  description: `Checks a plan file (YAML, version 1) and says in plain words what it will do:
which disk, which image, which paths are retained, which mounts make the new layout.
Exits 0 for a valid plan (warning about what is valid but surely not meant, such as an
all-zero placeholder digest), and whether the write will have to decode a gzip or bzip2
image an extra time to learn its size (image.size avoids it); 2 for an invalid one, naming each offending field (and the line
and column for YAML syntax errors). Nothing is touched. The plan reference is docs/plan.md.`,
  positionals: [{ name: 'FILE', help: 'the plan file', mustExist: 'file' }],
  options: [{ name: 'json', help: 'the result as one JSON line' }],
  examples: ['reimage plan validate examples/seed-kiosk.yaml'],
  changesTarget: false,
};

async function validate(context: VerbContext, args: ParsedArguments): Promise<number> {
  const file = args.required('FILE');
  const plan = await loadPlanFile(file);
  const warnings = planWarnings(plan);
  for (const warning of warnings) context.log.warn(`${file}: ${warning}`);
  if (args.flag('json')) {
    context.stdout.write(`${JSON.stringify({ valid: true, file, warnings, description: describePlan(plan), plan })}\n`);
  } else {
    context.stdout.write(`${file}: valid plan (version ${plan.version}).\n${describePlan(plan).join('\n')}\n`);
  }
  return 0;
}

export const planVerb: Verb = defineVerb({
  name: 'plan',
  summary: 'check a plan file and explain what it will do (plan validate FILE)',
  commands: [{ spec: validateSpec, run: validate }],
});
