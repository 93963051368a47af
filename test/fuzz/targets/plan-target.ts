import { readFile } from 'node:fs/promises';
import { parsePlan } from '../../../src/plan/load-plan.ts';
import type { FuzzTarget } from '../fuzz-target.ts';
import { hasControlCharacters, textLiteral } from '../run-fuzz.ts';
import type { SeededRandom } from '../seeded-random.ts';

const ODD_VALUES = [
  '~',
  '[]',
  '{}',
  '!!binary aGVsbG8=',
  '1e400',
  '0x10',
  '0o17',
  '.nan',
  '-.inf',
  '99999999999999999999',
  '-0',
  '"\\u0000"',
  '!!set {a, b}',
  '!!omap [a: 1]',
  '!!timestamp 2001-12-14',
  '!!str 5',
  '!!int "x"',
  '!!float abc',
  '!custom x',
  '&a x',
  '*a',
  '*missing',
  '&a [*a]',
  'yes',
  '1_000',
  "'/etc/../x'",
  '{label: ""}',
  '{uuid: zz}',
  '{__proto__: 1}',
  '{constructor: {prototype: 1}}',
  '? [a]',
  '{[a]: 1}',
  '|\n  text',
  '"a',
  '{"\\e[2J\\e[31mkey": 1}',
  '"\\e]0;title\\a"',
  `${'['.repeat(300)}`,
];

/** An alias bomb: each level holds ten aliases of the one before (10^5 nodes from a few lines). */
const ALIAS_BOMB = [
  'l0: &l0 [x, x, x, x, x, x, x, x, x, x]',
  'l1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]',
  'l2: &l2 [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]',
  'l3: &l3 [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]',
].join('\n');

const LINE_INSERTS = [
  '---',
  '...',
  '%YAML 1.1\n---',
  '%TAG ! tag:x,2000:\n---',
  '<<: *a',
  'a: &a {disk: /dev/vda}',
  ALIAS_BOMB,
  '# comment',
  '\t',
];

/** YAML-aware mutations: odd scalars and tags, anchors and aliases, duplicated keys, indentation, document markers. */
function mutatePlan(input: Buffer, random: SeededRandom): Buffer {
  const lines = input.toString('utf8').split('\n');
  const at = random.below(lines.length);
  const line = lines[at] ?? '';
  switch (random.below(5)) {
    case 0: {
      const colon = line.indexOf(': ');
      const dash = line.indexOf('- ');
      const cut = colon >= 0 ? colon + 2 : dash >= 0 ? dash + 2 : -1;
      if (cut >= 0) lines[at] = `${line.slice(0, cut)}${random.pick(ODD_VALUES)}`;
      break;
    }
    case 1:
      lines.splice(at, 0, random.pick(LINE_INSERTS));
      break;
    case 2:
      lines.splice(at, 0, line);
      break;
    case 3:
      lines[at] = random.chance(0.5) ? `  ${line}` : line.replace(/^ {1,2}/, '');
      break;
    default: {
      // An anchor on one key's value and an alias to it on another: the plan's values shared or recursive.
      const keyed = lines.flatMap((text, index) => (/^\s*[a-z]+:/.test(text) ? [index] : []));
      if (keyed.length < 2) break;
      const from = random.pick(keyed);
      const to = random.pick(keyed);
      lines[from] = (lines[from] ?? '').replace(/:(\s|$)/, ': &anchor$1');
      lines[to] = (lines[to] ?? '').replace(/:.*$/, ': *anchor');
    }
  }
  return Buffer.from(lines.join('\n'), 'utf8');
}

export const planTarget: FuzzTarget = {
  name: 'plan',
  dictionary: ['version: 1\n', 'disk: ', 'partition: ', '{ label: ', '&a ', '*a', '!!', '<<: ', '- ', ': '],
  async seeds() {
    const example = await readFile(new URL('../../../examples/seed-kiosk.yaml', import.meta.url));
    const byLabel = `version: 1
disk: /dev/nvme0n1
image: { partition: { label: images }, path: /images/os.img.zst, sha256: ${'AB'.repeat(32)}, bmap: /images/os.bmap }
retain:
  partition: { uuid: 2f6e-11a4 }
  paths: [/etc/machine-id, { path: /etc/ssh, optional: false }]
  owners: by-id
restore:
  mounts: [{ partition: 2, at: / }]
  logs: /var/log/reimage
  after: ["systemctl enable kiosk"]
finish: poweroff
`;
    return [example, Buffer.from(byLabel, 'utf8')];
  },
  mutateStructure: mutatePlan,
  async parse(input) {
    const result = parsePlan(input.toString('utf8'));
    if (result.plan !== undefined) {
      return result.problems.length === 0 ? { outcome: 'a valid plan' } : { invalid: 'a plan and problems at once' };
    }
    const [first] = result.problems;
    if (first === undefined) return { invalid: 'no plan and no problem' };
    for (const problem of result.problems) {
      if (problem.field === '' || problem.message === '') {
        return { invalid: `a problem without field or message: ${JSON.stringify(problem)}` };
      }
      if (hasControlCharacters(`${problem.field}${problem.message}`)) {
        const text = textLiteral(`${problem.field}: ${problem.message}`);
        return { invalid: `a problem carries raw control characters from the plan: ${text}` };
      }
    }
    // Problems are the plan loader's refusals: name the first, so the run can tell them apart.
    return { outcome: `problem: ${first.field.replace(/\[\d+\]/g, '[]')}: ${first.message}` };
  },
};
